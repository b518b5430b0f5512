"""Co-occurrence of prediction clusters and GT classes, and the best one-to-one match.

``image`` (the benchmark's): ``C[p][g]`` = images where cluster p and class g both appear.
``pixel`` (ours, opt-in): ``C[p][g]`` = pixels predicted p whose GT is g, over the whole set.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

from imagenets.subsets import IGNORE

from .assignment import linear_sum_assignment
from .kernel import JointTable

METHODS = ("image", "pixel")


class Cooccurrence:
    """Accumulator: ``update_table`` per image, ``matrix()`` at the end; merges like the metrics."""

    def __init__(self, num_classes: int, method: str = "image"):
        if method not in METHODS:
            raise ValueError(f"unknown matching method {method!r}")
        self.num_classes = num_classes
        self.method = method
        self.images = 0
        self._keys: List[np.ndarray] = []      # flat p * (K+1) + g, per image
        self._weights: List[np.ndarray] = []   # pixel counts (pixel method)

    def update_table(self, table: JointTable) -> None:
        k = self.num_classes
        keep = table.gt_ids != IGNORE
        gt_ids = table.gt_ids[keep]
        cells = table.counts[keep].sum(axis=(2, 3))[:, :-1]          # (nG, nP): drop out-of-range column
        g_sel = (gt_ids >= 1) & (gt_ids <= k)
        p_sel = (table.pred_ids >= 1) & (cells.sum(axis=0) > 0)     # predicted on kept pixels
        self.images += 1
        g, p = gt_ids[g_sel], table.pred_ids[p_sel]
        if not (g.size and p.size):
            return
        keys = (p[:, None] * (k + 1) + g[None, :]).ravel()
        self._keys.append(keys)
        if self.method == "pixel":
            self._weights.append(cells[np.ix_(g_sel, p_sel)].T.ravel())

    def merge(self, other: "Cooccurrence") -> "Cooccurrence":
        self.images += other.images
        self._keys += other._keys
        self._weights += other._weights
        return self

    def matrix(self) -> np.ndarray:
        """``C`` as a (K+1) x (K+1) int64 matrix indexed [prediction id, GT id]."""
        size = (self.num_classes + 1) ** 2
        if not self._keys:
            return np.zeros((self.num_classes + 1,) * 2, dtype=np.int64)
        keys = np.concatenate(self._keys)
        if self.method == "pixel":
            weights = np.concatenate(self._weights).astype(np.int64)
            flat = np.zeros(size, dtype=np.int64)
            np.add.at(flat, keys, weights)
        else:
            flat = np.bincount(keys, minlength=size).astype(np.int64)
        return flat.reshape(self.num_classes + 1, self.num_classes + 1)


def best_match(cooc: np.ndarray) -> Tuple[np.ndarray, int]:
    """One-to-one map of clusters 1..K onto classes 1..K maximising ``sum C[p][g]``.

    Returns ``assignment`` (``assignment[p-1]`` = class of cluster p) and the objective.
    """
    c = cooc[1:, 1:]
    rows, cols = linear_sum_assignment(c, maximize=True)
    assignment = np.empty(c.shape[0], dtype=np.int64)
    assignment[rows] = cols + 1
    return assignment, int(c[rows, cols].sum())
