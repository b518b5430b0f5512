"""Which optimal assignments tie: is the optimum unique, and which rows could go elsewhere.

With optimal duals (``c[i, j] - u[i] - v[j] >= 0``, zero on the assignment), every optimal assignment
uses only tight pairs (zero reduced cost), and every perfect matching of tight pairs is optimal. A row
has a tied alternative exactly when it lies on an alternating cycle of tight pairs: in the graph with
an arc ``i -> k`` when row i is tight on row k's column, when it shares a strongly connected component
with another row. The optimum is unique when no row does.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from .bitsets import bits_of, row_bits

__all__ = ["rows_with_alternatives"]


def rows_with_alternatives(tight: np.ndarray, col4row: np.ndarray, columns: Optional[int] = None,
                           fallback: Optional[np.ndarray] = None) -> np.ndarray:
    """Bool per row: some optimal assignment gives it another column. ``tight`` is the square bool matrix
    of zero reduced costs under optimal duals, ``col4row`` an optimal assignment.

    With ``columns`` < n, the columns from ``columns`` on are padding (all-equal columns standing for "no
    column"): moving rows between padding columns is no alternative. A row without a real column ends
    up at ``fallback[row]`` (a real column or -1); taking or leaving a real column is an alternative
    only where that changes the row's final column.
    """
    n = col4row.size
    if n < 2:
        return np.zeros(n, dtype=bool)
    arcs = tight[:, col4row]                   # arcs[i, k]: row i is tight on row k's column
    real = col4row < (n if columns is None else columns)
    if real.all():
        arcs = arcs.copy()
        np.fill_diagonal(arcs, False)
        return _components(arcs)[1] > 1
    # Rows on padding become one node (the last): into it from every row tight on padding (all padding
    # columns are alike, so one stands for all), out of it wherever one of them is tight. An arc within
    # a strongly connected component closes a cycle: an alternative for the row it leaves.
    kept = np.flatnonzero(real)
    padded = np.flatnonzero(~real)
    fall = np.full(n, -1) if fallback is None else fallback
    final = np.where(real, col4row, fall)
    size = kept.size + 1
    merged = np.zeros((size, size), dtype=bool)
    merged[:-1, :-1] = arcs[np.ix_(kept, kept)]
    merged[:-1, -1] = arcs[kept, padded[0]]
    merged[-1, :-1] = arcs[np.ix_(padded, kept)].any(axis=0)
    np.fill_diagonal(merged, False)
    label, _size_of = _components(merged)
    inside = merged & (label[:, None] == label[None, :])       # arcs that close a cycle
    result = np.zeros(n, dtype=bool)
    result[kept] = inside[:-1, :-1].any(axis=1) | (inside[:-1, -1] & (col4row[kept] != fall[kept]))
    # A row on padding can take a real column only through the pool's own component.
    reach = arcs[np.ix_(padded, kept)] & (label[:-1] == label[-1])[None, :]
    result[padded] = (reach & (col4row[kept][None, :] != final[padded][:, None])).any(axis=1)
    return result


def _components(arcs: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Strongly connected components: a label per node and the size of each node's component
    (Kosaraju's two searches, successor sets as bit sets: each step takes the lowest unseen one)."""
    n = arcs.shape[0]
    label = np.arange(n)
    size_of = np.ones(n, dtype=np.int64)
    keep = arcs.any(axis=1) & arcs.any(axis=0)  # a node without arcs in or out is alone
    if not keep.any():
        return label, size_of
    out_sets = row_bits(arcs)
    in_sets = row_bits(np.ascontiguousarray(arcs.T))
    alive = bits_of(np.flatnonzero(keep).tolist())
    unseen = alive
    for root in reversed(_finish_order(out_sets, alive)):
        if not unseen >> root & 1:
            continue
        unseen ^= 1 << root
        component, stack = [root], [root]
        while stack:
            reach = in_sets[stack.pop()] & unseen
            while reach:
                low = reach & -reach
                node = low.bit_length() - 1
                reach ^= low
                unseen ^= low
                component.append(node)
                stack.append(node)
        label[component] = root
        size_of[component] = len(component)
    return label, size_of


def _finish_order(out_sets: List[int], alive: int) -> List[int]:
    """Nodes of ``alive`` in the order a depth-first search over ``out_sets`` finishes them."""
    unseen = alive
    order: List[int] = []
    while unseen:
        start = (unseen & -unseen).bit_length() - 1
        unseen ^= 1 << start
        stack = [start]
        while stack:
            node = stack[-1]
            reach = out_sets[node] & unseen
            if reach:
                low = reach & -reach
                unseen ^= low
                stack.append(low.bit_length() - 1)
            else:
                order.append(stack.pop())
    return order
