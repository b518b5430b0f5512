"""Thumbnails of one image for the report: photo, ground truth, prediction and an error map, as data: URIs."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

from imagenets.codec import open_image
from imagenets.idmaps import resize_nearest
from imagenets.palette import HATCH_COLOURS, RGB, UNKNOWN_COLOUR, colorize, hatch, picture_colours
from imagenets.subsets import IGNORE, OTHER

from ..engine.inputs import Pair, read_pair
from ..engine.matchfile import Match
from ..visualize import legend_entries

#: Thumbnail height in pixels, and the widest a thumbnail may be (very wide images are shrunk further).
HEIGHT, MAX_WIDTH = 120, 240
#: Error map classes: (key, colour, legend text). The photo shows through, in grey, where the prediction is right.
ERRORS: Tuple[Tuple[str, RGB, str], ...] = (
    ("wrong", (215, 25, 28), "wrong class"),
    ("missed", (253, 174, 97), "class predicted as other"),
    ("extra", (44, 123, 182), "other predicted as a class"),
    ("unmatched", UNKNOWN_COLOUR, "id outside 0..K or not matched"),
)


@dataclass
class Picture:
    """One image's panels (caption, data URI, width, height) and legend (colour or "hatch", text)."""

    panels: List[Tuple[str, str, int, int]]
    legend: List[Tuple[object, str]]
    errors: Dict[str, float] = field(default_factory=dict)   # % of scored pixels per error kind
    note: str = ""


def data_uri(image: Image.Image, fmt: str) -> str:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, format="JPEG", quality=80, optimize=True)
    else:
        image.save(buffer, format="PNG", optimize=True)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def indexed(rgb: np.ndarray) -> Image.Image:
    """An RGB array of few colours as an exact palette PNG image (masks: a fraction of the RGB size)."""
    packed = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    colours, index = np.unique(packed, return_inverse=True)
    if colours.size > 256:
        return Image.fromarray(rgb, "RGB")
    image = Image.fromarray(index.reshape(packed.shape).astype(np.uint8), "P")
    image.putpalette(np.stack([colours >> 16, (colours >> 8) & 255, colours & 255], -1).astype(np.uint8)
                     .ravel().tolist())
    return image


def thumbnail_size(h: int, w: int, enlarge: bool = True) -> Tuple[int, int]:
    """(height, width) of a thumbnail as shown: HEIGHT high, at most MAX_WIDTH wide; with ``enlarge=False``,
    the pixels it is drawn with (a small image is not enlarged: the page scales it up, pixelated)."""
    scale = min(HEIGHT / h, MAX_WIDTH / w)
    if not enlarge:
        scale = min(scale, 1.0)
    return max(1, round(h * scale)), max(1, round(w * scale))


def error_map(gt: np.ndarray, pred: np.ndarray, num_classes: int, photo: Optional[np.ndarray]) -> np.ndarray:
    """RGB map of the prediction's errors over the greyed photo (or grey): ignore hatched."""
    h, w = gt.shape
    base = np.full((h, w), 200.0) if photo is None else 80.0 + 0.55 * photo.astype(np.float64).mean(axis=-1)
    out = np.repeat(base[..., None], 3, axis=-1).astype(np.uint8)
    for key, colour, _text in ERRORS:
        out[error_mask(key, gt, pred, num_classes)] = colour
    ignore = gt == IGNORE
    stripes = hatch(h, w)
    out[ignore & stripes], out[ignore & ~stripes] = HATCH_COLOURS
    return out


def error_mask(key: str, gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    scored = gt != IGNORE
    known = (pred >= 0) & (pred <= num_classes)
    if key == "unmatched":
        return scored & ~known
    if key == "missed":
        return scored & (gt != OTHER) & (pred == OTHER)
    if key == "extra":
        return scored & (gt == OTHER) & known & (pred != OTHER)
    return scored & (gt != OTHER) & known & (pred != OTHER) & (pred != gt)


def draw_picture(pair: Pair, photo_path: Optional[Path], match: Optional[Match], num_classes: int,
                 labels: Dict[int, str]) -> Picture:
    """Read one pair (and its photo when there) and draw its four thumbnails and legend."""
    gt, pred = read_pair(pair)
    if match is not None:
        pred = match.relabel(pred)
    h, w = gt.shape
    th, tw = thumbnail_size(h, w, enlarge=False)
    sh, sw = thumbnail_size(h, w)  # as shown
    photo, note = None, ""
    if photo_path is not None:
        try:
            with open_image(photo_path) as opened:
                photo = np.asarray(opened.convert("RGB").resize((tw, th), Image.BILINEAR))
        except (OSError, ValueError) as exc:
            note = f"image {photo_path.name} not shown ({exc})"
    small_gt, small_pred = resize_nearest(gt, th, tw), resize_nearest(pred, th, tw)
    scored = gt != IGNORE
    ids_gt = sorted(int(i) for i in np.unique(gt[scored]))
    in_range = (pred >= 0) & (pred <= num_classes)
    ids_pred = sorted(int(i) for i in np.unique(pred[scored & in_range]))
    colours = picture_colours(ids_gt + ids_pred)
    panels = []
    if photo is not None:
        panels.append(("image", data_uri(Image.fromarray(photo), "JPEG"), sw, sh))
    panels.append(("ground truth", data_uri(indexed(colorize(small_gt, num_classes, colours)), "PNG"), sw, sh))
    panels.append(("prediction", data_uri(indexed(colorize(small_pred, num_classes, colours)), "PNG"), sw, sh))
    panels.append(("errors", data_uri(indexed(error_map(small_gt, small_pred, num_classes, photo)), "PNG"), sw, sh))
    legend = legend_entries(ids_gt, ids_pred, False, False, labels, colours)  # the gallery's rows of ids
    if (scored & ~in_range).any():
        legend.append((UNKNOWN_COLOUR, "ids outside 0..K or not matched"))
    if (~scored).any():
        legend.append(("hatch", "ignore (not scored)"))
    kept = max(int(scored.sum()), 1)
    errors = {key: 100.0 * int(error_mask(key, gt, pred, num_classes).sum()) / kept for key, _c, _t in ERRORS}
    return Picture(panels, legend, errors, note)
