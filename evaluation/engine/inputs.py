"""Which (GT, prediction) PNG pairs an evaluation reads, and the cheap checks run before the long work."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

from imagenets.codec import CONVERT_HINT, ENCODING_HINT, MAX_PIXELS, png_header, read_mask, too_large
from imagenets.errors import UserError, first_few
from imagenets.flags import input_dir
from imagenets.progress import progress

COLOR_TYPES = {0: "grayscale (L)", 2: "RGB", 3: "palette (P)", 4: "grayscale+alpha (LA)", 6: "RGBA"}
#: Grayscale (colour type 0) by bit depth: what Pillow opens it as.
GRAY_DEPTHS = {8: "8-bit grayscale (L)", 16: "16-bit grayscale (I;16)"}


@dataclass(frozen=True)
class Pair:
    """One evaluated image: its list name (``wnid/X.png``) and the two files."""

    name: str
    gt: Path
    pred: Path


def add_pair_arguments(parser, predictions: str) -> None:
    """``--predict-dir`` and ``--gt-dir``, the two folders every evaluation reads."""
    input_dir(parser, "--predict-dir", required=True, metavar="DIR",
              help=f"predictions ({predictions}): one <wnid>/<name>.png per validation image, "
                   "id = R + 256*G")
    input_dir(parser, "--gt-dir", required=True, metavar="DIR",
              help="ground truth: the subset's validation-segmentation folder")


def make_pairs(mask_names: Iterable[str], gt_dir: Path, pred_dir: Path) -> List[Pair]:
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    return [Pair(n, gt_dir / n, pred_dir / n) for n in mask_names]


def check_directories(gt_dir: Path, pred_dir: Path) -> None:
    for flag, d in (("--gt-dir", gt_dir), ("--predict-dir", pred_dir)):
        if not Path(d).is_dir():
            raise UserError(f"{flag} {d} is not a directory: check the path")


def check_present(pairs: Sequence[Pair]) -> None:
    """Every listed PNG must exist: report counts and the first few missing paths."""
    missing_pred = [p.pred for p in pairs if not os.path.isfile(p.pred)]
    if missing_pred:
        raise UserError(f"{len(missing_pred)} of {len(pairs)} prediction PNGs are missing "
                        f"(first: {first_few(missing_pred)}): write one <wnid>/<name>.png per listed image "
                        "under --predict-dir, or check --predict-dir and --mode")
    missing_gt = [p.gt for p in pairs if not os.path.isfile(p.gt)]
    if missing_gt:
        raise UserError(f"{len(missing_gt)} of {len(pairs)} ground-truth PNGs are missing "
                        f"(first: {first_few(missing_gt)}): point --gt-dir at the validation-segmentation "
                        "folder of the same subset as --mode")


def png_kind(depth: int, color: int) -> str:
    """A PNG's kind as messages name it (``16-bit grayscale (I;16)``, ``palette (P)``, ...)."""
    if color == 0:
        return GRAY_DEPTHS.get(depth, f"{depth}-bit grayscale")
    return COLOR_TYPES.get(color, f"colour type {color}")


def check_png(path: Path) -> Tuple[int, int]:
    """Header check of one mask: RGB/RGBA with 8 bits per channel, within MAX_PIXELS; returns (width, height)."""
    width, height, depth, color = png_header(path)
    if width * height > MAX_PIXELS:
        raise too_large(path, (width, height))
    if color not in (2, 6):
        # `imagenets convert --to rgb` reads 8- and 16-bit grayscale whose value is the id.
        fix = CONVERT_HINT if color == 0 and depth in GRAY_DEPTHS else "re-save it as RGB in that encoding"
        raise UserError(f"{path} is a {png_kind(depth, color)} PNG, not RGB: {ENCODING_HINT}; {fix}")
    if depth != 8:
        raise UserError(f"{path} has {depth} bits per channel: {ENCODING_HINT} with 8-bit channels")
    return width, height


def check_headers(pairs: Sequence[Pair], quiet: bool = False) -> None:
    """Modes and sizes of every pair, read from PNG headers only (fast) before decoding anything."""
    for pair in progress(pairs, desc="checking PNG headers", quiet=quiet, unit="img"):
        gt_size = check_png(pair.gt)
        pred_size = check_png(pair.pred)
        if gt_size != pred_size:
            raise UserError(f"{pair.pred} is {pred_size[0]}x{pred_size[1]} but its ground truth {pair.gt} is "
                            f"{gt_size[0]}x{gt_size[1]} (width x height): predictions must have the size "
                            "of the original image")


def prepare_pairs(mask_names: Iterable[str], gt_dir: Path, pred_dir: Path,
                  quiet: bool = False, limit: Optional[int] = None) -> List[Pair]:
    """List the pairs of a split and run every check that needs no decoding."""
    check_directories(gt_dir, pred_dir)
    pairs = make_pairs(mask_names, gt_dir, pred_dir)
    if not pairs:  # a subset list on purpose is fine; an empty one would give numbers of nothing
        raise UserError("the validation list names no image: nothing to evaluate; point --meta-dir (or "
                        "$IMAGENETS_META_DIR) at the official lists, or at a list of the images to evaluate")
    if limit is not None:
        pairs = pairs[:limit]
    check_present(pairs)
    check_headers(pairs, quiet=quiet)
    return pairs


def read_pair(pair: Pair):
    """Decode one pair (raw ids: a match is applied by the counting kernel); sizes must agree."""
    gt = read_mask(pair.gt)
    pred = read_mask(pair.pred)
    if gt.shape != pred.shape:
        raise UserError(f"{pair.pred} is {pred.shape[1]}x{pred.shape[0]} but its ground truth {pair.gt} is "
                        f"{gt.shape[1]}x{gt.shape[0]}: predictions must have the size of the original image")
    return gt, pred


def invalid_gt_error(pair: Pair, value: int, num_classes: int) -> UserError:
    return UserError(f"{pair.gt} holds GT id {value}, but ImageNet-S{num_classes} GT ids are 0..{num_classes} "
                     f"and 1000 (ignore): is --mode right for --gt-dir?")
