"""mIoU, Acc and FMeasure at every "other" threshold from one pass: per-image counts by score bin.

At threshold ``t`` a pixel whose score is below ``t`` is predicted 0 (PASS's rule, before any
match). Per image one table ``counts[g, q, b]`` (GT id, prediction id, score bin) holds every
threshold at once: the pixels kept at threshold ``j`` are those of bins ``> j``, the others
join column 0. Boundary metrics are not part of the curve; the best threshold gets a full
evaluation of its own (``curve.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

from imagenets.subsets import IGNORE

from .metrics import InvalidGroundTruth, f_measure, iou


@dataclass
class ScoreTable:
    """Pixel counts of one image by (GT id, prediction id, score bin); ignore pixels dropped."""

    gt_ids: np.ndarray     # (nG,) sorted GT ids present, ignore excluded
    pred_ids: np.ndarray   # (nQ,) sorted prediction ids in 0..K present, 0 always first
    counts: np.ndarray     # (nG, nQ + 1, T + 1) int64; column nQ = every id outside 0..K
    out_of_range: int      # pixels (ignore included) whose prediction id is outside 0..K

    def kept(self) -> np.ndarray:
        """(nG, nQ + 1, T + 1): ``[..., 0]`` all pixels, ``[..., j + 1]`` those kept at threshold j."""
        return np.cumsum(self.counts[..., ::-1], axis=-1)[..., ::-1]


def score_table(gt: np.ndarray, pred: np.ndarray, bins: np.ndarray, num_classes: int, thresholds: int,
                lut: Optional[np.ndarray] = None) -> ScoreTable:
    """Count one image: ``gt``/``pred`` H x W int ids, ``bins`` H x W int32 score bins (0..T).

    ``lut`` (a match over every mask id) maps the prediction ids first; thresholding commutes
    with it since the match keeps 0 at 0.
    """
    k = num_classes
    g, p = gt.reshape(-1), pred.reshape(-1)
    gt_present = np.bincount(g)
    gt_all = np.flatnonzero(gt_present)
    gt_ids = gt_all[gt_all != IGNORE]
    if gt_ids.size and gt_ids[-1] > k:
        raise InvalidGroundTruth(int(gt_ids[-1]))
    raw_present = np.bincount(p)
    raw = np.flatnonzero(raw_present)
    ids = lut.take(raw) if lut is not None else raw
    in_range = ids <= k
    pred_ids = np.union1d(ids[in_range], [0])
    n_bins = thresholds + 1
    n_cols = pred_ids.size + 1
    # Flat key ((row * n_cols) + column) * n_bins + bin, from two small per-image lookup tables;
    # the ignore row (index nG) is dropped after counting.
    row_key = np.full(gt_present.size, gt_ids.size * n_cols * n_bins, dtype=np.int32)
    row_key[gt_ids] = np.arange(gt_ids.size, dtype=np.int32) * (n_cols * n_bins)
    col_key = np.zeros(raw_present.size, dtype=np.int32)
    col_key[raw] = np.where(in_range, np.searchsorted(pred_ids, ids), pred_ids.size) * n_bins
    key = row_key.take(g)
    key += col_key.take(p)
    key += bins.reshape(-1)
    counts = np.bincount(key, minlength=(gt_ids.size + 1) * n_cols * n_bins)
    counts = counts.reshape(gt_ids.size + 1, n_cols, n_bins)[:gt_ids.size].astype(np.int64, copy=False)
    return ScoreTable(gt_ids, pred_ids, counts, int(raw_present[raw[~in_range]].sum()))


def thresholded(table: ScoreTable) -> np.ndarray:
    """(nG, nQ + 1, T): counts of each threshold after the pixels below it turned 0 (column 0)."""
    kept = table.kept()
    out = kept[..., 1:].copy()
    out[:, 0, :] += kept[:, :, 0].sum(axis=1)[:, None] - kept[:, :, 1:].sum(axis=1)
    return out


def f_values(table: ScoreTable, counts: np.ndarray) -> np.ndarray:
    """Per-threshold F-measure of one image from :func:`thresholded` counts (column 0 = id 0)."""
    is_class = table.gt_ids > 0
    true_fg = int(counts[is_class, :, 0].sum())
    fg = counts[:, 1:, :].sum(axis=1)           # (nG, T): predicted foreground per GT row
    return f_measure(fg[is_class].sum(axis=0), true_fg, fg.sum(axis=0))


class CurveCounts:
    """The curve's accumulators for a fixed match (or none): ``update`` per image, ``compute()`` per threshold."""

    def __init__(self, num_classes: int, thresholds: int):
        k, t = num_classes, thresholds
        self.num_classes, self.thresholds = k, t
        self.inter = np.zeros((t, k + 1), dtype=np.int64)
        self.pred = np.zeros((t, k + 1), dtype=np.int64)
        self.gt = np.zeros(k + 1, dtype=np.int64)
        self.correct = np.zeros(t, dtype=np.int64)
        self.f_sum = np.zeros(t, dtype=np.float64)
        self.images = 0
        self.out_of_range_pixels = 0
        self.out_of_range_images = 0

    def count_image(self, table: ScoreTable) -> bool:
        """Image and out-of-range bookkeeping; False when nothing is left after dropping ignore."""
        self.images += 1
        if table.out_of_range:
            self.out_of_range_pixels += table.out_of_range
            self.out_of_range_images += 1
        return bool(table.gt_ids.size)

    def update(self, table: ScoreTable) -> None:
        if not self.count_image(table):
            return  # counts nowhere; F and Acc count 0 (as SegmentationMetrics)
        counts = thresholded(table)                        # (nG, nQ + 1, T)
        gt_ids, pred_ids = table.gt_ids, table.pred_ids
        n_pred = pred_ids.size
        by_pred = counts[:, :n_pred].sum(axis=0)           # (nQ, T)
        self.gt[gt_ids] += counts[:, :, 0].sum(axis=1)     # a GT row's total is the same at every t
        self.pred[:, pred_ids] += by_pred.T
        common, rows, cols = np.intersect1d(gt_ids, pred_ids, assume_unique=True, return_indices=True)
        self.inter[:, common] += counts[rows, cols].T
        # Acc: the most predicted class in 1..K (ties: smallest id), right when the GT holds it.
        if n_pred > 1:
            cand = by_pred[1:]
            best = np.argmax(cand, axis=0)
            top = cand[best, np.arange(self.thresholds)]
            self.correct += (top > 0) & np.isin(pred_ids[1:][best], gt_ids[gt_ids > 0])
        self.f_sum += f_values(table, counts)

    def merge(self, other: "CurveCounts") -> "CurveCounts":
        for name in ("inter", "pred", "gt", "correct", "f_sum"):
            getattr(self, name).__iadd__(getattr(other, name))
        self.images += other.images
        self.out_of_range_pixels += other.out_of_range_pixels
        self.out_of_range_images += other.out_of_range_images
        return self

    def compute(self) -> List[Dict[str, float]]:
        """mIoU, Acc and FMeasure (percent) of each threshold, in threshold order."""
        ious = iou(self.inter, self.pred, self.gt[None, :])
        return curve_rows(ious.mean(axis=1), self.correct, self.f_sum, self.images)


def curve_rows(miou: np.ndarray, correct: np.ndarray, f_sum: np.ndarray, images: int) -> List[Dict[str, float]]:
    n = max(images, 1)
    return [{"mIoU": float(m), "Acc": 100.0 * int(c) / n, "FMeasure": 100.0 * float(f) / n}
            for m, c, f in zip(miou, correct, f_sum)]
