"""Pixel confusion matrix of an evaluation (GT id x prediction id over 0..K), and what it says about cluster ids."""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import numpy as np

from .cooccurrence import best_match
from .kernel import Cells, JointTable, table_cells
from .metrics import iou


class SparseMatrix:
    """Counts on a fixed grid (``shape``), kept as blocks of (flat key, count) while images are added, so that
    worker results stay small; ``merge`` joins the blocks, ``matrix()`` sums them into int64 at the end."""

    def __init__(self, shape: Tuple[int, int]):
        self.shape = shape
        self._keys: List[np.ndarray] = []
        self._counts: List[np.ndarray] = []

    def add(self, keys: np.ndarray, counts: np.ndarray) -> None:
        self._keys.append(keys)
        self._counts.append(counts)

    def merge(self, other: "SparseMatrix") -> "SparseMatrix":
        self._keys += other._keys
        self._counts += other._counts
        return self

    def matrix(self) -> np.ndarray:
        empty = np.zeros(0, dtype=np.int64)
        # float64 weights: sums of integers stay exact far beyond any number of pixels
        flat = np.bincount(np.concatenate([empty] + self._keys), np.concatenate([empty] + self._counts),
                           minlength=self.shape[0] * self.shape[1])
        return flat.astype(np.int64).reshape(self.shape)


class PixelConfusion(SparseMatrix):
    """Accumulator: ``add_cells`` per batch of images, ``matrix()`` at the end; merges like the metrics.

    Built from the cells the metrics add anyway (:func:`~.kernel.table_cells`): one compact sparse block
    per batch (keys gt * (K+2) + column), so worker results stay small for K = 919 and the cluster-id hint
    costs next to nothing. ``matrix()``: (K+1) x (K+2) int64 indexed [GT id, prediction id]; the last
    column: prediction ids outside 0..K.
    """

    def __init__(self, num_classes: int):
        super().__init__((num_classes + 1, num_classes + 2))
        self.num_classes = num_classes

    def update_table(self, table: JointTable) -> None:
        self.add_cells(table_cells([table], self.num_classes))

    def add_cells(self, cells: Cells) -> None:
        keys, inverse = np.unique(cells.gt * (self.num_classes + 2) + cells.pred, return_inverse=True)
        self.add(keys, np.bincount(inverse.reshape(-1), weights=cells.pixels, minlength=keys.size).astype(np.int64))


def miou_of(confusion: np.ndarray, relabel: Optional[np.ndarray] = None) -> float:
    """The mIoU of a [GT, prediction] confusion (last column out of range), after moving prediction
    column p to class ``relabel[p]`` if given (a permutation of 0..K)."""
    square = confusion[:, :-1]
    if relabel is not None:
        moved = np.zeros_like(square)
        moved[:, relabel] = square
        square = moved
    inter = np.diagonal(square)
    return float(iou(inter, square.sum(axis=0), confusion.sum(axis=1)).mean())


def best_relabelled_miou(confusion: np.ndarray) -> float:
    """mIoU after the one-to-one relabelling of prediction ids 1..K that maximises the pixels
    predicted right (an estimate of what a match would give; 0 stays 0)."""
    assignment, _objective = best_match(np.ascontiguousarray(confusion[:, :-1].T))
    return miou_of(confusion, np.concatenate([[0], assignment]))


def looks_like_clusters(plain: float, relabelled: float) -> bool:
    """The hint's rule: relabelling would more than double the mIoU and add over 10 points."""
    return not math.isnan(plain) and relabelled > 2 * plain and relabelled > plain + 10
