"""``imagenets visualize``: per image a PNG with image | ground truth | prediction, and a gallery.

    imagenets visualize --images DEST/ImageNetS50/validation --gt-dir G --predict-dir P --match M \
        --mode 50 -o OUT [--limit N] [--sort worst|best|name]
writes ``OUT/pictures/<wnid>/<name>.png``, ``OUT/index.html`` (sorted by per-image IoU) and
``OUT/scores.json`` (every image's IoU, for machines).
"""

from __future__ import annotations

import argparse
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple
from urllib.parse import quote

import numpy as np
from PIL import Image, ImageDraw

from imagenets.cli import Command, add_meta_argument, add_mode_argument, add_quiet_argument, add_workers_argument
from imagenets.codec import open_image
from imagenets.idmaps import resize_nearest
from imagenets.errors import UserError, info
from imagenets.fileio import atomic_path, write_json_atomic, write_text_atomic
from imagenets.flags import OUTPUT_DIR, OUTPUT_FILE, Declared, input_dir, input_file, integer, output_dir
from imagenets.metadata import load_metadata
from imagenets.names import shown_html
from imagenets.palette import (HATCH_COLOURS, RGB, UNKNOWN_COLOUR, colorize, colour_of, default_font, hatch,
                               picture_colours)
from imagenets.subsets import IGNORE, OTHER, get_subset

from imagenets.evaluation.engine.matchfile import Match, load_match
from imagenets.evaluation.engine.report import OFFICIAL_LISTS
from imagenets.evaluation.engine.inputs import Pair, add_pair_arguments, prepare_pairs, read_pair
from imagenets.evaluation.engine.parallel import map_reduce

SORTS = ("worst", "best", "name")

# Picture layout, in pixels.
PAD = 8
GAP = 8
#: One line of the title (it wraps onto more lines rather than being cut on narrow pictures).
HEADER = 22
TITLE_LINE = 16
CAPTION = 16
#: Narrowest slot of a panel, so that its caption ("ground truth") is never cut on a narrow image.
MIN_SLOT = 92
MIN_HEIGHT, MAX_HEIGHT = 160, 320
MIN_WIDTH = 480
LEGEND_ROW = 16
LEGEND_COLUMN = 230
SWATCH = 12
#: Legend rows shown at most; the rest is summed up in one line.
LEGEND_MAX = 24
BACKGROUND = (255, 255, 255)
TEXT = (0, 0, 0)


# ---- per-image score -----------------------------------------------------------------------------

def image_iou(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> Tuple[float, List[int], List[int]]:
    """(mean IoU over the ids 0..K present in GT or prediction, GT ids, predicted ids); ignore dropped.

    Predicted ids outside 0..K count as wrong for their GT pixel. NaN when no pixel is left.
    """
    keep = gt != IGNORE
    g = gt[keep].astype(np.int64)
    p = pred[keep].astype(np.int64)
    unknown = num_classes + 1
    g = np.where((g >= 0) & (g <= num_classes), g, unknown)
    p = np.where((p >= 0) & (p <= num_classes), p, unknown)
    size = num_classes + 2
    gc = np.bincount(g, minlength=size)[:unknown]
    pc = np.bincount(p, minlength=size)[:unknown]
    inter = np.bincount(g[g == p], minlength=size)[:unknown]
    present = np.nonzero((gc + pc) > 0)[0]
    if not len(present):
        return math.nan, [], []
    ious = inter[present] / (gc[present] + pc[present] - inter[present])
    return float(100.0 * ious.mean()), np.nonzero(gc)[0].tolist(), np.nonzero(pc)[0].tolist()


def read_matched(pair: Pair, match: Optional[Match]) -> Tuple[np.ndarray, np.ndarray]:
    """GT and prediction of one pair, the prediction relabelled through the match (for pictures only)."""
    gt, pred = read_pair(pair)
    return gt, (match.relabel(pred) if match is not None else pred)


class _Score:
    """Worker job: per-image IoU of a chunk of (image, pair) items (picklable)."""

    def __init__(self, num_classes: int, match: Optional[Match]):
        self.num_classes = num_classes
        self.match = match

    def __call__(self, items: Sequence[Tuple[str, Pair]]) -> List[Dict[str, object]]:
        out = []
        for image, pair in items:
            gt, pred = read_matched(pair, self.match)
            iou, gt_ids, pred_ids = image_iou(gt, pred, self.num_classes)
            out.append({"mask": pair.name, "image": image, "iou": iou, "gt_ids": gt_ids,
                        "pred_ids": pred_ids})
        return out


def sort_scores(scores: List[Dict[str, object]], order: str) -> List[Dict[str, object]]:
    """worst / best per-image IoU first (images without pixels last), or by name."""
    if order == "name":
        return sorted(scores, key=lambda s: s["mask"])
    sign = 1.0 if order == "worst" else -1.0
    return sorted(scores, key=lambda s: (math.isnan(s["iou"]), sign * s["iou"] if not math.isnan(s["iou"])
                                         else 0.0, s["mask"]))


# ---- one picture ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """Where everything goes in the picture of an h x w image."""

    height: int          # of each panel
    width: int
    legend_rows: int
    columns: int
    title_lines: int = 1

    @classmethod
    def for_image(cls, h: int, w: int, legend_entries: int, title_lines: int = 1) -> "Layout":
        height = min(max(h, MIN_HEIGHT), MAX_HEIGHT)
        width = max(1, round(w * height / h))
        total = max(3 * max(width, MIN_SLOT) + 2 * GAP + 2 * PAD, MIN_WIDTH)
        columns = max(1, (total - 2 * PAD) // LEGEND_COLUMN)
        shown = min(legend_entries, LEGEND_MAX + 1)
        return cls(height, width, math.ceil(shown / columns), columns, title_lines)

    @property
    def slot(self) -> int:
        """Width given to each panel and its caption."""
        return max(self.width, MIN_SLOT)

    def panel_origin(self, index: int) -> Tuple[int, int]:
        """(x, y) of the top-left pixel of panel 0 (image), 1 (GT) or 2 (prediction)."""
        return PAD + index * (self.slot + GAP), PAD + HEADER + (self.title_lines - 1) * TITLE_LINE + CAPTION

    @property
    def legend_top(self) -> int:
        return self.panel_origin(0)[1] + self.height + PAD

    @property
    def size(self) -> Tuple[int, int]:
        width = max(3 * self.slot + 2 * GAP + 2 * PAD, MIN_WIDTH)
        return width, self.legend_top + self.legend_rows * LEGEND_ROW + PAD


def legend_entries(gt_ids: Sequence[int], pred_ids: Sequence[int], has_ignore: bool, has_unknown: bool,
                   labels: Dict[int, str], colours: Optional[Dict[int, RGB]] = None) -> List[Tuple[object, str]]:
    """(colour or "hatch", text) per legend row: the ids present (``colours``: the picture's, see
    :func:`imagenets.palette.picture_colours`), ignore, unknown ids."""
    entries: List[Tuple[object, str]] = []
    colours = colours or {}
    for class_id in sorted(set(gt_ids) | set(pred_ids)):
        where = "GT+pred" if class_id in gt_ids and class_id in pred_ids else (
            "GT" if class_id in gt_ids else "pred")
        entries.append((colours.get(class_id, colour_of(class_id)),
                        f"{class_id} {labels.get(class_id, '?')} ({where})"))
    if has_ignore:
        entries.append(("hatch", f"{IGNORE} ignore (not scored)"))
    if has_unknown:
        entries.append((UNKNOWN_COLOUR, "ids outside 0..K / not matched"))
    return entries


def wrap(draw: ImageDraw.ImageDraw, text: str, width: int, font) -> List[str]:
    """``text`` broken at spaces into lines no wider than ``width``; a word wider than that (a long file
    name) is broken between characters, so nothing is ever cut."""
    lines: List[str] = []
    for word in text.split(" "):
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
            continue
        lines.append("")
        for char in word:
            if lines[-1] and draw.textlength(lines[-1] + char, font=font) > width:
                lines.append("")
            lines[-1] += char
    return lines or [""]


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int, font) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def render(photo: Image.Image, gt: np.ndarray, pred: np.ndarray, num_classes: int, labels: Dict[int, str],
           title: str) -> Image.Image:
    """The picture: title, then image | ground truth | prediction, then a legend of the ids shown."""
    h, w = gt.shape
    keep = gt != IGNORE
    _iou, gt_ids, pred_ids = image_iou(gt, pred, num_classes)
    unknown = bool(((pred < 0) | (pred > num_classes)).any())
    colours = picture_colours(set(gt_ids) | set(pred_ids))  # ids alike in the palette get apart here
    entries = legend_entries(gt_ids, pred_ids, bool((~keep).any()), unknown, labels, colours)
    layout = Layout.for_image(h, w, len(entries))
    font, big = default_font(12), default_font(13)
    title_lines = wrap(ImageDraw.Draw(Image.new("RGB", (1, 1))), title, layout.size[0] - 2 * PAD, big)
    layout = Layout.for_image(h, w, len(entries), len(title_lines))
    canvas = Image.new("RGB", layout.size, BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for number, line in enumerate(title_lines):
        draw.text((PAD, PAD + number * TITLE_LINE), line, fill=TEXT, font=big)
    panels = [photo.convert("RGB").resize((layout.width, layout.height), Image.BILINEAR),
              Image.fromarray(colorize(resize_nearest(gt, layout.height, layout.width), num_classes, colours)),
              Image.fromarray(colorize(resize_nearest(pred, layout.height, layout.width), num_classes, colours))]
    for index, (panel, caption) in enumerate(zip(panels, ("image", "ground truth", "prediction"))):
        x, y = layout.panel_origin(index)
        canvas.paste(panel, (x, y))
        draw.text((x, y - CAPTION + 1), _fit(draw, caption, layout.slot, font), fill=TEXT, font=font)
    shown = entries if len(entries) <= LEGEND_MAX + 1 else entries[:LEGEND_MAX] + [
        (None, f"... and {len(entries) - LEGEND_MAX} more")]
    for number, (colour, text) in enumerate(shown):
        row, column = number % layout.legend_rows, number // layout.legend_rows
        x = PAD + column * LEGEND_COLUMN
        y = layout.legend_top + row * LEGEND_ROW
        if colour == "hatch":
            stripes = hatch(SWATCH, SWATCH)
            swatch = np.empty((SWATCH, SWATCH, 3), dtype=np.uint8)
            swatch[stripes], swatch[~stripes] = HATCH_COLOURS
            canvas.paste(Image.fromarray(swatch), (x, y))
        elif colour is not None:
            draw.rectangle([x, y, x + SWATCH - 1, y + SWATCH - 1], fill=colour, outline=(90, 90, 90))
        draw.text((x + SWATCH + 4, y), _fit(draw, text, LEGEND_COLUMN - SWATCH - 10, font), fill=TEXT, font=font)
    return canvas


class _Render:
    """Worker job: draw and write the pictures of a chunk of scored images (picklable)."""

    def __init__(self, num_classes: int, match: Optional[Match], images: Path, gt_dir: Path,
                 pred_dir: Path, out: Path, labels: Dict[int, str], note: str):
        self.num_classes, self.match, self.labels, self.note = num_classes, match, labels, note
        self.images, self.gt_dir, self.pred_dir, self.out = images, gt_dir, pred_dir, out

    def __call__(self, items: Sequence[Tuple[int, Dict[str, object]]]) -> int:
        for rank, score in items:
            mask = str(score["mask"])
            gt, pred = read_matched(Pair(mask, self.gt_dir / mask, self.pred_dir / mask), self.match)
            path = self.images / str(score["image"])
            try:
                with open_image(path) as photo:
                    photo.load()
            except (OSError, ValueError) as exc:
                raise UserError(f"cannot read image {path} ({exc}): check --images") from None
            if photo.size != (gt.shape[1], gt.shape[0]):
                raise UserError(f"image {path} is {photo.size[0]}x{photo.size[1]} but its mask is "
                                f"{gt.shape[1]}x{gt.shape[0]}: is --images the folder of the same split?")
            iou = score["iou"]
            title = f"#{rank}  {mask}   image IoU " + ("n/a" if math.isnan(iou) else f"{iou:.1f}") + self.note
            picture = render(photo, gt, pred, self.num_classes, self.labels, title)
            with atomic_path(self.out / picture_name(mask)) as tmp:
                picture.save(tmp, format="PNG")
        return len(items)


def picture_name(mask: str) -> str:
    """Relative path of a picture under OUT."""
    return f"pictures/{mask}"


# ---- gallery -------------------------------------------------------------------------------------

def gallery_html(shown: Sequence[Dict[str, object]], labels: Dict[int, str], heading: str) -> str:
    """A static page: one row per picture, in the order given, with relative links."""
    rows = []
    for rank, score in enumerate(shown, 1):
        link = html.escape(quote(picture_name(str(score["mask"]))))  # a link is the file's name, encoded
        iou = score["iou"]
        classes = ", ".join(shown_html(labels.get(i, str(i))) for i in score["gt_ids"] if i != OTHER)
        rows.append(f'<tr><td>{rank}</td><td>{"n/a" if math.isnan(iou) else f"{iou:.1f}"}</td>'
                    f'<td><a href="{link}">{shown_html(str(score["mask"]))}</a><br>'
                    f'<small>GT: {classes or "other only"}</small></td>'
                    f'<td><a href="{link}"><img src="{link}" loading="lazy"></a></td></tr>')
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>ImageNet-S pictures</title>\n"
            "<style>body{font-family:sans-serif;margin:1em} table{border-collapse:collapse}"
            " td{border-bottom:1px solid #ccc;padding:4px;vertical-align:top}"
            " img{max-width:720px}</style></head><body>\n"
            f"<h1>ImageNet-S pictures</h1>\n<p>{shown_html(heading)}</p>\n"
            "<table><tr><th>#</th><th>image IoU</th><th>mask</th><th>image | ground truth | prediction</th></tr>\n"
            + "\n".join(rows) + "\n</table></body></html>\n")


def visualize(images: Path, gt_dir: Path, predict_dir: Path, out: Path, mode: str, meta_dir=None,
              match: Optional[Path] = None, limit: int = 100, sort: str = "worst", workers: int = 2,
              quiet: bool = False) -> Dict[str, object]:
    """Score every validation image, draw the first ``limit`` in ``sort`` order, write the gallery."""
    if limit < 0:
        raise UserError(f"--limit {limit}: use 0 (every image) or more")
    if sort not in SORTS:
        raise UserError(f"--sort {sort!r}: use one of {', '.join(SORTS)}")
    out = Path(out)
    subset = get_subset(mode)
    k = subset.num_classes
    meta = load_metadata(meta_dir, quiet=quiet)
    matched = load_match(match, k) if match else None
    names = meta.validation_names(subset)
    if not Path(images).is_dir():
        raise UserError(f"--images {images} is not a directory: pass the prepared split folder, "
                        f"e.g. DEST/{subset.name}/validation")
    pairs = prepare_pairs([mask for _, mask in names], Path(gt_dir), Path(predict_dir), quiet=quiet)
    missing = [image for image, _ in names if not (Path(images) / image).is_file()]
    if missing:
        raise UserError(f"{len(missing)} of {len(names)} images are missing under --images {images} "
                        f"(first: {missing[0]}): pass the prepared split folder, e.g. DEST/{subset.name}/validation")
    scores: List[Dict[str, object]] = []
    map_reduce(list(zip([image for image, _ in names], pairs)), _Score(k, matched), scores.extend,
               workers=workers, quiet=quiet, desc="scoring images")
    ordered = sort_scores(scores, sort)
    shown = ordered[:limit] if limit else ordered
    labels = {OTHER: "other"}
    labels.update({i: name for i, name in enumerate(meta.class_names(subset), 1)})
    note = "   (matched)" if matched is not None else ""
    map_reduce(list(enumerate(shown, 1)),
               _Render(k, matched, Path(images), Path(gt_dir), Path(predict_dir), out, labels, note),
               lambda _n: None, workers=workers, quiet=quiet, desc="drawing")
    valid = [s["iou"] for s in scores if not math.isnan(s["iou"])]
    mean = float(np.mean(valid)) if valid else math.nan
    heading = (f"{subset.name}: {len(shown)} of {len(scores)} images, sorted {sort}"
               f"{' first' if sort != 'name' else ''} by per-image IoU (mean over the ids in GT or prediction, "
               f"ignore dropped); mean per-image IoU {mean:.2f}"
               + (f"; predictions mapped through {match}" if match else ""))
    write_text_atomic(out / "index.html", gallery_html(shown, labels, heading))
    write_json_atomic(out / "scores.json", {
        "subset": subset.name, "sort": sort, "match": str(match) if match else None, OFFICIAL_LISTS: meta.official,
        "mean_image_iou": None if math.isnan(mean) else mean,
        "images": [{**s, "iou": None if math.isnan(s["iou"]) else s["iou"],
                    "picture": picture_name(str(s["mask"])) if i < len(shown) else None}
                   for i, s in enumerate(ordered)]})
    return {"index": out / "index.html", "scores": out / "scores.json", "pictures": len(shown),
            "images": len(scores), "mean_image_iou": mean}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    input_dir(parser, "--images", required=True, metavar="DIR",
              help="the images: the prepared validation folder DEST/ImageNetS{K}/validation")
    add_pair_arguments(parser, "class ids 0..K, or cluster ids with --match")
    input_file(parser, "--match", default=None, metavar="FILE",
               help="match file from match.py: prediction ids are mapped through it first")
    add_mode_argument(parser)
    output_dir(parser, "--output-dir", "-o", required=True, metavar="OUT",
               help="where pictures/, index.html and scores.json go")
    parser.add_argument("--limit", type=integer(0, 10 ** 9), default=100, metavar="N",
                        help="draw the first N images in --sort order (0 = all)")
    parser.add_argument("--sort", choices=SORTS, default="worst",
                        help="worst / best per-image IoU first, or by file name")
    add_workers_argument(parser)
    add_meta_argument(parser)
    add_quiet_argument(parser)


def run(args: argparse.Namespace) -> int:
    result = visualize(args.images, args.gt_dir, args.predict_dir, args.output_dir, args.mode, args.meta_dir,
                       args.match, args.limit, args.sort, args.workers, args.quiet)
    info(f"drew {result['pictures']} of {result['images']} images; mean per-image IoU "
         f"{result['mean_image_iou']:.2f}", args.quiet)
    print(result["index"])
    return 0


def declare(args: argparse.Namespace, declared: Declared) -> None:
    """OUT may hold the inputs (``-o .`` beside P): what is written is OUT/pictures/, index.html, scores.json."""
    out = args.output_dir
    declared.drop("--output-dir")
    declared.add(OUTPUT_DIR, "--output-dir's pictures/", out / "pictures")
    declared.add(OUTPUT_FILE, "--output-dir's gallery", out / "index.html")
    declared.add(OUTPUT_FILE, "--output-dir's scores file", out / "scores.json")


COMMAND = Command("visualize", "pictures of predictions: image | ground truth | prediction, and a gallery",
                  add_arguments, run, declare=declare,
                  description="Draw, per validation image, the image, its ground truth and the prediction side "
                              "by side (fixed palette, ignore hatched, legend with class names) and write "
                              "OUT/index.html, a gallery sorted by per-image IoU (worst first by default).")

