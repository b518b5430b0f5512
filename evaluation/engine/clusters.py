"""Pixels of every raw cluster id on every GT class, for the report's cluster purity under a many-to-one match.

A one-to-one match needs none of this (a class's column of the matched confusion is its one cluster's
pixels); with several clusters per class the counts must be taken on the raw ids, before the match.
"""

from __future__ import annotations

import numpy as np

from .confusion import SparseMatrix
from .kernel import joint_table, table_cells


class ClusterPixels(SparseMatrix):
    """Accumulator: ``update(gt, pred)`` per image (raw prediction ids), ``matrix()`` at the end; merges.
    ``matrix()``: (N+1) x (K+1) int64 indexed [cluster id, GT id], ignore pixels dropped."""

    def __init__(self, num_classes: int, num_clusters: int):
        super().__init__((num_clusters + 1, num_classes + 1))
        self.num_classes = num_classes
        self.num_clusters = num_clusters

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """Add one image: ``pred`` holds the cluster ids (ids above ``num_clusters`` are dropped)."""
        n = self.num_clusters
        cells = table_cells([joint_table(gt, pred, n, with_boundaries=False)], n)  # ignore rows dropped
        keep = (cells.gt <= self.num_classes) & (cells.pred <= n)  # GT classes; clusters 0..N
        self.add(cells.pred[keep] * (self.num_classes + 1) + cells.gt[keep], cells.pixels[keep])
