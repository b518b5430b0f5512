"""Per-image counting kernel: boundary maps and one small joint table per image pair.

Everything a metric needs from one image reduces to a table ``t[g, q, bg, bp]``: pixel counts
by GT id ``g`` (ids present in the image, ignore included), prediction id ``q`` (ids 0..K
present, plus one last column for every out-of-range id) and the two boundary flags. Building
it costs a handful of passes over the pixels, whatever K is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def boundary_width(height: int, width: int) -> int:
    """The spec's ``d = max(1, round(0.03 * sqrt(H^2 + W^2)))`` (Python round: half to even)."""
    return max(1, round(0.03 * math.sqrt(height * height + width * width)))


def _window_any(mask: np.ndarray, size: int, axis: int) -> np.ndarray:
    """``out[i] = any(mask[i : i + size])`` along ``axis`` (length n - size + 1).

    Doubling: after each step ``r[i]`` covers ``span`` cells; O(log size) boolean passes, no
    per-class loop, so large windows on large images stay cheap.
    """
    r = mask
    span = 1
    while span * 2 <= size:
        r = (r[:-span] | r[span:]) if axis == 0 else (r[:, :-span] | r[:, span:])
        span *= 2
    rest = size - span
    if rest:
        r = (r[:-rest] | r[rest:]) if axis == 0 else (r[:, :-rest] | r[:, rest:])
    return r


def boundary_mask(ids: np.ndarray, d: int) -> np.ndarray:
    """True where the ``(2d+1)^2`` square around a pixel holds another id or leaves the image.

    The square is constant iff every row of it is constant (horizontal test on the rows
    ``y-d..y+d``) and the centre column is constant (vertical test): two 1-D window tests.
    """
    h, w = ids.shape
    out = np.ones((h, w), dtype=bool)
    if h <= 2 * d or w <= 2 * d:
        return out
    row_change = ids[:, 1:] != ids[:, :-1]                      # h x (w-1)
    row_bad = _window_any(row_change, 2 * d, axis=1)            # h x (w-2d), column j -> x = j + d
    centre = ids[:, d:w - d]
    col_change = centre[1:] != centre[:-1]                      # (h-1) x (w-2d)
    col_bad = _window_any(col_change, 2 * d, axis=0)            # (h-2d) rows, row i -> y = i + d
    rows_bad = _window_any(row_bad, 2 * d + 1, axis=0)          # (h-2d) x (w-2d)
    np.logical_or(col_bad, rows_bad, out=out[d:h - d, d:w - d])
    return out


@dataclass
class JointTable:
    """Pixel counts of one image pair by (GT id, prediction id, GT boundary, prediction boundary)."""

    gt_ids: np.ndarray     # (nG,) sorted GT ids present (may include IGNORE or invalid ids)
    pred_ids: np.ndarray   # (nP,) sorted prediction ids in 0..K present
    counts: np.ndarray     # (nG, nP + 1, 2, 2) int64; column nP = every id outside 0..K
    out_of_range: int      # pixels (ignore included) whose prediction id is outside 0..K


def joint_table(gt: np.ndarray, pred: np.ndarray, num_classes: int,
                with_boundaries: bool = True) -> JointTable:
    """Count one pair. ``gt`` and ``pred``: HxW int32 ids, same shape, match already applied."""
    if with_boundaries:
        d = boundary_width(*gt.shape)
        flags = boundary_mask(gt, d).view(np.uint8) << 1
        flags |= boundary_mask(pred, d).view(np.uint8)
    gt_flat = gt.reshape(-1)
    pred_flat = pred.reshape(-1)
    gt_hist = np.bincount(gt_flat)
    pred_hist = np.bincount(pred_flat, minlength=num_classes + 1)
    gt_ids = np.flatnonzero(gt_hist)
    pred_ids = np.flatnonzero(pred_hist[:num_classes + 1])
    n_cols = pred_ids.size + 1
    # Compact per-image ids, pre-multiplied so that one add builds the joint key.
    gt_lut = np.zeros(gt_hist.size, dtype=np.int32)
    gt_lut[gt_ids] = np.arange(gt_ids.size, dtype=np.int32) * (n_cols * 4)
    pred_lut = np.full(pred_hist.size, pred_ids.size * 4, dtype=np.int32)
    pred_lut[pred_ids] = np.arange(pred_ids.size, dtype=np.int32) * 4
    key = gt_lut[gt_flat]
    key += pred_lut[pred_flat]
    if with_boundaries:
        key += flags.reshape(-1)
    counts = np.bincount(key, minlength=gt_ids.size * n_cols * 4)
    return JointTable(gt_ids, pred_ids, counts.reshape(gt_ids.size, n_cols, 2, 2),
                      int(pred_hist[num_classes + 1:].sum()))
