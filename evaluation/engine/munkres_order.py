"""The assignment munkres 1.1.4 returns (the original match.py's solver), ties included, fast.

munkres 1.1.4 (``Munkres().compute``, pure Python) runs Munkres' steps on a padded square copy of the
costs: (1) subtract each row's minimum; (2) star, row by row, the first zero whose column has no star;
(3) cover the starred columns, done when all are covered; (4) look for an uncovered zero (see
``_next_zero``) and prime it: if its row has a star, cover the row, uncover the star's column and go on,
else (5) flip the alternating path of primes and stars that starts there, erase the primes and go back
to (3); with no uncovered zero left, (6) add the smallest uncovered value to the covered rows, subtract
it from the uncovered columns and go back to (4). Which optimum it returns depends on that scan order.

This module runs the same steps in the same order, but keeps the reduced costs implicit (``c - u - v``
with lazily updated duals, in exact integers: the float32 costs times a power of two) and the zeros as
bit sets, so that each step costs a few integer operations instead of a pass over the matrix. Exact
integers equal the release's float64 arithmetic whenever that arithmetic is exact (every value it forms
is a multiple of the smallest float32 step, below 2**53 of them), which is checked; otherwise a direct
float64 run of the steps (``munkres_114_reference``) answers.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from .bitsets import bits_of, row_bits

__all__ = ["benchmark_costs", "exact_integers", "munkres_114", "munkres_114_reference"]

# A reduced cost that no zero test can meet (covered rows' keys).
_NEVER = np.int64(1) << np.int64(62)
# v_open of a covered column: c - v_open is then far above any u + shift, so never a zero.
_CLOSED = -(np.int64(1) << np.int64(61))
# Every value munkres forms stays below this many of the float32 grid's steps, else floats may round.
_EXACT_LIMIT = 2 ** 53
# Phases whose free columns are few enough rescan them directly instead of keeping sorted rows.
_DIRECT_FREE_CELLS = 1 << 17


def benchmark_costs(counts: np.ndarray, images: int) -> np.ndarray:
    """The original's cost matrix: ``float32(1 - C / N)`` computed in float64 (N images, at least 1)."""
    return (1.0 - np.asarray(counts, dtype=np.float64) / max(int(images), 1)).astype(np.float32)


def exact_integers(costs: np.ndarray) -> Optional[np.ndarray]:
    """Non-negative finite float costs as int64 multiples of one binary step that divides them all, or
    None when those multiples reach 2**52 (float64 arithmetic on the costs may round: a float run must
    answer). float32 values (24 significant bits) take the step of the smallest one's last bit."""
    values = np.asarray(costs, dtype=np.float64)
    if not np.isfinite(values).all() or (values.size and values.min() < 0):
        return None
    positive = values[values > 0]
    if positive.size == 0:
        return np.zeros(values.shape, dtype=np.int64)
    if np.array_equal(values.astype(np.float32), values):
        shift = 24 - int(np.frexp(positive.min())[1])
    else:
        mantissa, exponent = np.frexp(positive)                # x = mantissa * 2**exponent, 0.5 <= mantissa < 1
        digits = np.ldexp(mantissa, 53).astype(np.int64)      # the 53-bit significand as a whole number
        _half, lowest_one = np.frexp((digits & -digits).astype(np.float64))
        shift = int((53 - exponent - (lowest_one - 1)).max())  # binary digits after the point
    scaled = np.ldexp(values, max(shift, 0))
    if scaled.max() >= 2.0 ** 52:
        return None
    return scaled.astype(np.int64)


def munkres_114(costs: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Column per row that munkres 1.1.4 returns for ``costs`` (non-negative, finite), and the bool
    matrix of its final zeros (the tight pairs of its optimal duals), both for munkres' square copy: a
    matrix that is not square gets zero rows or columns, as munkres pads it."""
    matrix = _padded(np.asarray(costs, dtype=np.float64))
    scaled = exact_integers(matrix)
    if scaled is not None and scaled.shape[0]:
        col4row, u, v, largest = _Emulation(scaled).run()
        if largest < _EXACT_LIMIT:
            return col4row, scaled - u[:, None] - v == 0
    col4row, reduced = munkres_114_reference(matrix)
    return col4row, reduced == 0


def _padded(matrix: np.ndarray) -> np.ndarray:
    """munkres' square copy: zeros appended to short rows, then zero rows up to the width."""
    n, m = matrix.shape
    size = max(n, m)
    if n == m:
        return matrix.copy()
    square = np.zeros((size, size))
    square[:n, :m] = matrix
    return square


# ---------------------------------------------------------------------------------------------------
# The fast emulation


def _distinct_rows(c: np.ndarray, ct: np.ndarray) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], np.ndarray]:
    """``(rep, first, ct_rows)``: each row's index among the distinct rows of ``c``, the first row of
    each, and ``ct`` restricted to those (columns x distinct rows); ``(None, None, ct)`` when fewer than
    a fifth of the rows repeat."""
    n = c.shape[0]
    if n < 64:
        return None, None, ct
    weights = np.random.default_rng(0).integers(1, 1 << 20, size=c.shape[1])
    keys = c @ weights                                         # wraps on overflow: only a hash
    _keys, first, rep = np.unique(keys, return_index=True, return_inverse=True)
    if first.size > 0.8 * n or not (c == c[first[rep]]).all():  # few repeats, or a hash collision
        return None, None, ct
    return rep.reshape(-1), first, np.ascontiguousarray(ct[:, first])


class _FreeMinima:
    """Per row, the smallest cost over the free (never starred) columns; the free set only shrinks.

    Sorted rows and a pointer per row when many columns are free (a pointer only moves forward),
    a direct rescan when few are.
    """

    def __init__(self, c: np.ndarray, free: np.ndarray):
        self.c = c
        self.free = np.zeros(c.shape[1], dtype=bool)
        self.free[free] = True
        self.order: Optional[np.ndarray] = None
        if c.shape[0] * free.size > _DIRECT_FREE_CELLS:
            self.order = np.argsort(c, axis=1, kind="stable")
            self.pointer = np.zeros(c.shape[0], dtype=np.int64)
            self._advance(np.arange(c.shape[0]))

    def _advance(self, rows: np.ndarray) -> None:
        assert self.order is not None
        while rows.size:
            stuck = ~self.free[self.order[rows, self.pointer[rows]]]
            rows = rows[stuck]
            self.pointer[rows] += 1

    def remove(self, col: int) -> None:
        self.free[col] = False
        if self.order is not None and self.free.any():
            rows = np.flatnonzero(self.order[np.arange(self.c.shape[0]), self.pointer] == col)
            self._advance(rows)

    def minima(self) -> np.ndarray:
        if self.order is not None:
            rows = np.arange(self.c.shape[0])
            return self.c[rows, self.order[rows, self.pointer]]
        return self.c[:, self.free].min(axis=1)


class _Emulation:
    """munkres 1.1.4's steps on exact integer costs (square, non-negative).

    Reduced costs are ``c - u - v``. Within a phase (from step 3 to step 5) step 6 only moves the duals
    of covered rows and uncovered columns, by the same running total ``shift`` for all of them, so the
    duals are kept as their phase-start values plus ``shift`` minus its value when the line changed
    cover. Zeros are bit sets by row and by column that may keep stale zeros (step 6 raises covered rows
    x covered columns): a zero is checked before use, and a stale one dropped.
    """

    def __init__(self, c: np.ndarray):
        self.c = c
        self.ct = np.ascontiguousarray(c.T)
        self.n = n = c.shape[0]
        self.bit = [1 << i for i in range(n)]
        self.below = [b - 1 for b in self.bit]                 # bits of the columns before each column
        # Identical rows get identical slacks: keep them once (columns x distinct rows) when that saves.
        self.rep, self.first, self.ct_rows = _distinct_rows(c, self.ct)
        self.scratch = np.empty((0, self.ct_rows.shape[1]), dtype=np.int64)  # room for a pass's columns

    def run(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Column per row, the final duals ``u`` and ``v`` (optimal: ``c - u - v >= 0``, zero on the
        assignment) and a bound on every value munkres forms (for the exactness check)."""
        c, n, bit = self.c, self.n, self.bit
        u = c.min(axis=1)                                       # step 1
        v = np.zeros(n, dtype=np.int64)
        zero = c == u[:, None]
        zr, zc = row_bits(zero), row_bits(np.ascontiguousarray(zero.T))
        star, star_row = [-1] * n, [-1] * n
        taken = 0
        for i in range(n):                                      # step 2
            z = zr[i] & ~taken
            if z:
                j = (z & -z).bit_length() - 1
                star[i], star_row[j] = j, i
                taken |= bit[j]
        self.zr, self.zc, self.star, self.star_row = zr, zc, star, star_row
        free = np.array([j for j in range(n) if star_row[j] < 0], dtype=np.int64)
        minima = _FreeMinima(c, free) if free.size else None
        lowest_u = int(u.min()) if n else 0
        while free.size:
            assert minima is not None
            root = self._phase(u, v, free, minima)
            lowest_u = min(lowest_u, int(u.min()))
            free = free[free != root]
            minima.remove(root)
        # Every value munkres forms is a reduced cost (at most max c - min u, as v >= 0 and u only falls)
        # or one plus a step-6 value (no larger): twice that bounds them all.
        largest = 2 * (int(c.max()) - lowest_u) if n else 0
        return np.array(star, dtype=np.int64), u, v, largest

    def _phase(self, u: np.ndarray, v: np.ndarray, free: np.ndarray, minima: _FreeMinima) -> int:
        """Steps 3 to 5 once (``u`` and ``v`` updated in place); returns the free column that got starred."""
        c, ct, n, bit, below = self.c, self.ct, self.n, self.bit, self.below
        zr, zc, star, star_row = self.zr, self.zc, self.star, self.star_row
        # best[i]: the smallest c[i, j] - v_open[j] over the uncovered columns, so that row i's smallest
        # reduced cost there is best[i] - u[i] - shift (uncovered rows keep their u within a phase).
        best = minima.minima() - int(v[free[0]])              # free columns share one v
        rep, ct_rows = self.rep, self.ct_rows
        slack = best if rep is None else best[self.first]     # best per distinct row
        u_open = u.copy()                                      # u, or -_NEVER once the row is covered
        cand = bits_of(np.flatnonzero(best == u).tolist())    # uncovered rows with an uncovered zero
        fresh = ((1 << n) - 1) & ~cand                         # uncovered rows not (yet) in cand
        ucols = bits_of(free.tolist())
        u_list, v_list = u.tolist(), v.tolist()
        # v minus the shift at opening for open columns, _CLOSED for covered ones (so that no zero test
        # on c - v_open can pass there), and the same as a list for single reads.
        v_open = np.full(n, _CLOSED, dtype=np.int64)
        v_open[free] = v[free]
        opened = list(v_list)
        covered_at = np.full(n, -1, dtype=np.int64)            # shift when each row was covered
        shift = 0                                              # running total of step 6's values
        pending: List[int] = []                                # columns opened since the last step 6
        prime = [-1] * n
        scratch = self.scratch
        gap = np.empty(n, dtype=np.int64)
        row = col = 0                                          # step 4's scan position
        while True:
            if not cand:                                       # step 6
                if pending:
                    opening = np.array(pending)
                    offsets = v_open.take(opening)
                    if opening.size > scratch.shape[0]:
                        self.scratch = scratch = np.empty((2 * opening.size, ct_rows.shape[1]), dtype=np.int64)
                    block = ct_rows.take(opening, axis=0, out=scratch[:opening.size])
                    block -= offsets[:, None]
                    np.minimum(slack, block.min(axis=0), out=slack)
                    if rep is not None:
                        slack.take(rep, out=best)
                    pending = []
                np.subtract(best, u_open, out=gap)
                shift = int(gap.min())
                ys = np.flatnonzero(gap == shift)
                if ys.size == 1:
                    y = int(ys[0])
                    new_zeros = [(y, np.flatnonzero(c[y] - v_open == u_list[y] + shift).tolist())]
                else:
                    block = c[ys] - v_open == (u[ys] + shift)[:, None]
                    new_zeros = [(y, np.flatnonzero(zeros).tolist()) for y, zeros in zip(ys.tolist(), block)]
                for y, cols in new_zeros:
                    bits = 0
                    for j in cols:
                        bits |= bit[j]
                        zc[j] |= bit[y]
                    zr[y] |= bits
                    cand |= bit[y]
                    fresh ^= bit[y]
                row = col = 0
                continue
            ahead = cand >> row
            r = row + (ahead & -ahead).bit_length() - 1 if ahead else (cand & -cand).bit_length() - 1
            cand ^= bit[r]
            z = zr[r] & ucols
            u_r = u_list[r] + shift
            while True:
                j = ((z & below[col]) or z).bit_length() - 1
                if c.item(r, j) - opened[j] == u_r:
                    break
                zr[r] ^= bit[j]
                zc[j] &= ~bit[r]
                z ^= bit[j]
            prime[r] = j
            s = star[r]
            if s < 0:
                break
            u_open[r] = -_NEVER
            covered_at[r] = shift
            ucols |= bit[s]
            pending.append(s)
            v_s = v_list[s]
            opened[s] = v_open[s] = v_s - shift
            found = zc[s] & fresh
            while found:
                low = found & -found
                y = low.bit_length() - 1
                found ^= low
                if ct.item(s, y) - v_s == u_list[y]:
                    cand |= low
                    fresh ^= low
                else:
                    zc[s] ^= low
                    zr[y] &= ~bit[s]
            row, col = r, s
        # Fold the lazy duals back, then step 5: flip the path from the last prime.
        rows = np.flatnonzero(covered_at >= 0)
        u[rows] -= shift - covered_at[rows]
        open_cols = v_open != _CLOSED
        v[open_cols] = v_open[open_cols] + shift
        while True:
            above = star_row[j]
            star[r], star_row[j] = j, r
            if above < 0:
                return j
            r, j = above, prime[above]


# ---------------------------------------------------------------------------------------------------
# The reference: the steps literally, on float64 (slow; for inexact costs and for tests)


def munkres_114_reference(costs: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """munkres 1.1.4's steps as it runs them, on a float64 copy (square): its column per row and its
    final reduced costs."""
    reduced = np.array(costs, dtype=np.float64)
    n = reduced.shape[0]
    reduced -= reduced.min(axis=1, keepdims=True) if n else 0.0
    star = np.full(n, -1, dtype=np.int64)
    star_row = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        open_zero = np.flatnonzero((reduced[i] == 0) & (star_row < 0))
        if open_zero.size:
            star[i], star_row[open_zero[0]] = open_zero[0], i
    while not (star_row >= 0).all():
        col_cov = star_row >= 0
        row_cov = np.zeros(n, dtype=bool)
        prime = np.full(n, -1, dtype=np.int64)
        row, col = 0, 0
        while True:
            r, j = _next_zero(reduced, row_cov, col_cov, row, col)
            if r < 0:
                low = reduced[np.ix_(~row_cov, ~col_cov)].min()
                reduced[row_cov] += low
                reduced[:, ~col_cov] -= low
                row, col = 0, 0
                continue
            prime[r] = j
            if star[r] < 0:
                break
            row_cov[r], col_cov[star[r]] = True, False
            row, col = r, int(star[r])
        while True:
            above = int(star_row[j])
            star[r], star_row[j] = j, r
            if above < 0:
                break
            r, j = above, int(prime[above])
    return star, reduced


def _next_zero(reduced: np.ndarray, row_cov: np.ndarray, col_cov: np.ndarray, row: int, col: int) -> Tuple[int, int]:
    """Step 4's scan from (row, col): the first uncovered row in cyclic order with an uncovered zero, and
    in it the LAST uncovered zero of the cyclic column order from ``col`` (the release reads the whole
    row and keeps the last zero it saw); (-1, -1) if there is none."""
    n = reduced.shape[0]
    for step in range(n):
        i = (row + step) % n
        if row_cov[i]:
            continue
        cols = np.flatnonzero((reduced[i] == 0) & ~col_cov)
        if cols.size:
            return i, int(cols[((cols - col) % n).argmax()])
    return -1, -1
