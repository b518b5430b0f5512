"""Colours for pictures of masks: one fixed colour per id 0..919, hatching for ignore, a default font."""

from __future__ import annotations

import functools
from typing import Optional, Tuple

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


@functools.lru_cache(maxsize=1)
def palette() -> np.ndarray:
    """Greedy farthest-point picks from a 16-level RGB grid: each new colour is the one farthest
    from all chosen so far, so low ids (every subset's first classes) are the most distinct."""
    levels = np.linspace(0, 255, 16)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    scale = np.sqrt([2.0, 4.0, 3.0])  # rough perceptual weighting of R, G, B differences
    space = grid * scale
    reserved = np.array([OTHER_COLOUR, *HATCH_COLOURS, UNKNOWN_COLOUR], dtype=np.float64) * scale
    # Squared distance of every candidate to the nearest reserved or chosen colour.
    nearest = ((space[:, None, :] - reserved[None]) ** 2).sum(-1).min(1)
    colours = np.zeros((NUM_COLOURS, 3), dtype=np.uint8)
    colours[0] = OTHER_COLOUR
    for i in range(1, NUM_COLOURS):
        pick = int(np.argmax(nearest))
        colours[i] = np.round(grid[pick])
        np.minimum(nearest, ((space - space[pick]) ** 2).sum(1), out=nearest)
    colours.setflags(write=False)
    return colours



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


def colorize(ids: np.ndarray, num_classes: Optional[int] = None) -> np.ndarray:
    """HxW ids -> HxWx3 uint8: palette colours, ignore hatched, ids above ``num_classes`` magenta."""
    ids = np.asarray(ids)
    limit = NUM_COLOURS - 1 if num_classes is None else min(num_classes, NUM_COLOURS - 1)
    known = (ids >= 0) & (ids <= limit)
    out = np.empty(ids.shape + (3,), dtype=np.uint8)
    out[...] = UNKNOWN_COLOUR
    out[known] = palette()[ids[known]]
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
