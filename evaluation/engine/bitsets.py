"""Sets of small non-negative integers as Python ints (bit i = member i): fast unions, intersections
and lowest members on a few hundred to a few thousand elements."""

from __future__ import annotations

from typing import Iterable, List

import numpy as np

__all__ = ["bits_of", "row_bits"]


def row_bits(mask: np.ndarray) -> List[int]:
    """Each row of a 2-D bool array as a bit set of its True columns."""
    if mask.shape[0] == 0:
        return []
    packed = np.packbits(mask, axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def bits_of(members: Iterable[int]) -> int:
    """The bit set of ``members``."""
    bits = 0
    for i in members:
        bits |= 1 << i
    return bits
