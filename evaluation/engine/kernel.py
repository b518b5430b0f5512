"""Per-image counting kernel: boundary maps and one small joint table per image pair.

Everything a metric needs from one image reduces to a table ``t[g, q, bg, bp]``: pixel counts
by GT id ``g`` (ids present in the image, ignore included), prediction id ``q`` (ids 0..K
present, plus one last column for every out-of-range id) and the two boundary flags. Building
it costs a handful of passes over the pixels, whatever K is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np


def boundary_width(height: int, width: int) -> int:
    """The spec's ``d = max(1, round(0.03 * sqrt(H^2 + W^2)))`` (Python round: half to even)."""
    return max(1, round(0.03 * math.sqrt(height * height + width * width)))


def _window_or(bits: np.ndarray, size: int, axis: int) -> np.ndarray:
    """``out[i] = bits[i] | ... | bits[i + size - 1]`` along ``axis`` (length n - size + 1).

    Doubling: after each step ``r[i]`` covers ``span`` cells; O(log size) passes over small
    integers, no per-class loop, so large windows on large images stay cheap. Works bitwise,
    so one pass serves several masks packed as bits of a uint8.
    """
    r = bits
    span = 1
    while span * 2 <= size:
        r = (r[:-span] | r[span:]) if axis == 0 else (r[:, :-span] | r[:, span:])
        span *= 2
    rest = size - span
    if rest:
        r = (r[:-rest] | r[rest:]) if axis == 0 else (r[:, :-rest] | r[:, rest:])
    return r


def _changes(maps: Sequence[np.ndarray], axis: int) -> np.ndarray:
    """uint8 whose bit b says ``maps[b]`` differs from its next pixel along ``axis``."""
    out = None
    for bit, ids in enumerate(maps):
        step = (ids[:, 1:] != ids[:, :-1] if axis == 1 else ids[1:] != ids[:-1]).view(np.uint8)
        for _ in range(bit):
            step += step  # doubling: numpy's uint8 add is vectorised, its shift is ~10x slower
        if out is None:
            out = step
        else:
            out |= step
    return out


def boundary_bits(maps: Sequence[np.ndarray], d: int, row_changes: Optional[np.ndarray] = None) -> np.ndarray:
    """uint8 map whose bit b is :func:`boundary_mask` of ``maps[b]`` (same shapes), in one pass.

    ``row_changes``: ``_changes(maps, axis=1)`` if the caller has it already.

    The square is constant iff every row of it is constant (horizontal test on the rows
    ``y-d..y+d``) and the centre column is constant (vertical test): two 1-D window tests.
    """
    h, w = maps[0].shape
    out = np.full((h, w), (1 << len(maps)) - 1, dtype=np.uint8)
    if h <= 2 * d or w <= 2 * d:
        return out
    if row_changes is None:
        row_changes = _changes(maps, axis=1)
    row_bad = _window_or(row_changes, 2 * d, axis=1)           # h x (w-2d): column j -> x = j + d
    centre = [ids[:, d:w - d] for ids in maps]
    col_bad = _window_or(_changes(centre, axis=0), 2 * d, axis=0)         # (h-2d) rows: row i -> y = i + d
    rows_bad = _window_or(row_bad, 2 * d + 1, axis=0)                     # (h-2d) x (w-2d)
    np.bitwise_or(col_bad, rows_bad, out=out[d:h - d, d:w - d])
    return out


def boundary_mask(ids: np.ndarray, d: int) -> np.ndarray:
    """True where the ``(2d+1)^2`` square around a pixel holds another id or leaves the image."""
    return boundary_bits([ids], d).view(bool)


@dataclass
class JointTable:
    """Pixel counts of one image pair by (GT id, prediction id, GT boundary, prediction boundary)."""

    gt_ids: np.ndarray     # (nG,) sorted GT ids present (may include IGNORE or invalid ids)
    pred_ids: np.ndarray   # (nP,) sorted prediction ids in 0..K present
    counts: np.ndarray     # (nG, nP + 1, 2, 2) int64; column nP = every id outside 0..K
    out_of_range: int      # pixels (ignore included) whose prediction id is outside 0..K
    top_id: int = 0        # the largest prediction id of the image (ignore included)


def joint_table(gt: np.ndarray, pred: np.ndarray, num_classes: int,
                with_boundaries: bool = True, pred_lut: Optional[np.ndarray] = None) -> JointTable:
    """Count one pair. ``gt`` and ``pred``: HxW int32 ids, same shape; ``pred`` holds the raw ids.

    ``pred_lut``, if given, is the match (:attr:`imagenets.evaluation.engine.matchfile.Match.lut`), and
    this is the only place one is applied to metrics: the boundaries are taken on the raw ids, then each
    run's id goes through the table (spec, steps 2-3). So with a many-to-one match the seam where two
    clusters of one class touch stays a prediction boundary.

    Masks are piecewise constant, so the counting works on runs: a run starts wherever the GT,
    the prediction or a boundary flag changes along a row (and at every row start). A handful of
    cheap passes find the runs; ids, codes and counts are then computed per run, not per pixel
    (per-pixel histograms of a few distinct values are slow: every add waits for the previous one).
    """
    h, w = gt.shape
    row_changes = _changes([pred, gt], axis=1)                 # h x (w-1): bit 0 prediction, bit 1 GT
    starts = np.empty((h, w), dtype=bool)
    starts[:, 0] = True
    if with_boundaries:
        flags = boundary_bits([pred, gt], boundary_width(h, w), row_changes)   # bit 1 GT, bit 0 prediction
        np.not_equal(flags[:, 1:], flags[:, :-1], out=starts[:, 1:])
        np.logical_or(starts[:, 1:], row_changes, out=starts[:, 1:])
    else:
        np.not_equal(row_changes, 0, out=starts[:, 1:])
    first = np.flatnonzero(starts)
    lengths = np.empty_like(first)  # run lengths (np.diff with append= costs more than the pass)
    np.subtract(first[1:], first[:-1], out=lengths[:-1])
    lengths[-1] = h * w - first[-1]
    g = gt.reshape(-1)[first]
    p = pred.reshape(-1)[first]
    if pred_lut is not None:
        p = pred_lut.take(p)
    gt_ids = np.flatnonzero(np.bincount(g))
    in_range = p <= num_classes
    pred_ids = np.flatnonzero(np.bincount(p[in_range]))
    n_cols = pred_ids.size + 1
    # Column nP gathers every out-of-range id; two low bits for the flags (GT << 1 | prediction).
    col = np.where(in_range, np.searchsorted(pred_ids, p), pred_ids.size)
    key = (np.searchsorted(gt_ids, g) * n_cols + col) * 4
    if with_boundaries:
        key += flags.reshape(-1)[first]
    # Weights are run lengths: float64 sums of integers stay exact far beyond any image size.
    counts = np.bincount(key, weights=lengths, minlength=gt_ids.size * n_cols * 4).astype(np.int64)
    return JointTable(gt_ids, pred_ids, counts.reshape(gt_ids.size, n_cols, 2, 2),
                      int(lengths[~in_range].sum()), int(p.max()))
