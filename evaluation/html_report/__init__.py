"""``evaluate --report FILE.html``: one self-contained page to read a result (summary, every class, sizes and
boundaries, confusions, the worst and best images, the run's context), built from the evaluation's own pass.

The pass keeps what the page needs (per-image counts, the pixel confusion, raw cluster counts under a
many-to-one match); the page itself reads only the 2 x N pictured images again.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from imagenets.errors import UserError, warn
from imagenets.fileio import write_text_atomic
from imagenets.flags import input_dir, integer, output_file
from imagenets.metadata import Metadata
from imagenets.subsets import OTHER, MASK_FOLDERS, Subset

#: Worst and best images pictured by default.
PICTURES = 12


def add_report_arguments(parser: argparse.ArgumentParser, images: bool = True) -> None:
    """``--report FILE.html`` (and, for an evaluation, where the photos are and how many to show)."""
    group = parser.add_argument_group("report page (opt-in; the numbers stay the same)")
    output_file(group, "--report", default=None, metavar="FILE.html",
                help="also write one self-contained HTML page of the result: summary, every class "
                     "(sortable), size buckets and boundaries, confusions"
                     + (", the worst and best images" if images else ", the curve"))
    if images:
        input_dir(group, "--images", default=None, metavar="DIR", implied=implied_images,
                  help="validation images for the report's pictures (default: the 'validation' "
                       "folder beside --gt-dir, when there)")
        group.add_argument("--report-pictures", type=integer(0, 1000), default=PICTURES, metavar="N",
                           help="how many of the worst and of the best images the report pictures")


def implied_images(args: argparse.Namespace) -> Optional[Tuple[str, Path]]:
    """The photos a report reads without ``--images`` (the folder beside ``--gt-dir``): an input folder
    the guard keeps every output out of."""
    if getattr(args, "report", None) is None or getattr(args, "gt_dir", None) is None:
        return None
    found = images_folder(args.gt_dir, None)
    return ("--images (the validation folder beside --gt-dir)", found) if found is not None else None


def check_report_arguments(args: argparse.Namespace) -> None:
    """Refuse, before any work, flags that only the report reads when there is no report."""
    if args.report is None:
        for flag, value, default in (("--images", getattr(args, "images", None), None),
                                     ("--report-pictures", getattr(args, "report_pictures", PICTURES), PICTURES)):
            if value != default:
                raise UserError(f"{flag} only serves --report: add --report FILE.html, or drop {flag}")
    if getattr(args, "images", None) is not None and not Path(args.images).is_dir():
        raise UserError(f"--images {args.images} is not a directory: pass the prepared validation folder, "
                        "e.g. DEST/ImageNetS50/validation")


def images_folder(gt_dir: Path, given: Optional[Path]) -> Optional[Path]:
    """Where the validation photos are: ``--images``, else ``validation/`` beside the GT folder, else none."""
    if given is not None:
        return Path(given)
    gt_dir = Path(gt_dir)
    beside = gt_dir.parent / "validation"
    if gt_dir.name == MASK_FOLDERS["validation"] and beside.is_dir():
        return beside
    return None


def pick_pictures(scores, count: int) -> Dict[str, list]:
    """The ``count`` worst and ``count`` best scored images (never the same image twice)."""
    scored = sorted((s for s in scores if not math.isnan(s.iou)), key=lambda s: (s.iou, s.mask))
    worst = scored[:count]
    best = [s for s in reversed(scored[len(worst):])][:count]
    return {f"Worst {len(worst)} images": worst, f"Best {len(best)} images": best}


def draw_pictures(chosen: Dict[str, list], gt_dir: Path, predict_dir: Path, images_dir: Optional[Path],
                  match, num_classes: int, labels: Dict[int, str]) -> Tuple[Dict[str, list], int]:
    """Thumbnails of the chosen images; returns them and how many photos were missing."""
    from ..engine.inputs import Pair
    from .pictures import draw_picture

    missing = 0
    shown: Dict[str, list] = {}
    for title, scores in chosen.items():
        shown[title] = []
        for score in scores:
            photo = Path(images_dir) / score.image if images_dir is not None else None
            if photo is not None and not photo.is_file():
                missing, photo = missing + 1, None
            pair = Pair(score.mask, Path(gt_dir) / score.mask, Path(predict_dir) / score.mask)
            shown[title].append((score, draw_picture(pair, photo, match, num_classes, labels)))
    return shown, missing


def write_evaluation_report(path: Path, tally, result: Dict[str, object], meta: Metadata, subset: Subset,
                            images: Optional[Path] = None, pictures: int = PICTURES) -> Path:
    """The page of one ``evaluate`` run, from its tally (per-image counts, confusion and cluster counts kept,
    the match as the evaluation read it) and result."""
    from .data import (ReportData, add_clusters, add_confusions, bucket_table, class_rows, classes_per_image,
                       image_scores, run_context, validation_images)
    from .page import render_page

    match = tally.match
    metrics = tally.metrics
    rows = class_rows(metrics, meta, subset)
    counts = metrics.image_counts()
    for row, n in zip(rows, classes_per_image(counts).tolist()):
        row.images = int(n)
    confusion = tally.confusion.matrix() if tally.confusion is not None else None
    confusions = add_confusions(rows, confusion) if confusion is not None else []
    if match is not None:
        add_clusters(rows, match, confusion, tally.clusters.matrix() if tally.clusters is not None else None)
    scores = image_scores(counts, tally.names, validation_images(meta, subset))
    data = ReportData(result, rows, bucket_table(metrics, result, counts), scores, confusions,
                      run_context(result, meta))
    images_dir = images_folder(Path(str(result["gt_dir"])), images)
    data.context["images_dir"] = str(images_dir) if images_dir is not None else None
    labels = {row.id: ("other" if row.id == OTHER else row.name) for row in rows}
    shown, missing = draw_pictures(pick_pictures(scores, pictures), Path(str(result["gt_dir"])),
                                   Path(str(result["predict_dir"])), images_dir, match, subset.num_classes, labels)
    if missing:
        warn(f"report: {missing} pictured images are not under {images_dir}: their photo panel is left out "
             "(pass --images DIR, the prepared validation folder)")
    write_text_atomic(path, render_page(data, shown))
    return Path(path)


def write_curve_report(path: Path, result: Dict[str, object], metrics, meta: Metadata, subset: Subset) -> Path:
    """The page of one ``threshold-curve`` run: the curve, then the evaluation at the best threshold."""
    from .data import ReportData, bucket_table, class_rows, run_context
    from .page import render_page

    best = dict(result["best"])  # type: ignore[arg-type]
    page_result = {**{k: v for k, v in result.items() if k not in ("curve", "thresholds", "best")}, **best}
    rows = class_rows(metrics, meta, subset)
    data = ReportData(page_result, rows, bucket_table(metrics, page_result, None), None, [],
                      run_context(page_result, meta), curve=result)
    data.notes.append("A threshold-curve run keeps the per-class counts of its best threshold only: for the "
                      "confusions and the worst and best images, evaluate the predictions thresholded at that t "
                      "with `imagenets evaluate --report`.")
    write_text_atomic(path, render_page(data, {}))
    return Path(path)


__all__: List[str] = ["add_report_arguments", "check_report_arguments", "write_evaluation_report",
                      "write_curve_report", "PICTURES"]
