"""The assignments later solvers return, ties included: munkres 2.0.0 and 3.0.0, scipy.

All three run shortest augmenting paths with dual potentials (one path per row left free), and differ
in how they start and scan:

- munkres 2.0.0 (pure Python) and 3.0.0 on matrices of fewer than 16 cells: reduce each row by its
  minimum and give it the first still-free column at that minimum; then, per free row in order, a
  Dijkstra over columns that scans them in index order and takes the first column at the smallest
  distance (``way``/``minv`` bookkeeping).
- munkres 3.0.0's native kernel (16 cells or more, where its compiled extension loads: every wheel it
  ships): the same start, then scipy's scan: the columns left are kept in a list that starts in
  decreasing order and loses a scanned column by moving the list's last one into its place; the
  smallest distance wins, and among equal ones a free column (the last free one in list order),
  else the first.
- scipy's ``linear_sum_assignment``: that scan with no start (every row augments).

A matrix with more rows than columns is transposed first (all three), then the pairs go back in row
order. Each distance and potential is computed here in float64 with the solver's operations in the
solver's order, element by element, so the floats are those the solver forms.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

__all__ = ["pure_python_order", "native_order", "scipy_order"]

# munkres 3.0.0 runs its native kernel from this many cells on.
NATIVE_MIN_CELLS = 16


def pure_python_order(costs: np.ndarray) -> np.ndarray:
    """Column per row (-1: none) that munkres 2.0.0's ``Munkres().compute`` returns."""
    return _per_row(costs, lambda c: _pure_python(c))


def native_order(costs: np.ndarray) -> np.ndarray:
    """Column per row that munkres 3.0.0's ``Munkres().compute`` returns (native kernel from 16 cells)."""
    matrix = np.asarray(costs, dtype=np.float64)
    if matrix.size < NATIVE_MIN_CELLS:
        return pure_python_order(matrix)
    return _per_row(matrix, lambda c: _scan_like_scipy(c, warm_start=True))


def scipy_order(costs: np.ndarray) -> np.ndarray:
    """Column per row that ``scipy.optimize.linear_sum_assignment(costs)`` returns."""
    return _per_row(costs, lambda c: _scan_like_scipy(c, warm_start=False))


def _per_row(costs: np.ndarray, solve) -> np.ndarray:
    """Solve with rows <= columns (transposing a tall matrix) and answer per original row."""
    matrix = np.asarray(costs, dtype=np.float64)
    n, m = matrix.shape
    if n <= m:
        return solve(np.ascontiguousarray(matrix))
    col4row = np.full(n, -1, dtype=np.int64)
    row4col = solve(np.ascontiguousarray(matrix.T))
    col4row[row4col] = np.arange(m)
    return col4row


def _warm_start(c: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row reduction and greedy start: ``u`` = row minima; each row, in order, takes the first column
    at its minimum that no earlier row took. Returns u, col4row, row4col."""
    n, m = c.shape
    u = c.min(axis=1)
    col4row = np.full(n, -1, dtype=np.int64)
    row4col = np.full(m, -1, dtype=np.int64)
    at_min = c == u[:, None]
    for i in range(n):
        open_min = np.flatnonzero(at_min[i] & (row4col < 0))
        if open_min.size:
            col4row[i], row4col[open_min[0]] = open_min[0], i
    return u, col4row, row4col


def _pure_python(c: np.ndarray) -> np.ndarray:
    """munkres 2.0.0's ``_solve``: potentials u (rows) and v (columns plus a virtual one, index m)."""
    n, m = c.shape
    u, col4row, row4col = _warm_start(c)
    v = np.zeros(m + 1)
    p = np.append(row4col, -1)             # p[j]: row on column j; p[m]: the row being added
    for i in range(n):
        if col4row[i] >= 0:
            continue
        p[m] = i
        j0 = m
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        way = np.zeros(m + 1, dtype=np.int64)
        while True:
            used[j0] = True
            i0 = p[j0]
            cur = (c[i0] - u[i0]) - v[:m]
            better = ~used[:m] & (cur < minv[:m])
            minv[:m][better] = cur[better]
            way[:m][better] = j0
            open_minv = np.where(used[:m], np.inf, minv[:m])
            j1 = int(open_minv.argmin())       # the first column at the smallest distance
            delta = open_minv[j1]
            u[p[used]] += delta
            v[used] -= delta
            waiting = ~used & np.isfinite(minv)
            minv[waiting] -= delta
            j0 = j1
            if p[j0] < 0:
                break
        while j0 != m:                         # flip the path
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    row_of = p[:m]
    col4row = np.full(n, -1, dtype=np.int64)
    col4row[row_of[row_of >= 0]] = np.flatnonzero(row_of >= 0)
    return col4row


def _scan_like_scipy(c: np.ndarray, warm_start: bool) -> np.ndarray:
    """scipy's ``augmenting_path`` loop (munkres 3.0.0's kernel adds the warm start).

    The columns left are kept in the solver's list order, and with them (moved alike when a scanned
    column takes the last one's place) their distances, path rows, v and whether they are free.
    """
    n, m = c.shape
    if warm_start:
        u, col4row, row4col = _warm_start(c)
    else:
        u, col4row, row4col = np.zeros(n), np.full(n, -1, dtype=np.int64), np.full(m, -1, dtype=np.int64)
    v = np.zeros(m)
    reach = np.empty(m)
    for current in range(n):
        if col4row[current] >= 0:
            continue
        remaining = np.arange(m - 1, -1, -1, dtype=np.int64)
        shortest = np.full(m, np.inf)
        path = np.full(m, -1, dtype=np.int64)
        v_left = v[remaining]
        free_left = row4col[remaining] < 0
        scanned = []                                       # (column, its distance, its path row)
        left, low, i = m, 0.0, current
        while True:
            r, dist = reach[:left], shortest[:left]
            np.add(low, c[i].take(remaining[:left]), out=r)   # the solver's ((low + c) - u) - v
            r -= u[i]
            r -= v_left[:left]
            better = r < dist
            np.copyto(dist, r, where=better)
            np.copyto(path[:left], i, where=better)
            low = dist.min()
            at_low = dist == low
            free_at_low = at_low & free_left[:left]
            # The smallest distance wins; among equal ones the last free column, else the first.
            index = left - 1 - int(free_at_low[::-1].argmax()) if free_at_low.any() else int(at_low.argmax())
            j = int(remaining[index])
            if free_left[index]:
                sink, sink_row = j, int(path[index])
                break
            scanned.append((j, shortest[index], int(path[index])))
            i = int(row4col[j])
            last = left - 1
            for array in (remaining, shortest, path, v_left, free_left):
                array[index] = array[last]
            left = last
        u[current] += low
        came_from = {sink: sink_row}
        for j, dist_j, row_j in scanned:
            u[row4col[j]] += low - dist_j
            v[j] -= low - dist_j
            came_from[j] = row_j
        j = sink
        while True:
            i = came_from[j]
            row4col[j] = i
            col4row[i], j = j, int(col4row[i])
            if i == current:
                break
    return col4row
