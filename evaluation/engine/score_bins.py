"""Thresholds for the confidence curve, and each pixel's score bin: how many thresholds its score reaches.

A pixel stays at threshold ``j`` (0-based, thresholds ascending) exactly when its bin exceeds ``j``,
so one histogram over bins holds the counts of every threshold at once.
"""

from __future__ import annotations

from decimal import Decimal
from typing import List

import numpy as np

from imagenets.errors import UserError
from imagenets.flags import plain_number

from .scores import PNG_SCALE

#: More thresholds than this would only slow the curve down: no score map needs them.
MAX_THRESHOLDS = 1001
THRESHOLDS_HINT = "use START:STOP:STEP (e.g. 0:1:0.01, STOP included) or a comma list (e.g. 0.2,0.25,0.3)"
#: Scores are compared in float32: a threshold must be a finite float32.
FLOAT32_MAX = Decimal(float(np.finfo(np.float32).max))


def _decimal(text: str, option: str) -> Decimal:
    if not plain_number(text):
        raise UserError(f"{option}: {text!r} is not a plain finite number: {THRESHOLDS_HINT}")
    value = Decimal(text.strip())
    if abs(value) > FLOAT32_MAX:
        raise UserError(f"{option}: {text.strip()} is beyond float32 (scores are compared in float32): "
                        f"{THRESHOLDS_HINT}")
    return value


def parse_thresholds(text: str, option: str = "--thresholds") -> np.ndarray:
    """Ascending float64 thresholds from ``START:STOP:STEP`` or ``a,b,c``; UserError on anything else.

    Decimal steps, so ``0:1:0.01`` gives exactly the doubles of 0.00, 0.01, ..., 1.00 (PASS's ``t / 100``).
    """
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise UserError(f"{option} {text!r}: {THRESHOLDS_HINT}")
        start, stop, step = (_decimal(p, option) for p in parts)
        if step <= 0 or stop < start:
            raise UserError(f"{option} {text!r}: STEP must be positive and STOP >= START")
        if stop - start >= step * MAX_THRESHOLDS:  # before dividing: the quotient may exceed any precision
            raise UserError(f"{option} {text!r} gives more than {MAX_THRESHOLDS} thresholds: use a larger STEP")
        count = int((stop - start) // step) + 1
        values: List[float] = [float(start + i * step) for i in range(count)]
    else:
        values = sorted({float(_decimal(p, option)) for p in text.split(",") if p.strip()})
        if not values or len(values) > MAX_THRESHOLDS:
            raise UserError(f"{option} {text!r}: give 1 to {MAX_THRESHOLDS} thresholds: {THRESHOLDS_HINT}")
    as32 = np.asarray(values, dtype=np.float32)
    same = np.flatnonzero(as32[1:] == as32[:-1])
    if same.size:
        a, b = values[same[0]], values[same[0] + 1]
        raise UserError(f"{option}: thresholds {a!r} and {b!r} are the same score in float32 (scores are "
                        "compared in float32): use a larger step")
    return np.asarray(values, dtype=np.float64)


class ScoreBins:
    """``bins(scores)`` = number of thresholds ``<= score`` per pixel (0..T), compared in float32.

    A binary search costs ~130 ns a pixel here (branch misses); instead a monotone bucket index
    ``q(s) = trunc(clip(s * scale - offset, 0, M))`` is looked up. Fine buckets hold at most one
    threshold each; since ``q`` is monotone, a bucket without one lies wholly on one side of every
    threshold, and in a bucket with one a single comparison decides. Exact for every float32.
    """

    def __init__(self, thresholds: np.ndarray):
        self.thresholds = np.asarray(thresholds, dtype=np.float32)
        self.count = int(self.thresholds.size)
        self._png_lut = None
        self._fast = self.count >= 2 and self._build()

    def _bucket(self, scores: np.ndarray) -> np.ndarray:
        x = np.multiply(scores, self._scale, dtype=np.float32)
        x -= self._offset
        np.clip(x, 0, self._buckets, out=x)  # also maps -inf/+inf to the end buckets
        return x.astype(np.int32)

    def _build(self) -> bool:
        t = self.thresholds
        lo, hi = float(t[0]), float(t[-1])
        buckets = 16 * self.count
        while buckets <= 1 << 22:
            self._buckets = np.float32(buckets)
            self._scale = np.float32(buckets / (hi - lo))
            self._offset = np.float32(lo) * self._scale
            q = self._bucket(t)
            if np.all(q[1:] > q[:-1]):
                n = int(buckets) + 1
                # base[k] = thresholds whose bucket lies below k; holder[k] = the one in bucket k (or NaN).
                self._base = np.searchsorted(q, np.arange(n), side="left").astype(np.int32)
                self._holder = np.full(n, np.nan, dtype=np.float32)
                self._holder[q] = t
                return True
            buckets *= 4
        return False  # thresholds closer than float32 buckets can part: plain binary search

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """int32 bins of float32 scores, or of uint16 PNG scores (value / 65535)."""
        if scores.dtype == np.uint16:
            if self._png_lut is None:
                values = np.arange(PNG_SCALE + 1, dtype=np.float32) / np.float32(PNG_SCALE)
                self._png_lut = self._float_bins(values)
            return self._png_lut.take(scores)
        return self._float_bins(scores)

    def _float_bins(self, scores: np.ndarray) -> np.ndarray:
        if self.count == 1:
            return (scores >= self.thresholds[0]).astype(np.int32)
        if not self._fast:
            return np.searchsorted(self.thresholds, scores, side="right").astype(np.int32)
        q = self._bucket(scores)
        bins = self._base.take(q)
        bins += scores >= self._holder.take(q)  # NaN holder: never
        return bins
