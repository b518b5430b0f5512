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

from imagenets.subsets import IGNORE


def boundary_width(height: int, width: int) -> int:
    """The spec's ``d = max(1, round(0.03 * sqrt(H^2 + W^2)))`` (Python round: half to even)."""
    return max(1, round(0.03 * math.sqrt(height * height + width * width)))


def _window_or(bits: np.ndarray, size: int, step: int) -> np.ndarray:
    """``out[j] = bits[j] | bits[j + step] | ... | bits[j + (size - 1) * step]`` (length n - (size - 1) * step).

    On flat images: ``step`` 1 runs along a row, ``step`` w down a column; every pass is one
    contiguous 1-D operation (2-D slices of an image cost several times more). Doubling: after each
    step ``r[j]`` covers ``span`` cells; O(log size) passes over small integers, no per-class loop,
    so large windows on large images stay cheap. Works bitwise, so one pass serves several masks
    packed as bits of a uint8.
    """
    r = bits
    span = 1
    while span * 2 <= size:
        r = r[:-span * step] | r[span * step:]
        span *= 2
    rest = size - span
    if rest:
        r = r[:-rest * step] | r[rest * step:]
    return r


def _changes(flat_maps: Sequence[np.ndarray], step: int) -> np.ndarray:
    """uint8 (length n) whose bit b says ``flat_maps[b][j] != flat_maps[b][j + step]``; the last ``step``
    entries are 0. With ``step`` 1 the last entry of each row compares with the next row's first: callers
    never read it."""
    n = flat_maps[0].size
    out = None
    for bit, ids in enumerate(flat_maps):
        changed = np.empty(n, dtype=bool)
        np.not_equal(ids[step:], ids[:-step], out=changed[:n - step])
        changed[n - step:] = False
        step_bits = changed.view(np.uint8)
        for _ in range(bit):
            step_bits += step_bits  # doubling: numpy's uint8 add is vectorised, its shift is ~10x slower
        if out is None:
            out = step_bits
        else:
            out |= step_bits
    return out


def _flat(ids: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(ids).reshape(-1)


def _boundary_flat(flat_maps: Sequence[np.ndarray], h: int, w: int, d: int,
                   row_changes: Optional[np.ndarray] = None) -> np.ndarray:
    """:func:`boundary_bits` on flat maps (length h * w), as a flat uint8."""
    n = h * w
    full = (1 << len(flat_maps)) - 1
    out = np.full(n, full, dtype=np.uint8)
    if h <= 2 * d or w <= 2 * d:
        return out
    if row_changes is None:
        row_changes = _changes(flat_maps, 1)
    # Row windows of 2d changes (columns x-d..x+d), then 2d+1 of them down (rows y-d..y+d): index j
    # stands for the pixel j + d*w + d. Its columns reach at most x+d-1 < w-1: never a row's last entry.
    rows_bad = _window_or(_window_or(row_changes, 2 * d, 1), 2 * d + 1, w)
    col_bad = _window_or(_changes(flat_maps, w)[:n - w], 2 * d, w)     # j: rows y-d..y+d of column j's
    inner = (h - 2 * d) * w - 2 * d  # from pixel (d, d) to pixel (h-d-1, w-d-1)
    np.bitwise_or(rows_bad[:inner], col_bad[d:d + inner], out=out[d * w + d:d * w + d + inner])
    square = out.reshape(h, w)
    square[:, :d] = full                 # the border columns, written above with wrapped-around values
    square[:, w - d:] = full
    return out


def boundary_bits(maps: Sequence[np.ndarray], d: int, row_changes: Optional[np.ndarray] = None) -> np.ndarray:
    """uint8 map whose bit b is :func:`boundary_mask` of ``maps[b]`` (same shapes), in one pass.

    The square is constant iff every row of it is constant (horizontal test on the rows
    ``y-d..y+d``) and the centre column is constant (vertical test): two 1-D window tests.
    """
    h, w = maps[0].shape
    return _boundary_flat([_flat(ids) for ids in maps], h, w, d, row_changes).reshape(h, w)


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
    if not h * w:  # no pixel: nothing to count
        return JointTable(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 1, 2, 2), np.int64), 0)
    g_flat, p_flat = _flat(gt), _flat(pred)
    row_changes = _changes([p_flat, g_flat], 1)             # bit 0 prediction, bit 1 GT
    starts = np.empty(h * w, dtype=bool)
    starts[0] = True
    if with_boundaries:
        flags = _boundary_flat([p_flat, g_flat], h, w, boundary_width(h, w), row_changes)
        np.not_equal(flags[1:], flags[:-1], out=starts[1:])
        np.logical_or(starts[1:], row_changes[:-1], out=starts[1:])
    else:
        np.not_equal(row_changes[:-1], 0, out=starts[1:])
    starts[::w] = True  # every row starts a run (the change entry before it compared across rows)
    first = np.flatnonzero(starts)
    lengths = np.empty_like(first)  # run lengths (np.diff with append= costs more than the pass)
    np.subtract(first[1:], first[:-1], out=lengths[:-1])
    lengths[-1] = h * w - first[-1]
    g = g_flat[first]
    p = p_flat[first]
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
        key += flags[first]
    # Weights are run lengths: float64 sums of integers stay exact far beyond any image size.
    counts = np.bincount(key, weights=lengths, minlength=gt_ids.size * n_cols * 4).astype(np.int64)
    return JointTable(gt_ids, pred_ids, counts.reshape(gt_ids.size, n_cols, 2, 2),
                      int(lengths[~in_range].sum()), int(p.max()))


@dataclass
class Cells:
    """The non-empty cells of several images' joint tables, ignore rows dropped, one entry each."""

    images: int           # images in the batch (entries give their position)
    image: np.ndarray     # (n,) the entry's image
    gt: np.ndarray        # (n,) GT id (0..K, or an invalid id > K other than ignore)
    pred: np.ndarray      # (n,) prediction id in 0..K, or K + 1 for every id outside 0..K
    flags: np.ndarray     # (n,) GT boundary << 1 | prediction boundary
    pixels: np.ndarray    # (n,) int64 pixel count, > 0


def table_cells(tables: Sequence[JointTable], num_classes: int) -> Cells:
    """Flatten joint tables into :class:`Cells` in a few vectorised passes (no per-image numpy work
    beyond a ravel): what the accumulators add up per batch of images."""
    m = len(tables)
    gt_ids = [t.gt_ids for t in tables]
    cols = [np.append(t.pred_ids, num_classes + 1) for t in tables]
    cell_counts = [t.counts.reshape(-1) for t in tables]
    n_cols = np.array([c.size for c in cols], dtype=np.int64)
    sizes = np.array([c.size for c in cell_counts], dtype=np.int64)
    empty = np.zeros(0, dtype=np.int64)
    flat = np.concatenate([empty] + cell_counts)
    at = np.flatnonzero(flat)
    image = np.repeat(np.arange(m, dtype=np.int64), sizes)[at]
    offset = at - (np.cumsum(sizes) - sizes)[image]          # position within the image's table
    cell, flags = offset >> 2, offset & 3
    row, col = cell // n_cols[image], cell % n_cols[image]
    row_start = np.cumsum([g.size for g in gt_ids]) - np.array([g.size for g in gt_ids], dtype=np.int64)
    col_start = np.cumsum(n_cols) - n_cols
    gt = np.concatenate([empty] + gt_ids)[row_start[image] + row] if at.size else empty
    pred = np.concatenate([empty] + cols)[col_start[image] + col] if at.size else empty
    keep = gt != IGNORE
    return Cells(m, image[keep], gt[keep], pred[keep], flags[keep], flat[at][keep].astype(np.int64))
