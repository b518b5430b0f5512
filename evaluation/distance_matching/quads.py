"""The quad structure of a 4x bilinear upsampling, for :func:`imagenets.evaluation.distance_matching.vote.vote_map`.

Quad (jy, jx) is the 2x2 block of cells jy, jy+1 by jx, jx+1 (clamped to the map); every
upsampled pixel is a convex blend of one quad's 4 cells, with weights taken from a few "slots"
shared by all quads. Its dot product with an embedding is the same blend of the cells' dot
products, so it is bounded above by their maximum (and, for slots giving each cell at least
``floor``, by floor * sum + (1 - 4 floor) * max), and below by its exact value on a few candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, List, Sequence, Tuple

import torch

#: Per cell, the best embeddings whose exact blends give the lower bounds (more: tighter bounds
#: and fewer survivors, but a slower top-k; 32 to 128 cost about the same at 18,380 x 384).
BOUND_CANDIDATES = 64
#: Slots are ranked in bins by the sum of their squared weights (low: a near-even blend, whose
#: k-th best similarity is low and lets many embeddings through; high: a pixel near a cell).
BIN_EDGES = (0.35, 0.5)
#: Smaller floors are dropped (the plain maximum bounds those bins): the bound they would give
#: is hardly tighter than the maximum's and costs two passes over the (quads x embeddings) matrix.
MIN_FLOOR = 0.03
#: Dot product of the padding slot: far below any real one, finite so that 0 * it is 0.
SENTINEL = -1e30


@dataclass(frozen=True)
class Bin:
    """Slots ranked together, the quads that have pixels on them, and the bin's floor: the least
    weight of every cell in each of its slots (0 unless the same for all 4 cells)."""

    slots: torch.Tensor  # (n,)
    quads: torch.Tensor  # (q,)
    floor: float


@dataclass(frozen=True)
class Plan:
    """Slot weights, quad corners and the pixel -> (quad, slot) map of one feature map size."""

    corners: torch.Tensor  # (Q, 4) cell ids: top-left, top-right, bottom-left, bottom-right
    weights: torch.Tensor  # (S, 4) each slot's weights on those 4 cells
    source: torch.Tensor   # (P,) per output pixel: quad * S + slot
    bins: Tuple[Bin, ...]


def _axis(size: int, scale: int) -> Tuple[List[int], List[float]]:
    """Per output index along one axis (align_corners=False): its cell pair j and the weight of
    cell j+1. The last pair (cells size-1 and size-1) takes weight 0, as do clamped borders."""
    pairs, uppers = [], []
    for index in range(size * scale):
        position = max((index + 0.5) / scale - 0.5, 0.0)
        pair = min(int(position), size - 1)
        pairs.append(pair)
        uppers.append(position - pair if pair < size - 1 else 0.0)
    return pairs, uppers


@lru_cache(maxsize=64)
def plan_for(height: int, width: int, scale: int, device: torch.device) -> Plan:
    """The plan of a (height, width) map upsampled ``scale`` x (cached: sizes repeat)."""
    (row_pair, row_w), (col_pair, col_w) = _axis(height, scale), _axis(width, scale)
    row_slots, col_slots = sorted(set(row_w)), sorted(set(col_w))
    wy = torch.tensor(row_slots, dtype=torch.float64)[:, None]
    wx = torch.tensor(col_slots, dtype=torch.float64)[None, :]
    weights = torch.stack([(1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx], dim=-1).reshape(-1, 4)
    slots = weights.shape[0]
    row_src = torch.tensor([p * width * slots + row_slots.index(u) * len(col_slots)
                            for p, u in zip(row_pair, row_w)])
    col_src = torch.tensor([p * slots + col_slots.index(u) for p, u in zip(col_pair, col_w)])
    source = (row_src[:, None] + col_src[None, :]).flatten()
    y, x = torch.arange(height)[:, None], torch.arange(width)[None, :]
    y1, x1 = (y + 1).clamp_max(height - 1), (x + 1).clamp_max(width - 1)
    corners = torch.stack([y * width + x, y * width + x1, y1 * width + x, y1 * width + x1], dim=-1)
    used = torch.zeros(height * width * slots, dtype=torch.bool)
    used[source] = True
    used = used.view(-1, slots)
    # Slots on a cell row or column (weight 0) serve only the border pixels: a bin of their own,
    # so that the other quads skip them; the rest are binned by their sum of squared weights.
    ranks = torch.bucketize((weights ** 2).sum(dim=1), torch.tensor(BIN_EDGES, dtype=torch.float64))
    ranks[((wy == 0) | (wx == 0)).flatten()] = len(BIN_EDGES) + 1
    bins = []
    for rank in ranks.unique().tolist():
        members = (ranks == rank).nonzero().flatten()
        quads = used[:, members].any(dim=1).nonzero().flatten()
        least = weights[members].amin(dim=0)
        floor = float(least[0]) if bool((least == least[0]).all()) and least[0] >= MIN_FLOOR else 0.0
        if len(quads):
            bins.append(Bin(members.to(device), quads.to(device), floor))
    return Plan(corners.reshape(-1, 4).to(device), weights.float().to(device), source.to(device),
                tuple(bins))


def quad_reduce(grid: torch.Tensor, rows: int, combine: Callable) -> torch.Tensor:
    """(rows * w, E): ``combine`` (torch.maximum or torch.add) over each quad's 4 cells, for the
    quads on the first ``rows`` rows of ``grid`` (G, w, E); past the map's last row or column a
    pair is that cell twice."""
    along_x = torch.empty_like(grid)
    combine(grid[:, :-1], grid[:, 1:], out=along_x[:, :-1])
    combine(grid[:, -1], grid[:, -1], out=along_x[:, -1])
    out = grid.new_empty((rows,) + grid.shape[1:])
    pairs = min(rows, grid.shape[0] - 1)
    combine(along_x[:pairs], along_x[1:pairs + 1], out=out[:pairs])
    if pairs < rows:  # the map's last row: its cells with themselves
        combine(along_x[-1], along_x[-1], out=out[-1])
    return out.view(rows * grid.shape[1], -1)


def take(source: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``source.flatten()[index]``; index_select is several times faster than advanced indexing."""
    return source.reshape(-1).index_select(0, index.reshape(-1)).view(index.shape)


def gather(dots: torch.Tensor, corners: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
    """(q, 4, m): the dot products of each quad's 4 cells (q, 4) with its members (q, m)."""
    if dots.numel() < 2 ** 31:  # int32 indices: half the memory traffic of int64
        members, corners = members.int(), corners.int()
    # each row reads one cell's dot products at ascending members: cache friendly
    return take(dots, corners[:, :, None] * dots.shape[1] + members[:, None, :])


def lower_bounds(dots: torch.Tensor, corners: torch.Tensor, weights: torch.Tensor,
                 bins: Sequence[Tuple[Bin, torch.Tensor]], k: int, real: int) -> torch.Tensor:
    """(q, bins): per quad and bin (with its quads), a value that the k-th best blend of each of
    its pixels reaches (+inf where the quad has no pixel in the bin): the k-th best exact blend
    over the distinct best embeddings of the quad's 4 cells."""
    candidates = dots[:, :real].topk(min(max(k, BOUND_CANDIDATES), real), dim=1).indices
    candidates = candidates.index_select(0, corners.flatten()).view(corners.shape[0], -1)
    candidates = candidates.sort(dim=1).values  # (q, 4m)
    values = gather(dots, corners, candidates)
    repeated = (candidates[:, 1:] == candidates[:, :-1])[:, None, :]
    values[:, :, 1:].masked_fill_(repeated, SENTINEL)  # each embedding counts once
    bounds = torch.full((corners.shape[0], len(bins)), float("inf"), device=dots.device)
    for b, (group, quads) in enumerate(bins):
        blends = torch.matmul(weights[group.slots], values.index_select(0, quads))  # (q, n, 4m)
        bounds[quads, b] = blends.topk(k, dim=2).values[:, :, -1].amin(dim=1)
    return bounds


@dataclass(frozen=True)
class Survivors:
    """Embeddings a bin's bounds let through, grouped by quad (flat, with offsets)."""

    members: torch.Tensor
    starts: torch.Tensor
    counts: torch.Tensor
    padding: int  # the id of the padding slot

    def padded(self, quads: torch.Tensor, width: int) -> torch.Tensor:
        """(q, width) members of ``quads``, the padding slot after each quad's own."""
        offsets = torch.arange(width, device=quads.device)[None, :]
        slots = (self.starts[quads][:, None] + offsets).clamp_max(max(len(self.members) - 1, 0))
        members = take(self.members, slots) if len(self.members) else torch.zeros_like(slots)
        return members.masked_fill_(offsets >= self.counts[quads][:, None], self.padding)


def rank_bin(dots: torch.Tensor, corners: torch.Tensor, weights: torch.Tensor,
             survivors: Survivors, slots: torch.Tensor, quads: torch.Tensor, k: int,
             chunk_elements: int) -> List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Blend and rank each quad's survivors for the bin's slots, in chunks of quads with similar
    survivor counts: per chunk (quads, top k values (q, n, k), their embedding ids (q, n, k))."""
    counts = survivors.counts.index_select(0, quads)
    order = counts.argsort()
    sorted_counts = counts[order].tolist()
    order = quads[order]
    slot_weights = weights[slots]  # (n, 4)
    results = []
    begin = 0
    while begin < len(order):
        end = begin + 1
        # grow the chunk while its padded (quads x slots x survivors) block fits the budget
        while end < len(order) and (end + 1 - begin) * len(slots) * sorted_counts[end] <= chunk_elements:
            end += 1
        chunk = order[begin:end]
        members = survivors.padded(chunk, max(sorted_counts[end - 1], k))
        blends = torch.matmul(slot_weights, gather(dots, corners[chunk], members))  # (q, n, m)
        best, position = blends.topk(k, dim=2)
        results.append((chunk, best, members.gather(1, position.flatten(1)).view_as(position)))
        begin = end
    return results
