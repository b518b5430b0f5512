"""The linear assignment solver against scipy's (objective values; any optimal permutation is right)."""

from __future__ import annotations

import math
from typing import Tuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import imagenets.evaluation.engine.assignment as assignment_module

from imagenets.evaluation.engine.assignment import linear_sum_assignment

scipy_optimize = pytest.importorskip("scipy.optimize")

FAST = settings(max_examples=150, deadline=None)


def assert_valid(cost: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> None:
    """scipy's contract: int64 indexes, rows strictly increasing, distinct columns, min(n, m) pairs."""
    n, m = cost.shape
    assert rows.dtype == np.int64 and cols.dtype == np.int64
    assert rows.shape == cols.shape == (min(n, m),)
    assert np.all(np.diff(rows) > 0)
    assert len(set(cols.tolist())) == cols.size
    if rows.size:
        assert 0 <= rows.min() and rows.max() < n and 0 <= cols.min() and cols.max() < m


def assert_optimal(cost, maximize: bool = False) -> None:
    """Same objective as scipy: exact for integers, to 1e-9 relative for floats."""
    cost = np.asarray(cost)
    rows, cols = linear_sum_assignment(cost, maximize=maximize)
    assert_valid(cost, rows, cols)
    ref_rows, ref_cols = scipy_optimize.linear_sum_assignment(cost, maximize=maximize)
    ours, theirs = cost[rows, cols].sum(), cost[ref_rows, ref_cols].sum()
    if np.issubdtype(cost.dtype, np.integer) or cost.dtype == np.bool_:
        assert int(ours) == int(theirs)
    else:
        scale = float(np.abs(cost[np.isfinite(cost)]).sum()) if cost.size else 0.0
        assert math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-12 * max(1.0, scale))


def cooccurrence_like(num_classes: int, num_images: int, seed: int) -> np.ndarray:
    """``C[p][g]`` over simulated images: a few classes each, clusters following a noisy permutation."""
    rng = np.random.default_rng(seed)
    truth = rng.permutation(num_classes)
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    for _ in range(num_images):
        present = rng.choice(num_classes, size=rng.integers(1, 4), replace=False)
        noisy = rng.random(present.size) < 0.3
        clusters = np.where(noisy, rng.integers(0, num_classes, present.size), truth[present])
        counts[np.ix_(np.unique(clusters), present)] += 1
    return counts


def family(name: str, shape: Tuple[int, int], seed: int) -> np.ndarray:
    """A co-occurrence-like matrix of one of the families the solver must be fast and exact on."""
    rng = np.random.default_rng(seed)
    n, m = shape
    if name == "float rank-one":  # an untrained model: cluster frequency x class frequency
        return np.outer(rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(m))) * 1e4
    if name == "float rank-one, equal rows":  # frequencies of counts: many equal rows and columns
        return np.outer(rng.integers(0, 6, n) / 7, rng.integers(0, 6, m) / 3)
    if name == "integer rank-one":
        return np.outer(rng.integers(0, 200, n), rng.integers(0, 200, m))
    if name == "rounded rank-one":  # not quite rank-one: the general route
        return np.round(np.outer(rng.random(n), rng.random(m)) * 60).astype(np.int64)
    if name == "noisy rank-one":
        return rng.poisson(np.outer(rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(m))) * n * m)
    if name == "constant":
        return np.full(shape, 3, dtype=np.int64)
    if name == "collapsed":  # a few clusters co-occur with everything, the rest barely at all
        counts = (rng.random(shape) < 0.02).astype(np.int64)
        dense = rng.choice(n, size=max(1, n // 40), replace=False)
        counts[dense] = rng.integers(50, 500, (dense.size, m))
        return counts
    if name == "sparse counts":
        return np.where(rng.random(shape) < 0.03, rng.integers(1, 10, shape), 0)
    assert name == "dense random"
    return rng.random(shape)


FAMILIES = ["float rank-one", "float rank-one, equal rows", "integer rank-one", "rounded rank-one",
            "noisy rank-one", "constant", "collapsed", "sparse counts", "dense random"]


shapes = st.tuples(st.integers(0, 8), st.integers(0, 8))


@FAST
@given(arrays(np.int64, shapes, elements=st.integers(-50, 50)), st.booleans())
def test_matches_scipy_on_random_integer_matrices(cost, maximize):
    assert_optimal(cost, maximize)


@FAST
@given(arrays(np.float64, shapes, elements=st.floats(-1e6, 1e6, allow_nan=False)), st.booleans())
def test_matches_scipy_on_random_float_matrices(cost, maximize):
    assert_optimal(cost, maximize)


@FAST
@given(arrays(np.int64, st.tuples(st.integers(1, 12), st.integers(1, 12)), elements=st.integers(0, 1)),
       st.booleans())
def test_matches_scipy_on_heavily_tied_matrices(cost, maximize):
    assert_optimal(cost, maximize)


@FAST
@given(arrays(np.float64, st.tuples(st.integers(1, 7), st.integers(1, 7)),
              elements=st.one_of(st.just(np.inf), st.integers(-9, 9).map(float))))
def test_forbidden_entries_match_scipy_feasibility_and_objective(cost):
    try:
        scipy_optimize.linear_sum_assignment(cost)
    except ValueError:
        with pytest.raises(ValueError, match="infeasible"):
            linear_sum_assignment(cost)
        return
    rows, cols = linear_sum_assignment(cost)
    assert np.isfinite(cost[rows, cols]).all()
    assert_optimal(cost)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("shape", [(40, 40), (200, 200), (30, 90), (90, 30)])
def test_matches_scipy_on_larger_seeded_matrices(seed, shape):
    rng = np.random.default_rng(seed)
    assert_optimal(rng.integers(0, 2, shape), maximize=True)
    assert_optimal(rng.integers(-1000, 1000, shape))
    assert_optimal(rng.normal(size=shape), maximize=bool(seed % 2))


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (5, 2), (2, 5), (919, 919)])
@pytest.mark.parametrize("maximize", [False, True])
def test_all_zero_matrices_give_a_full_assignment(shape, maximize):
    rows, cols = linear_sum_assignment(np.zeros(shape, dtype=np.int64), maximize=maximize)
    assert_valid(np.zeros(shape), rows, cols)


@pytest.mark.parametrize("shape", [(4, 50), (50, 4), (300, 919), (919, 300), (1, 7), (7, 1)])
def test_rectangular_matrices_both_ways(shape):
    rng = np.random.default_rng(sum(shape))
    assert_optimal(rng.random(shape))
    assert_optimal(rng.integers(0, 5, shape), maximize=True)


def test_more_rows_than_columns_returns_sorted_rows():
    cost = np.array([[5, 1], [0, 9], [3, 3]])
    rows, cols = linear_sum_assignment(cost)
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]


def test_one_by_one():
    rows, cols = linear_sum_assignment([[7.5]])
    assert rows.tolist() == [0] and cols.tolist() == [0]


@pytest.mark.parametrize("shape", [(0, 0), (0, 5), (5, 0)])
def test_empty_matrices_give_empty_int64_indexes(shape):
    rows, cols = linear_sum_assignment(np.zeros(shape))
    assert rows.dtype == cols.dtype == np.int64 and rows.size == cols.size == 0


def test_negative_values_and_maximize_pick_opposite_optima():
    cost = np.array([[-4, -1, -3], [-2, 0, -5], [-3, -2, -2]])
    low_rows, low_cols = linear_sum_assignment(cost)
    high_rows, high_cols = linear_sum_assignment(cost, maximize=True)
    assert cost[low_rows, low_cols].sum() == -11
    assert cost[high_rows, high_cols].sum() == -5
    assert_optimal(cost)
    assert_optimal(cost, maximize=True)


def test_bool_and_list_inputs_are_accepted():
    assert_optimal(np.eye(4, dtype=bool), maximize=True)
    rows, cols = linear_sum_assignment([[1, 2], [2, 1]])
    assert cols.tolist() == [0, 1]


def test_large_integers_keep_an_exact_objective():
    rng = np.random.default_rng(7)
    assert_optimal(rng.integers(0, 2 ** 40, (60, 60)), maximize=True)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint64, np.float32])
def test_narrow_and_unsigned_inputs_keep_their_values(dtype):
    rng = np.random.default_rng(11)
    cost = rng.integers(0, 120, (30, 45)).astype(dtype)
    if dtype == np.int8:
        cost[0, :] = -128  # whose negation does not fit an int8
    assert_optimal(cost, maximize=True)
    assert_optimal(cost.T)


def test_input_matrix_is_not_modified():
    cost = np.arange(12, dtype=np.float64).reshape(3, 4)
    before = cost.copy()
    linear_sum_assignment(cost, maximize=True)
    assert np.array_equal(cost, before)


def test_cooccurrence_919_matches_scipy():
    counts = cooccurrence_like(919, 12419, seed=1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    ref_rows, ref_cols = scipy_optimize.linear_sum_assignment(counts, maximize=True)
    assert_valid(counts, rows, cols)
    assert counts[rows, cols].sum() == counts[ref_rows, ref_cols].sum()


def test_cooccurrence_with_unused_clusters_matches_scipy():
    # A collapsed model: most clusters never predicted, so many all-zero rows tie everywhere.
    counts = cooccurrence_like(300, 3000, seed=2)
    counts[np.random.default_rng(2).random(300) < 0.6] = 0
    assert_optimal(counts, maximize=True)


def test_dense_random_919_float_matrix_matches_scipy():
    assert_optimal(np.random.default_rng(3).random((919, 919)))


def test_only_forbidden_diagonal_path_is_found():
    # Row i may only use columns 0..i: the one feasible assignment is the diagonal.
    n = 30
    cost = np.where(np.tril(np.ones((n, n), dtype=bool)), 1.0, np.inf)
    rows, cols = linear_sum_assignment(cost)
    assert cols.tolist() == list(range(n))


@pytest.mark.parametrize("cost", [
    [[np.inf, np.inf], [1.0, 2.0]],            # a row with no allowed column
    [[np.inf, 1.0], [np.inf, 2.0]],            # a column nobody may take
    [[1.0, np.inf, np.inf], [2.0, np.inf, np.inf], [3.0, 4.0, 5.0]],  # two rows, one column
    [[1.0, np.inf, np.inf, np.inf], [2.0, np.inf, np.inf, np.inf]],   # rectangular
])
def test_infeasible_forbidden_entries_raise_value_error(cost):
    with pytest.raises(ValueError, match="infeasible"):
        linear_sum_assignment(cost)


def test_minus_inf_is_forbidden_when_maximizing():
    cost = np.array([[-np.inf, 1.0], [2.0, 3.0]])
    rows, cols = linear_sum_assignment(cost, maximize=True)
    assert cols.tolist() == [1, 0]
    with pytest.raises(ValueError, match="infeasible"):
        linear_sum_assignment([[-np.inf, -np.inf], [2.0, 3.0]], maximize=True)


@pytest.mark.parametrize("cost, maximize", [
    ([[np.nan, 1.0], [2.0, 3.0]], False),
    ([[-np.inf, 1.0], [2.0, 3.0]], False),
    ([[np.inf, 1.0], [2.0, 3.0]], True),
])
def test_nan_and_wrong_sign_infinity_raise_value_error(cost, maximize):
    with pytest.raises(ValueError, match="NaN or"):
        linear_sum_assignment(cost, maximize=maximize)


@pytest.mark.parametrize("cost, message", [
    (np.zeros(3), "2-D"),
    (np.zeros((2, 2, 2)), "2-D"),
    (np.array([["a", "b"], ["c", "d"]]), "real numbers"),
    (np.ones((2, 2), dtype=complex), "real numbers"),
])
def test_bad_shapes_and_dtypes_raise_value_error(cost, message):
    with pytest.raises(ValueError, match=message):
        linear_sum_assignment(cost)


@pytest.mark.parametrize("shape", [(12, 12), (150, 150), (240, 120), (120, 240)])
@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_matches_scipy_when_maximizing(name, shape):
    assert_optimal(family(name, shape, seed=sum(shape)), maximize=True)


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_matches_scipy_when_minimizing(name):
    assert_optimal(family(name, (90, 90), seed=4))
    assert_optimal(family(name, (40, 70), seed=5))


@pytest.mark.parametrize("shape", [(60, 60), (120, 60), (60, 120)])
@pytest.mark.parametrize("name", ["float rank-one", "float rank-one, equal rows", "integer rank-one",
                                  "constant"])
def test_rank_one_and_constant_matrices_are_solved_without_search(name, shape, monkeypatch):
    def no_search(*args, **kwargs):
        raise AssertionError("the shortest augmenting path solver was used")
    monkeypatch.setattr(assignment_module, "_solve", no_search)
    assert_optimal(family(name, shape, seed=6), maximize=True)
    assert_optimal(family(name, shape, seed=7))


def test_sums_that_tie_only_after_rounding_are_compared_exactly():
    # In sum order the diagonal looks as good as the anti-diagonal (1 + 2**-53 rounds to 1), but the
    # anti-diagonal is cheaper: the Monge test must see the rounding error, not the rounded sums.
    cost = np.array([[2.0 ** -53, 0.0], [1.0, 1.0]])
    rows, cols = linear_sum_assignment(cost)
    assert cols.tolist() == [1, 0]


def test_rank_one_with_a_broken_entry_uses_the_general_route_and_stays_optimal():
    cost = family("integer rank-one", (80, 80), seed=8)
    cost[17, 40] += 5000
    assert_optimal(cost, maximize=True)
    assert_optimal(cost)


def test_collapsed_rectangular_counts_match_scipy():
    counts = family("collapsed", (300, 150), seed=9)
    assert_optimal(counts, maximize=True)
    assert_optimal(counts.T, maximize=True)
