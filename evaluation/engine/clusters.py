"""Pixels of every raw cluster id on every GT class, for the report's cluster purity under a many-to-one match.

A one-to-one match needs none of this (a class's column of the matched confusion is its one cluster's
pixels); with several clusters per class the counts must be taken on the raw ids, before the match.
"""

from __future__ import annotations

from typing import List

import numpy as np

from imagenets.subsets import IGNORE

from .kernel import joint_table


class ClusterPixels:
    """Accumulator: ``update(gt, pred)`` per image (raw prediction ids), ``matrix()`` at the end; merges."""

    def __init__(self, num_classes: int, num_clusters: int):
        self.num_classes = num_classes
        self.num_clusters = num_clusters
        self._keys: List[np.ndarray] = []     # flat cluster * (K+1) + class
        self._counts: List[np.ndarray] = []

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """Add one image: ``pred`` holds the cluster ids (ids above ``num_clusters`` are dropped)."""
        table = joint_table(gt, pred, self.num_clusters, with_boundaries=False)
        keep = (table.gt_ids != IGNORE) & (table.gt_ids <= self.num_classes)
        cells = table.counts[keep].sum(axis=(2, 3))[:, :-1]        # (nG, nP): out-of-range column dropped
        keys = table.pred_ids[None, :] * (self.num_classes + 1) + table.gt_ids[keep][:, None]
        nonzero = cells > 0
        self._keys.append(keys[nonzero])
        self._counts.append(cells[nonzero])

    def merge(self, other: "ClusterPixels") -> "ClusterPixels":
        self._keys += other._keys
        self._counts += other._counts
        return self

    def matrix(self) -> np.ndarray:
        """(N+1) x (K+1) int64 indexed [cluster id, GT id], ignore pixels dropped."""
        shape = (self.num_clusters + 1, self.num_classes + 1)
        flat = np.zeros(shape[0] * shape[1], dtype=np.int64)
        if self._keys:
            np.add.at(flat, np.concatenate(self._keys), np.concatenate(self._counts).astype(np.int64))
        return flat.reshape(shape)
