"""The match's choice among tied optima, against the solvers themselves: munkres 1.1.4 (the original
match.py's, installed by the ``test`` extra), scipy, and pinned answers of munkres 2.0.0 and 3.0.0.

The original's oracle is its own code path: ``float32(1 - C / N)`` handed to ``Munkres().compute`` as
Python floats, the pairs written in munkres' row order, then ``"0": 0``.
"""

from __future__ import annotations

import json
from typing import Dict, List, Tuple

import numpy as np
import pytest

from imagenets.evaluation.engine.cooccurrence import solve_match
from imagenets.evaluation.engine.matchfile import match_to_json, save_match
from imagenets.evaluation.engine.munkres_order import (benchmark_costs, exact_integers, munkres_114,
                                                       munkres_114_reference)
from imagenets.evaluation.engine.sap_order import native_order, pure_python_order, scipy_order
from imagenets.evaluation.engine.tiebreak import tie_broken_assignment


def _munkres_1_1_4():
    munkres = pytest.importorskip("munkres", reason="munkres is a test-only dependency (pip install -e .[test])")
    if getattr(munkres, "__version__", None) != "1.1.4":
        pytest.skip(f"munkres {getattr(munkres, '__version__', '?')} is installed; the oracle is the original "
                    "match.py's release, munkres==1.1.4 (the test extra pins it)")
    return munkres


def tie_heavy_counts(rng: np.random.Generator, classes: int, images: int) -> np.ndarray:
    """``C[p][g]`` over a few images holding 1-3 classes and 1-3 clusters each: ties everywhere."""
    counts = np.zeros((classes, classes), dtype=np.int64)
    for _ in range(images):
        gt = rng.choice(classes, size=min(classes, int(rng.integers(1, 4))), replace=False)
        pred = rng.choice(classes, size=min(classes, int(rng.integers(1, 4))), replace=False)
        counts[np.ix_(pred, gt)] += 1
    return counts


def tie_heavy_cases(seed: int, count: int, sizes: Tuple[int, int] = (2, 61)) -> List[Tuple[np.ndarray, int]]:
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        classes, images = int(rng.integers(*sizes)), int(rng.integers(2, 16))
        cases.append((tie_heavy_counts(rng, classes, images), images))
    return cases


def with_background(counts: np.ndarray) -> np.ndarray:
    """The (N+1) x (K+1) co-occurrence ``solve_match`` takes (row and column 0: background)."""
    cooc = np.zeros((counts.shape[0] + 1, counts.shape[1] + 1), dtype=np.int64)
    cooc[1:, 1:] = counts
    return cooc


def original_match(munkres, counts: np.ndarray, images: int) -> Dict[str, int]:
    """What the original match.py writes for these counts (munkres' row order, then "0")."""
    pairs = munkres.Munkres().compute(benchmark_costs(counts, images).tolist())
    match = {str(row + 1): col + 1 for row, col in pairs}
    match["0"] = 0
    return match


# ---- munkres 1.1.4 -----------------------------------------------------------------------------

def test_tie_heavy_matches_are_munkres_1_1_4s_to_the_byte():
    munkres = _munkres_1_1_4()
    differ = []
    for index, (counts, images) in enumerate(tie_heavy_cases(seed=1, count=1200)):
        ours = match_to_json(solve_match(with_background(counts), images, "munkres-1.1.4").assignment)
        theirs = original_match(munkres, counts, images)
        if json.dumps(ours, indent=1) != json.dumps(theirs, indent=1):
            differ.append(index)
    assert differ == []


def test_written_match_file_is_the_originals_bytes(tmp_path):
    munkres = _munkres_1_1_4()
    for index, (counts, images) in enumerate(tie_heavy_cases(seed=2, count=20, sizes=(40, 61))):
        path = save_match(tmp_path / f"{index}.json", solve_match(with_background(counts), images,
                                                                  "munkres-1.1.4").assignment)
        assert path.read_bytes() == json.dumps(original_match(munkres, counts, images), indent=1).encode()


@pytest.mark.parametrize("seed", [3, 4])
def test_300_class_tie_heavy_match_is_munkres_1_1_4s(seed):
    munkres = _munkres_1_1_4()
    rng = np.random.default_rng(seed)
    counts = tie_heavy_counts(rng, 300, 600)
    col4row, report = tie_broken_assignment(counts, 600)
    assert not report.unique and report.tied_predicted_clusters > 20  # the case is about ties
    assert [(i, int(j)) for i, j in enumerate(col4row)] == munkres.Munkres().compute(
        benchmark_costs(counts, 600).tolist())


def test_919_class_match_of_a_faithful_model_is_munkres_1_1_4s():
    munkres = _munkres_1_1_4()
    rng = np.random.default_rng(5)
    truth = rng.permutation(919)
    counts = np.zeros((919, 919), dtype=np.int64)
    for _ in range(12419):
        gt = rng.choice(919, size=int(rng.integers(1, 3)), replace=False)
        noisy = rng.random(gt.size) < 0.2
        pred = np.unique(np.where(noisy, rng.integers(0, 919, gt.size), truth[gt]))
        counts[np.ix_(pred, gt)] += 1
    col4row, _report = tie_broken_assignment(counts, 12419)
    assert [(i, int(j)) for i, j in enumerate(col4row)] == munkres.Munkres().compute(
        benchmark_costs(counts, 12419).tolist())


def test_more_clusters_than_classes_are_padded_as_munkres_pads_them():
    munkres = _munkres_1_1_4()
    rng = np.random.default_rng(6)
    for _ in range(200):
        classes, extra, images = int(rng.integers(2, 12)), int(rng.integers(1, 6)), int(rng.integers(2, 10))
        counts = tie_heavy_counts(rng, classes + extra, images)[:, :classes]
        col4row, _report = tie_broken_assignment(counts, images)
        expected = dict(munkres.Munkres().compute(benchmark_costs(counts, images).tolist()))
        assert {i: int(j) for i, j in enumerate(col4row) if j >= 0} == expected


def test_many_identical_rows_keep_munkres_1_1_4s_choice():
    """Repeated rows (clusters that co-occur alike) share their slacks in the fast steps."""
    munkres = _munkres_1_1_4()
    rng = np.random.default_rng(10)
    for _ in range(8):
        classes, distinct = int(rng.integers(64, 120)), int(rng.integers(3, 20))
        counts = rng.integers(0, 6, (distinct, classes))[rng.integers(0, distinct, classes)]
        col4row, report = tie_broken_assignment(counts, 8)
        assert not report.unique
        assert [(i, int(j)) for i, j in enumerate(col4row)] == munkres.Munkres().compute(
            benchmark_costs(counts, 8).tolist())


def test_fast_steps_equal_the_literal_steps_on_any_exact_costs():
    rng = np.random.default_rng(7)
    for trial in range(400):
        n, m = int(rng.integers(1, 12)), int(rng.integers(1, 12))
        kind = trial % 3
        if kind == 0:   # few distinct float32 values: ties
            costs = rng.choice(np.float32([0, 0.25, 0.5, 0.7, 1.0]), size=(n, m)).astype(np.float64)
        elif kind == 1:  # whole numbers, as pixel counts give
            costs = rng.integers(0, 4, (n, m)).astype(np.float64) * 1000.0
        else:           # float64 values on a fine grid
            costs = rng.integers(0, 6, (n, m)) / 1024.0
        col4row, tight = munkres_114(costs)
        square = np.zeros((max(n, m), max(n, m)))
        square[:n, :m] = costs
        ref_cols, reduced = munkres_114_reference(square)
        assert col4row.tolist() == ref_cols.tolist()
        assert (tight == (reduced == 0)).all()


def test_costs_too_fine_for_exact_steps_take_the_float_run():
    munkres = _munkres_1_1_4()
    costs = np.array([[1.0, 1e-30, 0.5], [1e-30, 1.0, 0.25], [0.5, 3e-31, 1e-30]])
    assert exact_integers(costs) is None
    col4row, tight = munkres_114(costs)
    assert [(i, int(j)) for i, j in enumerate(col4row)] == munkres.Munkres().compute(costs.tolist())
    assert tight[np.arange(3), col4row].all()


def test_exact_integers_are_the_costs_on_their_finest_binary_step():
    costs = benchmark_costs(np.array([[1, 2], [3, 12419]]), 12419).astype(np.float64)
    scaled = exact_integers(costs)
    shift = int(round(np.log2(scaled[0, 0] / costs[0, 0])))
    assert np.array_equal(np.ldexp(scaled.astype(np.float64), -shift), costs)
    assert scaled.max() < 2 ** 52
    # float64 values off the float32 grid: the finest step among them
    assert exact_integers(np.array([[3e6 + 0.125, 1.0], [0.25, 0.0]])).tolist() == [[24000001, 8], [2, 0]]
    assert exact_integers(np.array([[np.nan]])) is None and exact_integers(np.array([[-1.0]])) is None


# ---- later releases and scipy ------------------------------------------------------------------

# Count matrices on which munkres 1.1.4, 2.0.0 and 3.0.0 keep different optima (their answers,
# computed with each release's Munkres().compute on float32(1 - C / N)): a 3x3 (3.0.0 runs pure
# Python below 16 cells, like 2.0.0), a 4x4 (its native kernel from 16 cells on) and larger ones.
RELEASES = [
    ([[2, 3, 3], [1, 2, 2], [2, 3, 3]], 4, [0, 2, 1], [1, 2, 0], [1, 2, 0]),
    ([[0, 1, 0, 2], [1, 1, 1, 2], [0, 0, 0, 2], [1, 0, 1, 2]], 5, [1, 2, 3, 0], [1, 0, 3, 2], [1, 2, 3, 0]),
    ([[0, 1, 0, 1, 1], [1, 3, 0, 1, 2], [0, 3, 0, 2, 2], [0, 0, 0, 1, 1], [0, 1, 0, 1, 0]], 5,
     [0, 1, 4, 3, 2], [4, 0, 1, 3, 2], [2, 1, 4, 3, 0]),
    ([[1, 1, 2, 0, 0, 1], [0, 2, 2, 1, 0, 1], [1, 1, 1, 0, 0, 1], [1, 3, 3, 1, 0, 1], [0, 2, 2, 1, 0, 1],
      [0, 1, 2, 2, 0, 1]], 6, [5, 4, 0, 2, 1, 3], [2, 5, 0, 1, 4, 3], [5, 1, 0, 2, 4, 3]),
    ([[1, 0, 0, 2, 1, 3], [1, 0, 0, 0, 0, 2], [3, 1, 1, 2, 1, 0], [1, 0, 1, 2, 1, 1], [4, 2, 2, 3, 2, 2],
      [2, 0, 2, 4, 1, 1]], 9, [5, 4, 0, 2, 1, 3], [5, 1, 0, 4, 2, 3], [5, 2, 0, 4, 1, 3]),
    ([[0, 3, 1, 2, 4, 1, 0], [0, 1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], [0, 1, 1, 1, 0, 0, 0],
      [1, 1, 1, 1, 1, 0, 1], [0, 3, 2, 3, 0, 1, 0], [0, 0, 0, 0, 1, 0, 0]], 9,
     [4, 1, 5, 2, 6, 3, 0], [4, 1, 5, 2, 0, 3, 6], [4, 1, 0, 2, 6, 3, 5]),
]


@pytest.mark.parametrize("counts, images, v114, v200, v300", RELEASES)
def test_each_release_keeps_its_own_optimum(counts, images, v114, v200, v300):
    counts = np.array(counts)
    costs = benchmark_costs(counts, images).astype(np.float64)
    assert native_order(costs).tolist() == v300 and pure_python_order(costs).tolist() == v200
    for name, expected in (("munkres-1.1.4", v114), ("munkres-2.0.0", v200), ("munkres-3.0.0", v300)):
        assert tie_broken_assignment(counts, images, name)[0].tolist() == expected, name
    objective = {sum(counts[i, j] for i, j in enumerate(cols)) for cols in (v114, v200, v300)}
    assert len(objective) == 1  # three optima, one objective


def test_scipy_tie_break_is_scipys_answer_on_the_counts():
    scipy_optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(8)
    for trial in range(300):
        counts, images = tie_heavy_cases(seed=100 + trial, count=1, sizes=(2, 30))[0]
        if trial % 3 == 1:  # more clusters than classes
            counts = counts[:, :max(1, counts.shape[1] - int(rng.integers(1, 4)))]
        rows, cols = scipy_optimize.linear_sum_assignment(counts, maximize=True)
        ours = tie_broken_assignment(counts, images, "scipy")[0]
        assert {i: int(j) for i, j in enumerate(ours) if j >= 0} == dict(zip(rows.tolist(), cols.tolist()))
        assert scipy_order(-counts.astype(np.float64)).tolist() == ours.tolist()


def test_alike_clusters_left_without_a_class_are_the_solvers_choice_too():
    """The classes are unique here, but which of the two alike clusters 1 and 2 stays without one is
    not: the other solver's own choice is kept (its final classes are the same either way)."""
    scipy_optimize = pytest.importorskip("scipy.optimize")
    counts = np.array([[5, 4], [5, 4], [6, 6], [4, 4], [5, 4], [2, 2]])
    cols, report = tie_broken_assignment(counts, 12, "scipy")
    rows, expected = scipy_optimize.linear_sum_assignment(counts, maximize=True)
    assert report.unique and {i: int(j) for i, j in enumerate(cols) if j >= 0} == dict(zip(rows.tolist(),
                                                                                             expected.tolist()))


def test_a_unique_optimum_is_every_tie_breaks_answer():
    rng = np.random.default_rng(9)
    found = 0
    for _ in range(200):
        counts = rng.integers(0, 1000, (8, 8))
        answers = {name: tie_broken_assignment(counts, 1000, name) for name in
                   ("munkres-1.1.4", "munkres-2.0.0", "munkres-3.0.0")}
        if all(report.unique for _cols, report in answers.values()):
            found += 1
            assert len({tuple(cols.tolist()) for cols, _report in answers.values()}) == 1
    assert found > 150
