"""``evaluator.py``: mIoU and its companion metrics of ImageNet-S predictions, exactly as the benchmark.

    python evaluator.py --predict-dir P --gt-dir G --mode 50 [--match results/x.json] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

if __package__ in (None, ""):
    # Run as a script (`cd evaluation; python evaluator.py`, the original toolbox's usage): import the
    # package from the checkout instead of these files as top-level modules.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from imagenets.cli import (Command, add_device_argument, add_meta_argument, add_mode_argument,
                           add_quiet_argument, add_workers_argument)
from imagenets.codec import read_mask
from imagenets.errors import UserError, info, warn
from imagenets.fileio import write_json_atomic
from imagenets.metadata import Metadata, load_metadata
from imagenets.subsets import Subset, get_subset

from evaluation.matchfile import is_one_to_one, load_match, match_lut
from evaluation.metrics import SUMMARY_KEYS, InvalidGroundTruth, SegmentationMetrics, nan_to_none
from evaluation.pairs import Pair, add_pair_arguments, prepare_pairs
from evaluation.report import class_table, summary_table
from evaluation.runner import counting_device, map_reduce


def read_pair(pair: Pair, lut: Optional[np.ndarray] = None):
    """Decode one pair (prediction mapped through ``lut`` if given); sizes must agree."""
    gt = read_mask(pair.gt)
    pred = read_mask(pair.pred)
    if gt.shape != pred.shape:
        raise UserError(f"{pair.pred} is {pred.shape[1]}x{pred.shape[0]} but its ground truth {pair.gt} is "
                        f"{gt.shape[1]}x{gt.shape[0]}: predictions must have the size of the original image")
    if lut is not None:
        pred = lut.take(pred)  # take: ~2x faster than fancy indexing
    return gt, pred


def invalid_gt_error(pair: Pair, value: int, num_classes: int) -> UserError:
    return UserError(f"{pair.gt} holds GT id {value}, but ImageNet-S{num_classes} GT ids are 0..{num_classes} "
                     f"and 1000 (ignore): is --mode right for --gt-dir?")


class _EvaluateChunk:
    """Worker job: accumulate the metrics of a chunk of pairs (picklable)."""

    def __init__(self, num_classes: int, lut: Optional[np.ndarray], one_to_one: bool = False):
        self.num_classes = num_classes
        self.lut = lut
        # A one-to-one match is applied inside the kernel, per run instead of per pixel.
        self.run_lut = lut if one_to_one else None

    def __call__(self, pairs: Sequence[Pair]) -> SegmentationMetrics:
        metrics = SegmentationMetrics(self.num_classes)
        pixel_lut = None if self.run_lut is not None else self.lut
        for pair in pairs:
            gt, pred = read_pair(pair, pixel_lut)
            try:
                metrics.update(gt, pred, pred_lut=self.run_lut)
            except InvalidGroundTruth as exc:
                raise invalid_gt_error(pair, exc.args[0], self.num_classes) from None
        return metrics


def evaluate_predictions(predict_dir: Path, gt_dir: Path, subset: Subset, meta: Metadata,
                         match_file: Optional[Path] = None, workers: int = 2, device: str = "auto",
                         quiet: bool = False, names: Optional[List[str]] = None) -> Dict[str, object]:
    """Evaluate a prediction folder over the subset's validation list (or the mask paths ``names``)."""
    counting_device(device, quiet)
    k = subset.num_classes
    mapping = load_match(match_file, k) if match_file else None
    lut = match_lut(mapping) if mapping is not None else None
    if names is None:
        names = [mask for _image, mask in meta.validation_names(subset)]
    pairs = prepare_pairs(names, Path(gt_dir), Path(predict_dir), quiet=quiet)
    total = SegmentationMetrics(k)
    map_reduce(pairs, _EvaluateChunk(k, lut, mapping is not None and is_one_to_one(mapping)), total.merge, workers=workers, quiet=quiet,
               desc="evaluating")
    if total.out_of_range_pixels:
        what = ("prediction ids the match does not cover" if lut is not None
                else f"prediction ids outside 0..{k}")
        warn(f"{total.out_of_range_pixels} pixels in {total.out_of_range_images} images have {what}: "
             "they count nowhere in IoU and as foreground in FMeasure")
    result = total.compute()
    return {"subset": subset.name, "mode": k, "images": total.images,
            "predict_dir": str(predict_dir), "gt_dir": str(gt_dir),
            "match": str(match_file) if match_file else None,
            "out_of_range_pixels": total.out_of_range_pixels,
            **{key: result[key] for key in SUMMARY_KEYS}, "IoUs": result["IoUs"]}


def format_report(result: Dict[str, object], meta: Metadata, subset: Subset) -> str:
    """Per-class table then summary table, as printed by the command."""
    return "\n".join([class_table(result["IoUs"], meta.categories(subset), meta.class_names(subset)),
                      "", f"{subset.name}, {result['images']} images"
                      + (f", match {result['match']}" if result.get("match") else ""),
                      summary_table(result)])


def json_ready(result: Dict[str, object]) -> Dict[str, object]:
    """NaN (a size bucket with no objects) becomes null so the file is strict JSON."""
    return {k: nan_to_none(v) if isinstance(v, float) else v for k, v in result.items()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_pair_arguments(parser, "class ids 0..K, or cluster ids with --match")
    add_mode_argument(parser)
    add_workers_argument(parser)
    parser.add_argument("--match", type=Path, default=None, metavar="FILE",
                        help="match file from match.py: prediction ids are mapped through it first")
    add_meta_argument(parser)
    add_device_argument(parser)
    add_quiet_argument(parser)
    parser.add_argument("--output", type=Path, default=None, metavar="FILE.json",
                        help="also write the summary (full precision), IoUs and run context as JSON")
    parser.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                        help="also draw the per-class IoU as a bar chart, classes sorted, with the mIoU line")


def run(args: argparse.Namespace) -> int:
    subset = get_subset(args.mode)
    meta = load_metadata(args.meta_dir, quiet=args.quiet)
    result = evaluate_predictions(args.predict_dir, args.gt_dir, subset, meta, match_file=args.match,
                                  workers=args.workers, device=args.device, quiet=args.quiet)
    if args.plot:
        from evaluation.plot import plot_result  # Pillow drawing: loaded only when asked for

        plot_result(args.plot, result, meta, subset)
        info(f"wrote {args.plot}", args.quiet)
    return publish(result, meta, subset, args.output, args.quiet)


def publish(result: Dict[str, object], meta: Metadata, subset: Subset, output: Optional[Path],
            quiet: bool, heading: str = "") -> int:
    """Write ``--output`` JSON (if asked) and print the tables (unless quiet); shared by score."""
    if output:
        write_json_atomic(output, json_ready(result))
        info(f"wrote {output}", quiet)
    if not quiet:
        if heading:
            print(heading)
        print(format_report(result, meta, subset))
    return 0


COMMAND = Command("evaluate", "evaluate predictions: mIoU, boundary mIoU, size buckets, Acc, FMeasure",
                  add_arguments, run,
                  description="Evaluate ImageNet-S predictions exactly as the benchmark does: per-class IoU "
                              "and the summary metrics (mIoU, mBIoU, S/MS/ML/L, BS/BMS/BML/BL, Acc, FMeasure).")


def main(argv: Optional[List[str]] = None) -> int:
    return COMMAND.main(argv)


if __name__ == "__main__":
    sys.exit(main())
