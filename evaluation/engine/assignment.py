"""Linear assignment (scipy's ``linear_sum_assignment`` contract) in pure numpy.

Jonker-Volgenant style: a dual-feasible greedy start, augmenting row reduction, then one
shortest augmenting path (Dijkstra over columns, vectorised with numpy) per row still free.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

__all__ = ["linear_sum_assignment"]

# Augmenting row reduction passes over the free rows (JV uses two), and a cap on its steps per
# row so that a pathological cycle (e.g. rows that all want one column) cannot spin for long.
_REDUCTION_PASSES = 2
_REDUCTION_STEPS_PER_ROW = 5


def linear_sum_assignment(cost, maximize: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """Return ``(row_ind, col_ind)`` of an optimal assignment, as ``scipy.optimize.linear_sum_assignment``.

    Rows come sorted; with more rows than columns only as many rows as columns are assigned.
    ``+inf`` (``-inf`` when maximizing) marks a forbidden pair; ValueError if nothing feasible is left.
    """
    matrix = _validated(cost, maximize)
    transposed = matrix.shape[0] > matrix.shape[1]
    if transposed:
        matrix = matrix.T
    matrix = np.ascontiguousarray(matrix)
    col4row = _solve(matrix)
    rows = np.arange(matrix.shape[0], dtype=np.int64)
    if not np.isfinite(matrix[rows, col4row]).all():  # cannot happen by construction; never a wrong answer
        raise _infeasible()
    if transposed:
        order = np.argsort(col4row, kind="stable")
        return col4row[order], rows[order]
    return rows, col4row


def _validated(cost, maximize: bool) -> np.ndarray:
    """The cost as a float64 matrix to minimise; ValueError on a bad shape, dtype or entry."""
    array = np.asarray(cost)
    if array.ndim != 2:
        raise ValueError(f"expected a matrix (2-D array), got a {array.shape!r} array")
    if array.dtype != np.bool_ and not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise ValueError(f"expected a matrix of real numbers (int, float or bool), got dtype {array.dtype}")
    matrix = array.astype(np.float64)  # always a copy: the caller's array is never modified
    if maximize:
        np.negative(matrix, out=matrix)
    if np.isnan(matrix).any() or np.isneginf(matrix).any():
        bad = "+inf" if maximize else "-inf"
        raise ValueError(f"cost matrix contains NaN or {bad} entries: replace them with finite values "
                         f"({'-inf' if maximize else '+inf'} marks a forbidden pair)")
    return matrix


def _infeasible() -> ValueError:
    return ValueError("cost matrix is infeasible: every complete assignment uses a forbidden (infinite) entry")


def _solve(c: np.ndarray) -> np.ndarray:
    """Optimal column per row of ``c`` (n <= m rows x columns, float64, +inf allowed).

    Invariant throughout (implicit row duals): every assigned row's column minimises ``c[i] - v``;
    for n < m, free columns keep ``v = 0`` and the others only go down (LP optimality of the rectangular case).
    """
    n, m = c.shape
    col4row = np.full(n, -1, dtype=np.int64)
    row4col = np.full(m, -1, dtype=np.int64)
    if n == 0:
        return col4row
    if n == m:
        v = _column_reduction(c, col4row, row4col)
    else:
        v = np.zeros(m)
        _greedy_rows(c, col4row, row4col)
    free = np.flatnonzero(col4row < 0).tolist()
    for _ in range(_REDUCTION_PASSES):
        if not free:
            break
        free = _augmenting_row_reduction(c, v, col4row, row4col, free)
    for row in free:
        _augment(c, v, col4row, row4col, row)
    return col4row


def _column_reduction(c: np.ndarray, col4row: np.ndarray, row4col: np.ndarray) -> np.ndarray:
    """Square start: ``v`` = column minima, each row takes one column where it is the minimum, then
    reduction transfer (lower ``v`` of taken columns to the row's second best) to help later rows."""
    v = c.min(axis=0)
    if np.isinf(v).any():  # a column with only forbidden entries
        raise _infeasible()
    best_row = c.argmin(axis=0)
    rows, cols = np.unique(best_row, return_index=True)  # each row keeps its first column
    col4row[rows] = cols
    row4col[cols] = rows
    reduced = c[rows] - v
    reduced[np.arange(rows.size), cols] = np.inf
    second = reduced.min(axis=1)
    # Simultaneous transfer stays dual feasible (v only goes down, so second-best values only rise);
    # a row with a single finite entry has nothing to transfer.
    v[cols] -= np.where(np.isfinite(second), second, 0.0)
    return v


def _greedy_rows(c: np.ndarray, col4row: np.ndarray, row4col: np.ndarray) -> None:
    """Rectangular start (v = 0): each row takes a column at its row minimum if one is still free."""
    best_col = c.argmin(axis=1)
    cols, rows = np.unique(best_col, return_index=True)  # first row wins each column
    keep = np.isfinite(c[rows, cols])
    col4row[rows[keep]] = cols[keep]
    row4col[cols[keep]] = rows[keep]


def _two_smallest(values: np.ndarray) -> Tuple[int, float, int, float]:
    """Index and value of the smallest and the second smallest entry (``values`` is modified)."""
    j1 = int(values.argmin())
    u1 = float(values[j1])
    values[j1] = np.inf
    j2 = int(values.argmin())
    return j1, u1, j2, float(values[j2])


def _augmenting_row_reduction(c: np.ndarray, v: np.ndarray, col4row: np.ndarray,
                              row4col: np.ndarray, free: List[int]) -> List[int]:
    """One JV pass: each free row takes its best column (lowering that column's ``v`` to the row's
    second best), evicting the previous owner, which retries at once if the price moved. Returns
    the rows still free."""
    queue = list(reversed(free))  # a stack: an evicted row is handled next
    left: List[int] = []
    budget = _REDUCTION_STEPS_PER_ROW * len(free)
    while queue:
        if budget == 0:
            left.extend(queue)
            break
        budget -= 1
        row = queue.pop()
        # m >= 2 here: a single column means a 1x1 matrix, already solved by column reduction.
        j1, u1, j2, u2 = _two_smallest(c[row] - v)
        if not np.isfinite(u1):
            raise _infeasible()
        owner = int(row4col[j1])
        if u1 < u2:
            if np.isfinite(u2):
                v[j1] -= u2 - u1
        elif owner >= 0:
            # A tie with a taken column: take the equally good second one; if that is taken too,
            # its owner waits for the next pass (no price moved, so retrying now could cycle).
            j1, owner = j2, int(row4col[j2])
        if owner >= 0:
            col4row[owner] = -1
            if u1 < u2:
                queue.append(owner)
            else:
                left.append(owner)
        col4row[row] = j1
        row4col[j1] = row
    return left


def _augment(c: np.ndarray, v: np.ndarray, col4row: np.ndarray, row4col: np.ndarray, start: int) -> None:
    """Assign row ``start`` along a shortest augmenting path (Dijkstra over columns), updating ``v``.

    Columns tied at the lowest distance are scanned together in one numpy step (in growing chunks,
    so that a free column reached at that distance ends the search early): integer co-occurrence
    matrices have few distinct distances, so paths take few Python iterations.
    """
    m = c.shape[1]
    dist = c[start] - v  # tentative distances of unscanned columns; scanned ones are set to +inf
    pred = np.full(m, start, dtype=np.int64)
    unscanned = np.ones(m, dtype=bool)
    better = np.empty(m, dtype=bool)
    free_cols = np.flatnonzero(row4col < 0)
    done_cols: List[np.ndarray] = []
    done_dist: List[float] = []
    chunk = 4
    while True:
        lowest = float(dist.min())
        if not np.isfinite(lowest):
            raise _infeasible()
        free_dist = dist[free_cols]
        k = int(free_dist.argmin())
        if free_dist[k] == lowest:
            sink = int(free_cols[k])
            break
        batch = np.flatnonzero(dist == lowest)
        if batch.size == 1:
            col = int(batch[0])
            row = int(row4col[col])
            # Reduced costs from `row`, whose implicit dual makes c[row, col] - v[col] its minimum.
            through = c[row] - v
            through += lowest - through[col]
            via = row
        else:
            batch = batch[:chunk]
            chunk *= 2
            rows = row4col[batch]
            through = c[rows] - v
            through += (lowest - through[np.arange(batch.size), batch])[:, None]
            pick = through.argmin(axis=0)
            through, via = through[pick, np.arange(m)], rows[pick]
        unscanned[batch] = False
        dist[batch] = np.inf
        done_cols.append(batch)
        done_dist.append(lowest)
        np.less(through, dist, out=better)
        better &= unscanned
        np.copyto(dist, through, where=better)
        np.copyto(pred, via, where=better)
    for cols, cols_dist in zip(done_cols, done_dist):
        v[cols] += cols_dist - lowest
    col = sink
    while True:
        row = int(pred[col])
        row4col[col] = row
        previous = int(col4row[row])
        col4row[row] = col
        col = previous
        if row == start:
            break
