"""Linear assignment (scipy's ``linear_sum_assignment`` contract) in pure numpy.

Two exact routes. A constant matrix, or one that is Monge once its rows and columns are sorted by
their sums (rank-one co-occurrences: an untrained model), is solved without search, by a vectorised
monotone dynamic programme. Any other goes Jonker-Volgenant's way: a dual-feasible greedy start,
augmenting row reduction, then one shortest augmenting path (Dijkstra over columns, one numpy step
per scanned column or per group of tied columns) for each row still free.
"""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import numpy as np

__all__ = ["linear_sum_assignment"]

# Augmenting row reduction passes over the free rows (JV uses two), and a cap on its steps per
# row so that a pathological cycle (e.g. rows that all want one column) cannot spin for long.
_REDUCTION_PASSES = 2
_REDUCTION_STEPS_PER_ROW = 5
# Greedy start: rounds of "every free row proposes to a free column where it is tight".
_MATCHING_ROUNDS = 8
# A shortest path search keeps at most this many offered distance vectors before folding them.
_OFFERS_KEPT = 64


def linear_sum_assignment(cost, maximize: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """Return ``(row_ind, col_ind)`` of an optimal assignment, as ``scipy.optimize.linear_sum_assignment``.

    Rows come sorted; with more rows than columns only as many rows as columns are assigned.
    ``+inf`` (``-inf`` when maximizing) marks a forbidden pair; ValueError if nothing feasible is left.
    """
    matrix, transposed, integral, finite = _prepared(cost, maximize)
    col4row = _structured_solution(matrix, integral) if finite else None
    if col4row is None:
        col4row = _solve(matrix, ties=integral or _looks_integral(matrix))
    rows = np.arange(matrix.shape[0], dtype=np.int64)
    if not np.isfinite(matrix[rows, col4row]).all():  # cannot happen by construction; never a wrong answer
        raise _infeasible()
    if transposed:
        order = np.argsort(col4row, kind="stable")
        return col4row[order], rows[order]
    return rows, col4row


def _prepared(cost, maximize: bool) -> Tuple[np.ndarray, bool, bool, bool]:
    """The cost as a C-contiguous float64 matrix to minimise, with no more rows than columns, and
    whether it was transposed to get there, came as integers (or bools), is all finite.
    ValueError on a bad shape, dtype or entry."""
    array = np.asarray(cost)
    if array.ndim != 2:
        raise ValueError(f"expected a matrix (2-D array), got a {array.shape!r} array")
    integral = array.dtype == np.bool_ or np.issubdtype(array.dtype, np.integer)
    if not (integral or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"expected a matrix of real numbers (int, float or bool), got dtype {array.dtype}")
    transposed = array.shape[0] > array.shape[1]
    source = array.T if transposed else array
    matrix = np.empty(source.shape)  # always a copy: the caller's array is never modified
    # Converts, transposes and negates in one pass (negating in float64: unsigned and bool inputs too).
    if maximize:
        np.negative(source, out=matrix, dtype=np.float64, casting="unsafe")
    else:
        np.copyto(matrix, source, casting="unsafe")
    finite = integral or bool(np.isfinite(matrix).all())
    if not finite and (np.isnan(matrix).any() or np.isneginf(matrix).any()):
        bad = "+inf" if maximize else "-inf"
        raise ValueError(f"cost matrix contains NaN or {bad} entries: replace them with finite values "
                         f"({'-inf' if maximize else '+inf'} marks a forbidden pair)")
    return matrix, transposed, bool(integral), finite


def _looks_integral(c: np.ndarray) -> bool:
    """Whether a float matrix holds whole numbers, judged on its first rows (only speed depends on it)."""
    head = c[:8]
    head = head[np.isfinite(head)]
    return bool(np.array_equal(head, np.round(head)))


def _infeasible() -> ValueError:
    return ValueError("cost matrix is infeasible: every complete assignment uses a forbidden (infinite) entry")


# ---------------------------------------------------------------------------------------------------
# Structured matrices: solved without any search


# Integers up to this size add exactly in float64, so their sums compare exactly.
_EXACT_INTEGERS = 2.0 ** 52


def _structured_solution(c: np.ndarray, integral: bool) -> Optional[np.ndarray]:
    """Optimal column per row of a finite ``c`` (n <= m) that is constant, or Monge once its rows
    and columns are sorted by their sums (either column direction); else None.

    A Monge matrix (``c[i,j] + c[k,l] <= c[i,l] + c[k,j]`` for i < k, j < l) has an optimal assignment
    with increasing columns (uncrossing two pairs never costs more); rank-one products are Monge in
    sum order. The test is exact in floating point, so the answer is optimal whenever it is given.
    """
    n, m = c.shape
    if n == 0:
        return None
    low, high = float(c.min()), float(c.max())
    if low == high:
        return np.arange(n, dtype=np.int64)
    if n < 2:
        return None
    exact_sums = integral and max(-low, high) <= _EXACT_INTEGERS
    row_order = np.argsort(c.sum(axis=1), kind="stable")
    col_sums = c.sum(axis=0)
    for col_order in (np.argsort(col_sums, kind="stable"), np.argsort(-col_sums, kind="stable")):
        if not _probably_monge(c, row_order, col_order):
            continue
        sorted_c = c[row_order][:, col_order]
        if _is_monge(sorted_c, exact_sums):
            col4row = np.empty(n, dtype=np.int64)
            chosen = np.arange(n) if n == m else _monotone_assignment(sorted_c)
            col4row[row_order] = col_order[chosen]
            return col4row
    return None


def _probably_monge(c: np.ndarray, row_order: np.ndarray, col_order: np.ndarray) -> bool:
    """Cheap rejection on a few sorted rows before the full exact test (most matrices fail at once)."""
    head = c[row_order[:4]][:, col_order]
    lhs = head[:-1, :-1] + head[1:, 1:]
    rhs = head[:-1, 1:] + head[1:, :-1]
    slack = 1e-9 * (np.abs(lhs) + np.abs(rhs))
    return bool((lhs <= rhs + slack).all())


def _is_monge(c: np.ndarray, exact_sums: bool) -> bool:
    """Exact test of every adjacent 2x2 block (which implies all of them)."""
    left = c[:-1, :-1] + c[1:, 1:]
    right = c[:-1, 1:] + c[1:, :-1]
    # Rounding is monotone: rounded sums that differ order the exact sums the same way.
    if not (left <= right).all():
        return False
    if exact_sums or (left < right).all():
        return True
    # Tied rounded sums: compare the exact rounding errors instead (the rounded parts are equal).
    # Rows that tie tend to tie everywhere (equal rows), so this works on whole arrays.
    left_err = _rounding_error(c[:-1, :-1], c[1:, 1:], left)
    right_err = _rounding_error(c[:-1, 1:], c[1:, :-1], right)
    return bool(((left < right) | (left_err <= right_err)).all())


def _rounding_error(a: np.ndarray, b: np.ndarray, total: np.ndarray) -> np.ndarray:
    """``(a + b) - total`` exactly, where ``total`` is the rounded ``a + b`` (Knuth's TwoSum)."""
    b_part = total - a
    return (a - (total - b_part)) + (b - b_part)


def _monotone_assignment(c: np.ndarray) -> np.ndarray:
    """Cheapest assignment of every row to increasing columns (n < m), by dynamic programming.

    ``best[i, j]``: cheapest for rows 0..i with row i at column j; prefix minima make it one numpy
    pass per row.
    """
    n, m = c.shape
    best = np.empty((n, m))
    best[0] = c[0]
    for i in range(1, n):
        best[i, :i] = np.inf
        prefix = np.minimum.accumulate(best[i - 1, i - 1:m - 1])
        np.add(prefix, c[i, i:], out=best[i, i:])
    cols = np.empty(n, dtype=np.int64)
    limit = m - 1
    for i in range(n - 1, -1, -1):
        # The last row is free in its range; earlier rows must sit left of the row after them.
        cols[i] = int(best[i, :limit + 1].argmin())
        limit = cols[i] - 1
    return cols


# ---------------------------------------------------------------------------------------------------
# Shortest augmenting paths


def _solve(c: np.ndarray, ties: bool) -> np.ndarray:
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
        if np.count_nonzero(col4row < 0) > n // 2:
            # Few rows own the column minima (a collapsed model: a few rows dominate every column),
            # so column reduction assigns few rows: reduce rows first and match on tight pairs instead.
            col4row.fill(-1)
            row4col.fill(-1)
            v = _row_column_reduction(c)
            _tight_matching(c, v, col4row, row4col)
    else:
        v = np.zeros(m)
        _greedy_rows(c, col4row, row4col)
    free = np.flatnonzero(col4row < 0).tolist()
    for _ in range(_REDUCTION_PASSES):
        if not free:
            break
        free = _augmenting_row_reduction(c, v, col4row, row4col, free)
        if free:
            # Reduction moved prices: some free rows may now be tight at a free column.
            _tight_matching(c, v, col4row, row4col)
            free = np.flatnonzero(col4row < 0).tolist()
    for row in free:
        _augment(c, v, col4row, row4col, row, ties)
    return col4row


def _row_column_reduction(c: np.ndarray) -> np.ndarray:
    """Column duals ``v`` of the square ``c`` after subtracting row minima, then column minima."""
    row_min = c.min(axis=1)
    if np.isinf(row_min).any():  # a row with only forbidden entries
        raise _infeasible()
    v = (c - row_min[:, None]).min(axis=0)
    if np.isinf(v).any():  # a column with only forbidden entries
        raise _infeasible()
    return v


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


def _tight_matching(c: np.ndarray, v: np.ndarray, col4row: np.ndarray, row4col: np.ndarray) -> None:
    """Give free rows free columns where they are tight (``c[i] - v`` minimal): zero-length augmenting
    paths, found in vectorised rounds of proposals. First each row asks for its first tight column;
    then, for the rows left, each searches from its own offset, so that rows tight almost everywhere
    (a block of equal rows) spread out instead of all asking for the same column."""
    n, m = c.shape
    rows = np.flatnonzero(col4row < 0)
    if rows.size == 0:
        return
    reduced = c[rows]
    reduced -= v
    first_tight = reduced.argmin(axis=1)
    lowest = reduced[np.arange(rows.size), first_tight]
    tight = reduced <= lowest[:, None]
    usable = np.isfinite(lowest)  # a row with nothing allowed is left to the search to reject
    rows, tight, first_tight = rows[usable], tight[usable], first_tight[usable]
    unassigned = _assign_first_come(rows, first_tight, row4col[first_tight] < 0, col4row, row4col)
    rows, tight = rows[unassigned], tight[unassigned]
    offset = ((rows * m) // n)[:, None]
    columns = np.arange(m)
    for _ in range(_MATCHING_ROUNDS):
        allowed = tight & (row4col < 0)
        has = allowed.any(axis=1)
        if not has.any():
            return
        rows, tight, offset, allowed = rows[has], tight[has], offset[has], allowed[has]
        # First allowed column at or after the row's offset, else its first allowed column.
        ahead = allowed & (columns >= offset)
        choice = np.where(ahead.any(axis=1), ahead.argmax(axis=1), allowed.argmax(axis=1))
        unassigned = _assign_first_come(rows, choice, np.ones(rows.size, dtype=bool), col4row, row4col)
        rows, tight, offset = rows[unassigned], tight[unassigned], offset[unassigned]
        if rows.size == 0:
            return


def _assign_first_come(rows: np.ndarray, choice: np.ndarray, eligible: np.ndarray, col4row: np.ndarray,
                       row4col: np.ndarray) -> np.ndarray:
    """Assign each eligible row its chosen (free) column, the first row winning a contested one;
    return the mask of rows left unassigned."""
    candidates = np.flatnonzero(eligible)
    cols, first = np.unique(choice[candidates], return_index=True)
    winners = candidates[first]
    col4row[rows[winners]] = cols
    row4col[cols] = rows[winners]
    unassigned = np.ones(rows.size, dtype=bool)
    unassigned[winners] = False
    return unassigned


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
        if not math.isfinite(u1):
            raise _infeasible()
        owner = int(row4col[j1])
        if u1 < u2:
            if math.isfinite(u2):
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


def _augment(c: np.ndarray, v: np.ndarray, col4row: np.ndarray, row4col: np.ndarray, start: int,
             ties: bool) -> None:
    """Assign row ``start`` along a shortest augmenting path, updating ``v``."""
    search = _Dijkstra(c, v, row4col, start, ties)
    cols, dist = search.scanned()
    v[cols] += dist - search.length
    col = search.sink
    for row in search.path(c, col4row):
        previous = int(col4row[row])
        row4col[col] = row
        col4row[row] = col
        col = previous


class _Dijkstra:
    """Shortest path over columns (reduced costs) from the free row ``start`` to a free column.

    ``key`` holds the distance of columns still to scan, +inf once scanned; a scanned column's ``w``
    is -inf, so that later relaxations leave it alone. Step ``k`` offers every column a distance
    through one row or a few (``vias[k]``): a column's predecessor is the first step offering its
    final distance, worked out at the end for the path's columns only (cheaper than tracking it at
    every step). Offers are kept ``_OFFERS_KEPT`` at a time, then folded into the best so far and
    its step, so memory stays small on long searches. With ``ties`` (integer costs: few distinct
    distances) all columns at the lowest distance are scanned together, in growing chunks so that
    a free column among them ends the search early.
    """

    def __init__(self, c: np.ndarray, v: np.ndarray, row4col: np.ndarray, start: int, ties: bool) -> None:
        self.start = start
        w = v.copy()
        key = c[start] - v
        self.offers: List[np.ndarray] = [key.copy()]  # those of the steps not folded yet
        self.vias: List[object] = [start]  # a row, or (rows, their offsets) for a batch
        self.folded = 0  # steps folded into best_offer and best_step
        self.best_offer: Optional[np.ndarray] = None
        self.best_step: Optional[np.ndarray] = None
        self.cols: List[int] = []
        self.dist: List[float] = []
        self.batches: List[Tuple[np.ndarray, float]] = []
        offers, vias, cols, dist = self.offers, self.vias, self.cols, self.dist  # the hot loop's names
        chunk = 4
        while True:
            col = int(key.argmin())
            lowest = key.item(col)
            if lowest == math.inf:
                raise _infeasible()
            row = row4col.item(col)
            if row < 0:
                break
            if ties:
                batch = (key == lowest).nonzero()[0]
                open_batch = row4col[batch] < 0
                if open_batch.any():
                    col = int(batch[open_batch][0])
                    break
                if batch.size > 1:
                    batch = batch[:chunk]
                    chunk *= 2
                    key[batch] = math.inf
                    w[batch] = -math.inf  # before relaxing: rounding cannot let a row relabel its own column
                    rows = row4col[batch]
                    offsets = lowest - (c[rows, batch] - v[batch])
                    block = c[rows]
                    block += offsets[:, None]
                    offer = block.min(axis=0)
                    offer -= w
                    offers.append(offer)
                    vias.append((rows, offsets))
                    np.minimum(key, offer, out=key)
                    if len(offers) == _OFFERS_KEPT:
                        self._fold()
                    self.batches.append((batch, lowest))
                    continue
            key[col] = math.inf
            w[col] = -math.inf
            offer = c[row] - w
            offer += lowest - (c.item(row, col) - v.item(col))
            offers.append(offer)
            vias.append(row)
            np.minimum(key, offer, out=key)
            if len(offers) == _OFFERS_KEPT:
                self._fold()
            cols.append(col)
            dist.append(lowest)
        self.sink = col
        self.length = lowest

    def scanned(self) -> Tuple[np.ndarray, np.ndarray]:
        """The scanned columns (each once) and their distances."""
        cols = [np.array(self.cols, dtype=np.int64)] + [batch for batch, _ in self.batches]
        dist = [np.array(self.dist)] + [np.full(batch.size, d) for batch, d in self.batches]
        return np.concatenate(cols), np.concatenate(dist)

    def _fold(self) -> None:
        """Fold the kept offers into the best offer per column and the first step making it."""
        block = np.stack(self.offers)
        step = block.argmin(axis=0)
        offer = block[step, np.arange(block.shape[1])]
        step += self.folded
        if self.best_offer is None or self.best_step is None:
            self.best_offer, self.best_step = offer, step
        else:
            better = offer < self.best_offer  # strictly: an earlier step keeps a tie
            self.best_offer[better] = offer[better]
            self.best_step[better] = step[better]
        self.folded += len(self.offers)
        self.offers.clear()

    def _first_best_step(self, col: int) -> int:
        """The first step that offered column ``col`` its final distance."""
        if self.best_step is None:
            column = [offer.item(col) for offer in self.offers]
            return column.index(min(column))
        return int(self.best_step[col])

    def path(self, c: np.ndarray, col4row: np.ndarray) -> List[int]:
        """Rows of the augmenting path, from the sink's back to ``start``."""
        if self.offers and (self.best_step is not None or len(self.offers) > 16):
            self._fold()  # a long search: fold once rather than read many offers per column
        rows: List[int] = []
        col = self.sink
        while True:
            via = self.vias[self._first_best_step(col)]
            if isinstance(via, int):
                row = via
            else:  # the batch row whose offer was the minimum, recomputed exactly as offered
                batch_rows, offsets = via
                row = int(batch_rows[(c[batch_rows, col] + offsets).argmin()])
            rows.append(row)
            if row == self.start:
                return rows
            col = int(col4row[row])
