"""The threshold curve with a fresh image-level match at every threshold, from the same single pass.

A cluster is present in an image at threshold ``j`` when its highest score bin (over the pixels
not ignored) exceeds ``j``: one histogram of those maxima gives the co-occurrence matrix of every
threshold. The counts are kept by raw cluster id and score bin, so each threshold's match is
applied afterwards: dataset-wide (cluster, class, bin) pixel counts give the IoUs, per-image
"most predicted clusters" flags give Acc; FMeasure needs no match (the match maps 1..K onto 1..K).
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

from .cooccurrence import best_match
from .tiebreak import DEFAULT_TIE_BREAK
from .metrics import iou
from .thresholds import CurveCounts, ScoreTable, curve_rows, f_values, thresholded

#: Per-image cell lists are summed into one once this long: memory stays flat in the image count.
_COMPACT_AFTER = 256


class RematchCounts:
    """Accumulators of the rematch curve: ``update`` per image, then ``matches()`` and ``compute()``."""

    def __init__(self, num_classes: int, thresholds: int):
        self.num_classes, self.thresholds = num_classes, thresholds
        self._plain = CurveCounts(num_classes, thresholds)  # image count, GT totals, F, out-of-range
        self._cell_keys: List[np.ndarray] = []    # cluster * (K+1) + class; cluster K+1 = outside 0..K
        self._cell_bins: List[np.ndarray] = []    # (cells, T+1) pixel counts by score bin
        self._pair_keys: List[np.ndarray] = []    # cluster * (K+1) + class present in one image
        self._pair_bins: List[np.ndarray] = []    # the cluster's highest score bin in that image
        self._top_image: List[np.ndarray] = []    # per (image, cluster in 1..K): the image's index
        self._top_cluster: List[np.ndarray] = []
        self._top: List[np.ndarray] = []          # (clusters, T) bool: among the most predicted
        self._image_classes: List[np.ndarray] = []  # image * (K+1) + GT class present

    @property
    def images(self) -> int:
        return self._plain.images

    @property
    def out_of_range_pixels(self) -> int:
        return self._plain.out_of_range_pixels

    @property
    def out_of_range_images(self) -> int:
        return self._plain.out_of_range_images

    def update(self, table: ScoreTable) -> None:
        image = self._plain.images
        plain = self._plain
        if not plain.count_image(table):
            return
        k, gt_ids, n_pred = self.num_classes, table.gt_ids, table.pred_ids.size
        counts = thresholded(table)
        plain.gt[gt_ids] += counts[:, :, 0].sum(axis=1)
        plain.f_sum += f_values(table, counts)

        clusters = np.append(table.pred_ids, k + 1)
        nonzero = table.counts.sum(axis=2) > 0
        keys = clusters[None, :] * (k + 1) + gt_ids[:, None]
        self._cell_keys.append(keys[nonzero])
        self._cell_bins.append(table.counts[nonzero])

        # Clusters 1..K: highest bin and, per threshold, whether among the most predicted.
        per_bin = table.counts[:, 1:n_pred].sum(axis=0)              # (clusters, T+1)
        highest = per_bin.shape[1] - 1 - np.argmax(per_bin[:, ::-1] > 0, axis=1)
        present = per_bin.any(axis=1) & (highest > 0)
        classes = gt_ids[gt_ids > 0]
        if present.any() and classes.size:
            ids = table.pred_ids[1:][present]
            self._pair_keys.append((ids[:, None] * (k + 1) + classes[None, :]).ravel())
            self._pair_bins.append(np.repeat(highest[present], classes.size))
        if n_pred > 1:
            kept = table.kept()[:, 1:n_pred, 1:].sum(axis=0)        # (clusters, T)
            most = kept.max(axis=0)
            self._top_image.append(np.full(n_pred - 1, image, dtype=np.int64))
            self._top_cluster.append(table.pred_ids[1:])
            self._top.append((kept == most) & (most > 0))
        self._image_classes.append(image * (k + 1) + classes)

    def merge(self, other: "RematchCounts") -> "RematchCounts":
        shift = self.images
        self._plain.merge(other._plain)
        for name in ("_cell_keys", "_cell_bins", "_pair_keys", "_pair_bins", "_top_cluster", "_top"):
            getattr(self, name).extend(getattr(other, name))
        self._top_image.extend(i + shift for i in other._top_image)
        self._image_classes.extend(c + shift * (self.num_classes + 1) for c in other._image_classes)
        if len(self._cell_keys) > _COMPACT_AFTER:
            keys, summed = self._cells()
            self._cell_keys, self._cell_bins = [keys], [summed]
        return self

    # -- results -----------------------------------------------------------------------
    def matches(self) -> Tuple[np.ndarray, np.ndarray]:
        """(T, K) assignments (``[j, p-1]`` = class of cluster p) and the (T,) objectives; ties are
        broken as the original match.py breaks them (munkres 1.1.4 on its float32 costs).

        The co-occurrence matrix only grows as the threshold falls; an unchanged matrix keeps
        its assignment, so only distinct matrices are solved.
        """
        k, t = self.num_classes, self.thresholds
        keys = _cat(self._pair_keys, np.int64)
        highest = _cat(self._pair_bins, np.int64)
        cooc = np.zeros((k + 1) * (k + 1), dtype=np.int64)
        assignments = np.zeros((t, k), dtype=np.int64)
        objectives = np.zeros(t, dtype=np.int64)
        solved = None
        for j in range(t - 1, -1, -1):
            new = highest == j + 1
            if new.any() or solved is None:
                cooc += np.bincount(keys[new], minlength=cooc.size)
                solved = best_match(cooc.reshape(k + 1, k + 1), self.images, DEFAULT_TIE_BREAK)
            assignments[j], objectives[j] = solved
        return assignments, objectives

    def compute(self, assignments: np.ndarray) -> List[Dict[str, float]]:
        """mIoU, Acc and FMeasure of each threshold under its own assignment."""
        k, t = self.num_classes, self.thresholds
        lut = np.zeros((t, k + 2), dtype=np.int64)
        lut[:, 1:k + 1] = assignments
        lut[:, k + 1] = -1                                   # outside 0..K: no class
        miou = self._miou(lut)
        correct = self._correct(lut)
        return curve_rows(miou, correct, self._plain.f_sum, self.images)

    def _miou(self, lut: np.ndarray) -> np.ndarray:
        k = self.num_classes
        keys, summed = self._cells()
        kept = np.cumsum(summed[:, ::-1], axis=1)[:, ::-1][:, 1:]   # (cells, T): kept at each threshold
        cluster, cls = keys // (k + 1), keys % (k + 1)
        gt = self._plain.gt
        out = np.zeros(self.thresholds)
        for j in range(self.thresholds):
            weights = kept[:, j].astype(np.float64)  # float64 sums of integers: exact far beyond any set
            dropped = gt - np.bincount(cls, weights, minlength=k + 1).astype(np.int64)
            by_cluster = np.bincount(cluster, weights, minlength=k + 2).astype(np.int64)
            pred = np.zeros(k + 1, dtype=np.int64)
            pred[lut[j, 1:k + 1]] = by_cluster[1:k + 1]     # a one-to-one match: a permutation
            pred[0] = by_cluster[0] + dropped.sum()
            hit = lut[j, cluster] == cls
            inter = np.bincount(cls[hit], weights[hit], minlength=k + 1).astype(np.int64)
            inter[0] += dropped[0]
            out[j] = iou(inter, pred, gt).mean()
        return out

    def _cells(self) -> Tuple[np.ndarray, np.ndarray]:
        """Distinct (cluster, class) keys and their summed (cells, T+1) counts by score bin."""
        if not self._cell_keys:
            return np.zeros(0, np.int64), np.zeros((0, self.thresholds + 1), np.int64)
        keys = np.concatenate(self._cell_keys)
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        starts = np.flatnonzero(np.diff(keys, prepend=-1))
        return keys[starts], np.add.reduceat(np.concatenate(self._cell_bins)[order], starts, axis=0)

    def _correct(self, lut: np.ndarray) -> np.ndarray:
        k = self.num_classes
        correct = np.zeros(self.thresholds, dtype=np.int64)
        if not self._top:
            return correct
        image = np.concatenate(self._top_image)
        cluster = np.concatenate(self._top_cluster)
        top = np.concatenate(self._top)
        truth = np.sort(_cat(self._image_classes, np.int64))
        starts = np.flatnonzero(np.diff(image, prepend=-1))  # entries are grouped by image
        for j in range(self.thresholds):
            # Ties among the most predicted clusters go to the smallest class they are matched to.
            chosen = np.minimum.reduceat(np.where(top[:, j], lut[j, cluster], k + 1), starts)
            key = image[starts] * (k + 1) + chosen
            correct[j] = int(np.count_nonzero((chosen <= k) & _sorted_isin(key, truth)))
        return correct


def _cat(parts: List[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)


def _sorted_isin(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    if not sorted_set.size:
        return np.zeros(values.shape, dtype=bool)
    at = np.minimum(np.searchsorted(sorted_set, values), sorted_set.size - 1)
    return sorted_set[at] == values
