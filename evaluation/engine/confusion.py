"""Pixel confusion matrix of an evaluation (GT id x prediction id over 0..K), and what it says about cluster ids."""

from __future__ import annotations

import math
from typing import List, Optional

import numpy as np

from imagenets.subsets import IGNORE

from .cooccurrence import best_match
from .kernel import JointTable
from .metrics import iou


class PixelConfusion:
    """Accumulator: ``update_table`` per image, ``matrix()`` at the end; merges like the metrics.

    Kept sparse per image (an image holds few ids) so that worker results stay small for K = 919.
    """

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self._keys: List[np.ndarray] = []     # flat gt * (K+2) + column
        self._counts: List[np.ndarray] = []

    def update_table(self, table: JointTable) -> None:
        keep = table.gt_ids != IGNORE
        cells = table.counts[keep].sum(axis=(2, 3))               # (nG, nP + 1): last = out of range
        columns = np.append(table.pred_ids, self.num_classes + 1)
        keys = table.gt_ids[keep][:, None] * (self.num_classes + 2) + columns[None, :]
        nonzero = cells > 0
        self._keys.append(keys[nonzero])
        self._counts.append(cells[nonzero])

    def merge(self, other: "PixelConfusion") -> "PixelConfusion":
        self._keys += other._keys
        self._counts += other._counts
        return self

    def matrix(self) -> np.ndarray:
        """(K+1) x (K+2) int64 indexed [GT id, prediction id]; the last column: prediction ids outside 0..K."""
        k = self.num_classes
        flat = np.zeros((k + 1) * (k + 2), dtype=np.int64)
        if self._keys:
            np.add.at(flat, np.concatenate(self._keys), np.concatenate(self._counts).astype(np.int64))
        return flat.reshape(k + 1, k + 2)


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
