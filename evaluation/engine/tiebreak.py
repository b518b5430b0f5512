"""Which of several equally good matches a match returns, and the report on its ties.

The benchmark's match maximises the co-occurrence; when several assignments reach the optimum, the
solver's scan order picks one, and the scores can differ. The original ``match.py`` hands munkres 1.1.4
the costs ``float32(1 - C / N)``: that choice is the default here. The others are the later munkres
releases and scipy, for comparing with work that used them. Ties are judged on the costs the chosen
solver sees (float32 costs for munkres, the counts for scipy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from .assignment import linear_sum_assignment
from .munkres_order import benchmark_costs, exact_integers, munkres_114
from .sap_order import native_order, pure_python_order, scipy_order
from .ties import rows_with_alternatives

__all__ = ["DEFAULT_TIE_BREAK", "TIE_BREAKS", "TieReport", "tie_broken_assignment"]

DEFAULT_TIE_BREAK = "munkres-1.1.4"
#: --tie-break choices and what each reproduces (--help and the README list them).
TIE_BREAKS: Dict[str, str] = {
    "munkres-1.1.4": "munkres 1.1.4, the release pip installed in 2021-2022: the original match.py's and PASS's match",
    "munkres-3.0.0": "munkres 3.0.0 (October 2026; its native kernel from 4x4 on)",
    "munkres-2.0.0": "munkres 2.0.0 (October 2026, pure Python)",
    "scipy": "scipy.optimize.linear_sum_assignment(C, maximize=True) on the counts",
}
# Clusters that co-occur with at least this share of the classes seen are "everywhere".
BROAD_SHARE = 0.9
#: Most clusters (N > K) a tie-break handles: munkres works on a padded N x N copy (memory N^2, time
#: about N^2 K); beyond, the match is any optimum and its ties are not analysed (a warning says so).
MAX_PADDED_CLUSTERS = 3072


@dataclass(frozen=True)
class TieReport:
    """The ties of one match (``as_json`` is the report file's object)."""

    tie_break: str
    unique: Optional[bool]            # None: too many clusters to analyse (MAX_PADDED_CLUSTERS)
    clusters: int                     # N: ids 1..N took part
    predicted_clusters: int           # ids co-occurring with at least one class
    tied_clusters: Tuple[int, ...]    # ids some other optimal match sends elsewhere
    tied_predicted_clusters: int
    broad_clusters: int               # predicted ids co-occurring with >= 90% of the classes seen
    degenerate: bool
    image_level: bool = True          # counts of images (else of pixels): the warning's advice differs

    def as_json(self) -> Dict[str, object]:
        return {"tie_break": self.tie_break, "unique": self.unique, "clusters": self.clusters,
                "predicted_clusters": self.predicted_clusters,
                "tied_predicted_clusters": self.tied_predicted_clusters,
                "tied_clusters": list(self.tied_clusters), "broad_clusters": self.broad_clusters,
                "degenerate": self.degenerate}

    def warnings(self) -> List[str]:
        """One line on the ties if the optimum is not unique, one more for a degenerate match."""
        lines = []
        if self.unique is None:
            lines.append(f"{self.clusters} clusters: above {MAX_PADDED_CLUSTERS}, ties are neither analysed nor "
                         f"broken as {self.tie_break} breaks them (munkres pads the costs to {self.clusters} x "
                         f"{self.clusters}); the match is one of the optimal ones")
        elif not self.unique and self.predicted_clusters:  # with none predicted, the match warns it is arbitrary
            unseen = len(self.tied_clusters) - self.tied_predicted_clusters
            lines.append(
                f"tied match: {self.tied_predicted_clusters} of the {self.predicted_clusters} predicted clusters "
                + (f"(and {unseen} that co-occur with no class) " if unseen else "")
                + "could go to another class at the same objective; "
                + f"kept {self.tie_break}'s choice"
                + (", the original match.py's" if self.tie_break == DEFAULT_TIE_BREAK and self.image_level else "")
                + " (other tools and munkres versions may choose, and count ties, differently)")
        if self.degenerate:
            advice = ("image-level co-occurrence cannot tell them apart and the match is mostly ties; "
                      "--method pixel matches by pixel overlap instead") if self.image_level else (
                      "the match is mostly ties")
            lines.append(
                f"degenerate match: {self.broad_clusters} of {self.predicted_clusters} predicted clusters "
                f"co-occur with at least {BROAD_SHARE:.0%} of the classes seen (every cluster in nearly every "
                f"image, as with noisy or salt-and-pepper predictions), so {advice}")
        return lines


def tie_broken_assignment(counts: np.ndarray, images: Optional[int], tie_break: str = DEFAULT_TIE_BREAK
                          ) -> Tuple[np.ndarray, TieReport]:
    """Optimal column per row of the (N, K) ``counts`` (N >= K; -1: no column), maximising their sum,
    with ``tie_break``'s choice among optima, and the tie report.

    ``images`` (N images) gives the original's costs ``float32(1 - C / N)`` (the image-level match);
    None uses the counts themselves (pixel counts). scipy always sees the counts. A tie counts where it
    changes a cluster's class, a cluster left without a class of its own taking the one it co-occurs
    with most (``solve_match``'s rule).
    """
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"unknown tie-break {tie_break!r}: use one of {', '.join(TIE_BREAKS)}")
    counts = np.asarray(counts, dtype=np.int64)
    n, k = counts.shape
    if n > max(k, MAX_PADDED_CLUSTERS):
        rows, cols = linear_sum_assignment(counts, maximize=True)
        col4row = np.full(n, -1, dtype=np.int64)
        col4row[rows] = cols
        return col4row, _report(counts, tie_break, None, np.zeros(n, dtype=bool), images is not None)
    if images is None or tie_break == "scipy":
        costs = (counts.max(initial=0) - counts).astype(np.float64)  # what maximising the counts means
    else:
        costs = benchmark_costs(counts, images).astype(np.float64)
    square, tight = munkres_114(costs)
    # A cluster left without a class of its own goes to the class it co-occurs with most (or none).
    fallback = np.where(counts.max(axis=1, initial=0) > 0, counts.argmax(axis=1), -1)
    alternative = rows_with_alternatives(tight, square, k, fallback)[:n]
    unique = not alternative.any()
    col4row = np.where(square[:n] < k, square[:n], -1)
    if tie_break != DEFAULT_TIE_BREAK:
        # Another solver returns this same assignment only if no other one is optimal at all (the
        # classes may be unique while which of two alike clusters stays without one is not).
        alone = unique and not rows_with_alternatives(tight, square, k)[:n].any()
        if not (alone and _exact_for_any_solver(costs)):
            col4row = _SOLVERS[tie_break](-counts.astype(np.float64) if tie_break == "scipy" else costs)
    return col4row, _report(counts, tie_break, unique, alternative, images is not None)


def _exact_for_any_solver(costs: np.ndarray) -> bool:
    """Whether every solver's float arithmetic on these costs is exact (potentials stay within about
    (n + m) times the largest cost, in steps of the finest one): then a unique optimum is everyone's."""
    scaled = exact_integers(costs)
    return scaled is not None and float(scaled.max(initial=0)) * (sum(costs.shape) + 4) < 2.0 ** 52


_SOLVERS: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "munkres-3.0.0": native_order,
    "munkres-2.0.0": pure_python_order,
    "scipy": scipy_order,
}


def _report(counts: np.ndarray, tie_break: str, unique: Optional[bool], alternative: np.ndarray,
            image_level: bool) -> TieReport:
    predicted = counts.any(axis=1)
    seen = int(np.count_nonzero(counts.any(axis=0)))
    breadth = np.count_nonzero(counts, axis=1)
    broad = int(np.count_nonzero(predicted & (breadth >= BROAD_SHARE * seen))) if seen >= 2 else 0
    predicted_count = int(np.count_nonzero(predicted))
    degenerate = unique is False and predicted_count >= 2 and 2 * broad >= predicted_count
    return TieReport(tie_break=tie_break, unique=unique, clusters=int(counts.shape[0]),
                     predicted_clusters=predicted_count,
                     tied_clusters=tuple((np.flatnonzero(alternative) + 1).tolist()),
                     tied_predicted_clusters=int(np.count_nonzero(alternative & predicted)),
                     broad_clusters=broad, degenerate=degenerate, image_level=image_level)
