"""The match's tie-break against the solver it reproduces, on many more matrices than the tests run.

    python bench/bench_tiebreak.py [--cases 20000] [--munkres DIR] [--tie-break NAME] [--big 2] [--seed 0]
    python bench/bench_tiebreak.py --scipy [--cases 5000]

Compares ``tie_broken_assignment`` with ``Munkres().compute`` of the munkres installed (or the one under
``--munkres DIR``, e.g. ``pip install --target DIR munkres==3.0.0``; the tie-break defaults to
``munkres-<its version>``) on the original match.py's costs ``float32(1 - C / N)``: random tie-heavy
co-occurrences (2-60 classes, 2-15 images of 1-3 classes and 1-3 clusters each, a tenth with extra
clusters), then ``--big`` 300- and 919-class ones with few images per class (munkres 1.1.4 takes
seconds to minutes on those). With ``--scipy``, the scipy tie-break against scipy's
``linear_sum_assignment(C, maximize=True)``. Prints the number of cases compared and of mismatches.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from imagenets.evaluation.engine.munkres_order import benchmark_costs  # noqa: E402
from imagenets.evaluation.engine.tiebreak import TIE_BREAKS, tie_broken_assignment  # noqa: E402


def tie_heavy(rng: np.random.Generator, classes: int, images: int, extra: int = 0) -> np.ndarray:
    """(classes + extra) x classes counts over ``images`` images of 1-3 classes and 1-3 clusters."""
    counts = np.zeros((classes + extra, classes), dtype=np.int64)
    for _ in range(images):
        gt = rng.choice(classes, size=min(classes, int(rng.integers(1, 4))), replace=False)
        pred = rng.choice(classes + extra, size=min(classes + extra, int(rng.integers(1, 4))), replace=False)
        counts[np.ix_(pred, gt)] += 1
    return counts


def random_cases(count: int, seed: int) -> Iterator[Tuple[np.ndarray, int]]:
    rng = np.random.default_rng(seed)
    for index in range(count):
        classes, images = int(rng.integers(2, 61)), int(rng.integers(2, 16))
        extra = int(rng.integers(1, 6)) if index % 10 == 9 else 0
        yield tie_heavy(rng, classes, images, extra), images


def big_cases(count: int, seed: int) -> Iterator[Tuple[str, np.ndarray, int]]:
    rng = np.random.default_rng(seed + 1)
    for index in range(count):
        for classes, images in ((300, 600), (919, 1500)):
            yield f"{classes} classes, {images} images #{index}", tie_heavy(rng, classes, images), images


def reference(args: argparse.Namespace) -> Tuple[str, str, Callable[[np.ndarray, int], Dict[int, int]]]:
    """(tie-break, what answers, the reference: counts, images -> {row: column})."""
    if args.scipy:
        from scipy import __version__ as version
        from scipy.optimize import linear_sum_assignment

        def solve(counts: np.ndarray, images: int) -> Dict[int, int]:
            rows, cols = linear_sum_assignment(counts, maximize=True)
            return dict(zip(rows.tolist(), cols.tolist()))
        return "scipy", f"scipy {version}", solve
    if args.munkres:
        sys.path.insert(0, str(args.munkres))
    import munkres

    version = getattr(munkres, "__version__", "?")
    native = getattr(getattr(munkres, "_native", None), "native_status", None)
    where = f"munkres {version} ({Path(munkres.__file__).parent})" + (f", native: {native()}" if native else "")

    def solve(counts: np.ndarray, images: int) -> Dict[int, int]:
        return dict(munkres.Munkres().compute(benchmark_costs(counts, images).tolist()))
    return args.tie_break or f"munkres-{version}", where, solve


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20000, help="random tie-heavy matrices (default 20000)")
    parser.add_argument("--big", type=int, default=2, help="300- and 919-class matrices of each size (default 2)")
    parser.add_argument("--munkres", type=Path, default=None, metavar="DIR", help="import munkres from DIR")
    parser.add_argument("--tie-break", choices=list(TIE_BREAKS), default=None, help="default: munkres-<version>")
    parser.add_argument("--scipy", action="store_true", help="check the scipy tie-break against scipy")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tie_break, where, solve = reference(args)
    if tie_break not in TIE_BREAKS:
        raise SystemExit(f"no tie-break reproduces {where}: pass --tie-break")
    print(f"bench_tiebreak: --tie-break {tie_break} against {where}")

    mismatches, tied, ours_s, theirs_s = 0, 0, 0.0, 0.0
    for counts, images in random_cases(args.cases, args.seed):
        start = time.process_time()
        col4row, report = tie_broken_assignment(counts, images, tie_break)
        middle = time.process_time()
        expected = solve(counts, images)
        ours_s, theirs_s = ours_s + middle - start, theirs_s + time.process_time() - middle
        mismatches += {i: int(j) for i, j in enumerate(col4row) if j >= 0} != expected
        tied += not report.unique
    print(f"random tie-heavy: {args.cases} cases ({tied} with tied optima), {mismatches} mismatches; "
          f"CPU ours {ours_s:.1f} s, reference {theirs_s:.1f} s")
    for name, counts, images in big_cases(args.big, args.seed):
        start = time.process_time()
        col4row, report = tie_broken_assignment(counts, images, tie_break)
        middle = time.process_time()
        expected = solve(counts, images)
        took = time.process_time() - middle
        same = {i: int(j) for i, j in enumerate(col4row)} == expected
        mismatches += not same
        print(f"{name:<32} {'same' if same else 'DIFFERENT'}; {report.tied_predicted_clusters} of "
              f"{report.predicted_clusters} predicted clusters tied; CPU ours {middle - start:.2f} s, "
              f"reference {took:.2f} s")
    print(f"total: {args.cases + 2 * args.big} cases, {mismatches} mismatches")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
