"""Colours for pictures of masks: one fixed colour per id 0..919, hatching for ignore, a default font."""

from __future__ import annotations

import functools
from typing import Dict, Iterable, Mapping, Optional, Tuple

import numpy as np
from PIL import ImageFont

from .subsets import IGNORE

#: Ids with their own colour: 0 (other) and the 919 classes of the largest subset.
NUM_COLOURS = 920
OTHER_COLOUR = (20, 20, 20)
#: Ignore pixels are hatched with these two colours (diagonal stripes).
HATCH_COLOURS = ((255, 255, 255), (150, 150, 150))
HATCH_PERIOD = 6
#: Ids without a class (out of range for the subset, or not covered by a match).
UNKNOWN_COLOUR = (255, 0, 255)

RGB = Tuple[int, int, int]


#: Smallest CIELAB distance (CIE76 delta E) between two colours shown in one picture: ids closer than this
#: in the fixed palette get another colour there (:func:`picture_colours`). About 2.3 is "just noticeable";
#: the fixed palette keeps ids 1..50 at least 27 apart, 1..300 at least 12, 1..919 at least 8.
MIN_PICTURE_DELTA = 20.0


def lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB (0..255, last axis) -> CIELAB (D65), float64: a space where distance follows perception."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                             [0.0193339, 0.1191920, 0.9503041]]).T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def _reserved_lab() -> np.ndarray:
    return lab(np.array([OTHER_COLOUR, *HATCH_COLOURS, UNKNOWN_COLOUR]))


@functools.lru_cache(maxsize=1)
def palette() -> np.ndarray:
    """Greedy farthest-point picks in CIELAB from a 16-level sRGB grid: each new colour is the one farthest
    from the reserved colours and all chosen so far, so low ids (every subset's first classes) are the most
    distinct, and no two ids of the 50-class subset look alike (the RGB-weighted picks gave ids 6 and 50
    two magentas)."""
    levels = np.linspace(0, 255, 16)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    space = lab(grid)
    # Squared distance of every candidate to the nearest reserved or chosen colour.
    nearest = ((space[:, None, :] - _reserved_lab()[None]) ** 2).sum(-1).min(1)
    colours = np.zeros((NUM_COLOURS, 3), dtype=np.uint8)
    colours[0] = OTHER_COLOUR
    for i in range(1, NUM_COLOURS):
        pick = int(np.argmax(nearest))
        colours[i] = np.round(grid[pick])
        np.minimum(nearest, ((space - space[pick]) ** 2).sum(1), out=nearest)
    colours.setflags(write=False)
    return colours


@functools.lru_cache(maxsize=1)
def _palette_lab() -> np.ndarray:
    return lab(palette())


def picture_colours(ids: Iterable[int]) -> Dict[int, RGB]:
    """The colour of each id shown together in one picture: its palette colour, unless that lies within
    :data:`MIN_PICTURE_DELTA` of a colour taken by a smaller id (or a reserved one); then the palette colour
    farthest from those. Ids outside 0..919 (and ignore) keep their fixed colours."""
    shown = sorted({int(i) for i in ids if 0 <= int(i) < NUM_COLOURS})
    colours = _palette_lab()
    taken = list(_reserved_lab())
    out: Dict[int, RGB] = {}
    for class_id in shown:
        pick = class_id
        if class_id != 0 and np.sqrt(((np.array(taken) - colours[class_id]) ** 2).sum(1)).min() < MIN_PICTURE_DELTA:
            # The palette colour farthest from everything in the picture so far (deterministic).
            distance = np.sqrt(((colours[1:, None, :] - np.array(taken)[None]) ** 2).sum(-1)).min(1)
            pick = 1 + int(np.argmax(distance))
        out[class_id] = colour_of(pick)
        taken.append(colours[pick])
    return out


def colour_of(class_id: int) -> RGB:
    """The colour of one id (ignore: the first hatch colour; ids without a colour: UNKNOWN_COLOUR)."""
    if class_id == IGNORE:
        return HATCH_COLOURS[0]
    if 0 <= class_id < NUM_COLOURS:
        return tuple(int(c) for c in palette()[class_id])  # type: ignore[return-value]
    return UNKNOWN_COLOUR


def hatch(h: int, w: int) -> np.ndarray:
    """HxW bool: True on the first colour of the diagonal stripes."""
    yy, xx = np.ogrid[0:h, 0:w]
    return ((xx + yy) // (HATCH_PERIOD // 2)) % 2 == 0


def colorize(ids: np.ndarray, num_classes: Optional[int] = None,
             colours: Optional[Mapping[int, RGB]] = None) -> np.ndarray:
    """HxW ids -> HxWx3 uint8: palette colours (or ``colours``, e.g. :func:`picture_colours`, where given),
    ignore hatched, ids above ``num_classes`` magenta."""
    ids = np.asarray(ids)
    limit = NUM_COLOURS - 1 if num_classes is None else min(num_classes, NUM_COLOURS - 1)
    known = (ids >= 0) & (ids <= limit)
    out = np.empty(ids.shape + (3,), dtype=np.uint8)
    out[...] = UNKNOWN_COLOUR
    table = palette()
    if colours:
        table = table.copy()
        for class_id, colour in colours.items():
            if 0 <= class_id < NUM_COLOURS:
                table[class_id] = colour
    out[known] = table[ids[known]]
    ignore = ids == IGNORE
    if ignore.any():
        stripes = hatch(*ids.shape)
        out[ignore & stripes] = HATCH_COLOURS[0]
        out[ignore & ~stripes] = HATCH_COLOURS[1]
    return out


def default_font(size: int = 12) -> ImageFont.ImageFont:
    """Pillow's built-in font at ``size`` (a fixed small bitmap font on Pillow < 10.1)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sizes
        return ImageFont.load_default()
