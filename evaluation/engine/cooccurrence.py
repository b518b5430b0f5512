"""Co-occurrence of prediction clusters and GT classes, and the match it gives.

``image`` (the benchmark's): ``C[p][g]`` = images where cluster p and class g both appear.
``pixel`` (ours, opt-in): ``C[p][g]`` = pixels predicted p whose GT is g, over the whole set.
Clusters are 1..N with N >= K (N = K: the benchmark's one-to-one match; N > K: over-clustering).
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from imagenets.subsets import IGNORE

from .assignment import linear_sum_assignment
from .kernel import JointTable
from .tiebreak import TieReport, tie_broken_assignment

METHODS = ("image", "pixel")


class Cooccurrence:
    """Accumulator: ``update_table`` per image, ``matrix()`` at the end; merges like the metrics."""

    def __init__(self, num_classes: int, method: str = "image", num_clusters: Optional[int] = None):
        if method not in METHODS:
            raise ValueError(f"unknown matching method {method!r}")
        self.num_classes = num_classes
        self.num_clusters = num_classes if num_clusters is None else num_clusters
        self.method = method
        self.images = 0
        self.outside_pixels = 0                # kept pixels whose prediction id is above N
        self.outside_images = 0
        self.top_id = 0                        # the largest prediction id seen
        self._keys: List[np.ndarray] = []      # flat p * (K+1) + g, per image
        self._weights: List[np.ndarray] = []   # pixel counts (pixel method)

    def update_table(self, table: JointTable) -> None:
        """Add one image; ``table`` from ``joint_table(gt, pred, num_clusters)`` (prediction ids 0..N)."""
        k = self.num_classes
        keep = table.gt_ids != IGNORE
        gt_ids = table.gt_ids[keep]
        cells = table.counts[keep].sum(axis=(2, 3))
        outside = int(cells[:, -1].sum())
        cells = cells[:, :-1]                                        # (nG, nP): drop out-of-range column
        g_sel = (gt_ids >= 1) & (gt_ids <= k)
        p_sel = (table.pred_ids >= 1) & (cells.sum(axis=0) > 0)     # predicted on kept pixels
        weights = cells[np.ix_(g_sel, p_sel)].T.ravel() if self.method == "pixel" else None
        self._add(table.top_id, outside, gt_ids[g_sel], table.pred_ids[p_sel], weights)

    def update_pair(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """Add one image from its raw masks (image method): what ``update_table`` adds from the joint
        table, from the ids present alone (no pixel count per pair of ids)."""
        if self.method != "image":
            raise ValueError("update_pair serves the image method; the pixel method needs update_table")
        n, k = self.num_clusters, self.num_classes
        # Masks are piecewise constant: one id pair per run along the rows is enough to see them all.
        h, w = gt.shape
        starts = np.empty((h, w), dtype=bool)
        starts[:, 0] = True
        np.not_equal(pred[:, 1:], pred[:, :-1], out=starts[:, 1:])
        starts[:, 1:] |= gt[:, 1:] != gt[:, :-1]
        first = np.flatnonzero(starts)
        g, p = gt.reshape(-1).take(first), pred.reshape(-1).take(first)
        top = int(p.max())                                         # the largest id, ignore included
        kept = g != IGNORE
        everywhere = bool(kept.all())
        outside = 0
        if top > n:                                                # kept pixels with an id above N
            beyond = p > n
            if not everywhere:
                beyond &= kept
            outside = int(np.diff(first, append=h * w)[beyond].sum())
        if not everywhere:
            p = p[kept]
        p_ids = np.flatnonzero(np.bincount(p, minlength=n + 1)[1:n + 1]) + 1
        g_ids = np.flatnonzero(np.bincount(g, minlength=k + 1)[1:k + 1]) + 1
        self._add(top, outside, g_ids, p_ids)

    def _add(self, top: int, outside: int, g: np.ndarray, p: np.ndarray, weights: Optional[np.ndarray] = None) -> None:
        """Book one image: its largest prediction id, kept pixels with an id above N, and the classes g
        and clusters p present (with their (p, g) pixel counts for the pixel method)."""
        self.images += 1
        self.top_id = max(self.top_id, top)
        if outside:
            self.outside_pixels += outside
            self.outside_images += 1
        if not (g.size and p.size):
            return
        self._keys.append((p[:, None] * (self.num_classes + 1) + g[None, :]).ravel())
        if weights is not None:
            self._weights.append(weights)

    def merge(self, other: "Cooccurrence") -> "Cooccurrence":
        self.images += other.images
        self.outside_pixels += other.outside_pixels
        self.outside_images += other.outside_images
        self.top_id = max(self.top_id, other.top_id)
        self._keys += other._keys
        self._weights += other._weights
        return self

    def matrix(self) -> np.ndarray:
        """``C`` as a (N+1) x (K+1) int64 matrix indexed [prediction id, GT id]."""
        shape = (self.num_clusters + 1, self.num_classes + 1)
        size = shape[0] * shape[1]
        if not self._keys:
            return np.zeros(shape, dtype=np.int64)
        keys = np.concatenate(self._keys)
        if self.method == "pixel":
            weights = np.concatenate(self._weights).astype(np.int64)
            flat = np.zeros(size, dtype=np.int64)
            np.add.at(flat, keys, weights)
        else:
            flat = np.bincount(keys, minlength=size).astype(np.int64)
        return flat.reshape(shape)


class MatchSolution(NamedTuple):
    """A solved match: ``assignment[p-1]`` = class of cluster p, its objective, and its ties (None when
    no tie-break was asked for)."""

    assignment: np.ndarray
    objective: int
    ties: Optional[TieReport]


def solve_match(cooc: np.ndarray, images: Optional[int] = None, tie_break: Optional[str] = None) -> MatchSolution:
    """Map clusters 1..N onto classes 1..K from the (N+1) x (K+1) co-occurrence, N >= K.

    Each class gets its own cluster, the distinct ones maximising ``sum C[p][g]`` (a linear assignment;
    with N = K that is every cluster, the benchmark's match); every other cluster goes to the class it
    co-occurs with most (ties: the smallest id), or to 0 when it co-occurs with none.
    Among equally good assignments, ``tie_break`` (see ``tiebreak.TIE_BREAKS``; "munkres-1.1.4" is the
    original match.py's) chooses, on the original's costs ``float32(1 - C / images)`` when ``images`` is
    given (the image-level match), else on the counts; None takes any optimum (the fastest).
    """
    c = cooc[1:, 1:]
    ties = None
    if tie_break is None:
        rows, cols = linear_sum_assignment(c, maximize=True)
    else:
        col4row, ties = tie_broken_assignment(c, images, tie_break)
        rows = np.flatnonzero(col4row >= 0)
        cols = col4row[rows]
    assignment = np.where(c.max(axis=1, initial=0) > 0, np.argmax(c, axis=1) + 1, 0).astype(np.int64)
    assignment[rows] = cols + 1
    return MatchSolution(assignment, int(c[rows, cols].sum()), ties)


def best_match(cooc: np.ndarray, images: Optional[int] = None, tie_break: Optional[str] = None
               ) -> Tuple[np.ndarray, int]:
    """``solve_match``'s assignment (``assignment[p-1]`` = class of cluster p) and objective."""
    solution = solve_match(cooc, images, tie_break)
    return solution.assignment, solution.objective


def purity(cooc: np.ndarray, assignment: np.ndarray) -> List[Optional[float]]:
    """Per cluster 1..N: the share of its co-occurrence (images, or pixels) that is on its class.

    Only classes 1..K count in the share; None for a cluster that co-occurs with no class.
    """
    c = cooc[1:, 1:]
    totals = c.sum(axis=1)
    on_class = np.where(assignment > 0, c[np.arange(c.shape[0]), np.maximum(assignment - 1, 0)], 0)
    return [float(a / t) if t else None for a, t in zip(on_class.tolist(), totals.tolist())]


def cluster_report(cooc: np.ndarray, assignment: np.ndarray) -> List[Dict[str, object]]:
    """Per cluster: ``{"cluster": p, "class": g, "purity": share or None}`` (JSON-ready)."""
    return [{"cluster": p, "class": int(g), "purity": share}
            for p, (g, share) in enumerate(zip(assignment.tolist(), purity(cooc, assignment)), 1)]
