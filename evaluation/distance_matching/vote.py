"""Distance matching, step 2's core: weighted k-nearest-embedding vote per pixel.

:func:`knn_vote` is the plain form (one similarity row per pixel). :func:`vote_map` gives the same
labels for a feature map upsampled 4x (bilinear) at a fraction of the cost. Upsampling is linear,
so it takes the dot products once per cell; a pixel's are then the bilinear blend of its cells'.
Small banks upsample all of them. Large ones (ImageNet-S919's 18,380) prune: per quad of cells
(see :mod:`imagenets.evaluation.distance_matching.quads`) a lower bound on each pixel's k-th best similarity rules out
every embedding whose upper bound falls below it; only the survivors are blended and ranked.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Iterator, Tuple

import torch
import torch.nn.functional as F

from .quads import SENTINEL, Plan, Survivors, lower_bounds, plan_for, quad_reduce, rank_bin, take

#: Elements of one chunk's similarity matrix (pixels x embeddings): 2^22 floats = 16 MiB
#: (larger chunks fall out of the CPU caches and run slower; see bench/).
CHUNK_ELEMENTS = 1 << 22
#: Norm floor, as F.normalize uses: an all-zero feature gets similarities 0, not NaN.
EPS = 1e-12
#: Relative slack on the pruning bound: a 4-term blend may round a few ulp above its inputs' max.
BOUND_SLACK = 1e-5
#: Banks of fewer embeddings upsample every dot product, which is faster than pruning below
#: about 4,000 embeddings (of 16 to 2048 channels, on CPU; see bench/).
PRUNE_MIN_EMBEDDINGS = 4096
#: Elements of the (cells x embeddings) matrices of one band of quad rows: 2^24 floats = 64 MiB
#: (a 16x21 map against 18,380 embeddings fits in one band).
BAND_ELEMENTS = 1 << 24


class VoteBank:
    """The embedding bank prepared for voting: L2-normalised rows, labels as compact indices."""

    def __init__(self, embeddings: torch.Tensor, labels: torch.Tensor, device: torch.device):
        self.embeddings = F.normalize(embeddings.to(device=device, dtype=torch.float32), dim=1, eps=EPS)
        # Sorted unique labels: argmax over them resolves ties to the smallest label.
        self.values, self.index = torch.unique(labels.to(device), return_inverse=True)
        # One zero row more: vote_map's padding slot.
        self.padded = torch.cat([self.embeddings, self.embeddings.new_zeros(1, self.embeddings.shape[1])])
        if self.embeddings.device.type == "cpu":
            retain_freed_memory()

    def __len__(self) -> int:
        return self.embeddings.shape[0]

    def vote(self, top: torch.Tensor, which: torch.Tensor, temperature: float) -> torch.Tensor:
        """Labels from each row's top similarities (P, k) and their embedding indices (P, k)."""
        # Relative to the best match: same ratios as exp(s/T), but never overflows for small T.
        weights = torch.exp((top - top[:, :1]) / temperature)
        labels = self.index[which]  # compact: the order of self.values
        # Each neighbour's label total, summed in neighbour order (cumsum is sequential) as a
        # per-label accumulator would: adding exact zeros for the other labels changes no bit.
        same = labels[:, :, None] == labels[:, None, :]
        totals = (weights[:, None, :] * same).cumsum(dim=2)[:, :, -1]
        # the heaviest label; among equally heavy ones the smallest
        heaviest = totals == totals.max(dim=1, keepdim=True).values
        return self.values[labels.masked_fill(~heaviest, len(self.values)).min(dim=1).values]


def knn_vote(features: torch.Tensor, bank: VoteBank, k: int, temperature: float,
             chunk_elements: int = CHUNK_ELEMENTS) -> torch.Tensor:
    """Label of each row of ``features`` (P, C): its top-k embeddings by cosine similarity
    vote for their labels with weight exp(similarity / T); the heaviest label wins (ties: smallest).
    """
    k = min(k, len(bank))
    rows = max(1, chunk_elements // len(bank))
    winners = torch.empty(features.shape[0], dtype=torch.long, device=features.device)
    for start in range(0, features.shape[0], rows):
        chunk = F.normalize(features[start:start + rows].float(), dim=1, eps=EPS)
        similarity = chunk @ bank.embeddings.t()  # the one matrix product of this chunk
        top, which = similarity.topk(k, dim=1)
        winners[start:start + rows] = bank.vote(top, which, temperature)
    return winners


def retain_freed_memory() -> None:
    """Keep freed large blocks in the process (glibc only; elsewhere a no-op).

    vote_map allocates and frees matrices of tens of MiB per image; glibc returns such blocks to
    the system at once, so each new one page-faults again (~15% of vote_map's time on CPU).
    """
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is not None:
        mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: blocks below 1 GiB come from the heap...
        mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: ...which keeps up to 1 GiB free at its top


def vote_map(features: torch.Tensor, bank: VoteBank, k: int, temperature: float, scale: int = 4,
             chunk_elements: int = CHUNK_ELEMENTS) -> torch.Tensor:
    """Labels (scale*h, scale*w) of a feature map (C, h, w) upsampled ``scale`` x (bilinear):
    the same vote as :func:`knn_vote` on the upsampled pixels, computed at feature resolution.
    """
    channels, height, width = features.shape
    device = features.device
    size = (height * scale, width * scale)
    features = features.float()
    upsampled = F.interpolate(features[None], size=size, mode="bilinear", align_corners=False)[0]
    norms = upsampled.norm(dim=0).clamp_min(EPS).reshape(-1, 1)
    k = min(k, len(bank))
    if len(bank) < PRUNE_MIN_EMBEDDINGS:
        top, which = _upsampled_top(features, bank, k, scale, chunk_elements)
        return bank.vote(top / norms, which, temperature).reshape(size)
    plan = plan_for(height, width, scale, device)
    slots = plan.weights.shape[0]
    top = torch.empty(height * width * slots, k, device=device)
    which = torch.empty(height * width * slots, k, dtype=torch.long, device=device)
    cells = features.reshape(channels, -1).t()
    # rows of quads at a time, so that the (cells x embeddings) matrices stay within BAND_ELEMENTS
    band = max(1, BAND_ELEMENTS // (width * (len(bank) + 1)) - 1)
    for first in range(0, height, band):
        rows = min(band, height - first)
        neighbours = cells[first * width:min(first + rows + 1, height) * width]
        for quads, slot_ids, best, chosen in _band_top(neighbours, first * width, rows * width, width,
                                                       plan, bank, k, chunk_elements):
            index = (quads[:, None] * slots + slot_ids[None, :]).flatten()
            top.index_copy_(0, index, best.reshape(-1, k))
            which.index_copy_(0, index, chosen.reshape(-1, k))
    top, which = top.index_select(0, plan.source), which.index_select(0, plan.source)
    # dot products with unit embeddings / the upsampled pixel's norm = cosine similarities
    return bank.vote(top / norms, which, temperature).reshape(size)


def _upsampled_top(features: torch.Tensor, bank: VoteBank, k: int, scale: int,
                   chunk_elements: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Each upsampled pixel's top k dot products (P, k) and embedding ids, chunk by chunk of
    embeddings: dots at feature resolution, upsampled, ranked, merged with the best so far."""
    channels, height, width = features.shape
    size = (height * scale, width * scale)
    pixels = size[0] * size[1]
    flat = features.reshape(channels, -1).t()  # (h*w, C)
    step = max(k, chunk_elements // pixels)
    best_top = best_which = None
    for start in range(0, len(bank), step):
        # (h*w, m) is (1, m, h, w) in channels-last layout: upsampling yields (pixels, m) rows
        dots = flat @ bank.embeddings[start:start + step].t()
        dots = dots.reshape(1, height, width, -1).permute(0, 3, 1, 2)
        dots = F.interpolate(dots.contiguous(memory_format=torch.channels_last), size=size,
                             mode="bilinear", align_corners=False)
        dots = dots.permute(0, 2, 3, 1).reshape(pixels, -1)
        top, which = dots.topk(min(k, dots.shape[1]), dim=1)
        which += start
        if best_top is not None:  # merge with the best k so far
            top, pick = torch.cat([best_top, top], dim=1).topk(k, dim=1)
            which = torch.cat([best_which, which], dim=1).gather(1, pick)
        best_top, best_which = top, which
    return best_top, best_which


def _band_top(cells: torch.Tensor, offset: int, count: int, width: int, plan: Plan, bank: VoteBank,
              k: int, chunk_elements: int) -> Iterator[Tuple[torch.Tensor, ...]]:
    """Yield (quads, slots, top k dot products, their embedding ids) for the quads ``offset`` to
    ``offset + count``, whose cells are ``cells`` (the first is cell ``offset``)."""
    # Column E (a zero embedding) becomes the padding slot, far below every real dot product.
    dots = cells @ bank.padded.t()  # (cells, E+1)
    slack = BOUND_SLACK * float(torch.stack(torch.aminmax(dots)).abs().max())
    dots[:, -1] = SENTINEL
    corners = plan.corners[offset:offset + count] - offset
    bins = [(group, group.quads[(group.quads >= offset) & (group.quads < offset + count)] - offset)
            for group in plan.bins]
    bins = [(group, quads) for group, quads in bins if len(quads)]
    bounds = lower_bounds(dots, corners, plan.weights, bins, k, len(bank)) - slack
    # Upper bounds of a quad's blends: the largest of its 4 cells' dot products; for a bin whose
    # slots give each cell at least f, also f * (their sum) + (1 - 4 f) * (their max).
    grid = dots.view(-1, width, dots.shape[1])
    ceiling = quad_reduce(grid, count // width, torch.maximum)
    floors = sorted({group.floor for group, _ in bins} - {0.0})
    total = quad_reduce(grid, count // width, torch.add) if floors else None
    # (kept divided by 1 - 4 f, as are the bounds compared with it: one pass, in place)
    uppers = {0.0: ceiling}
    for floor in floors:
        uppers[floor] = torch.add(ceiling, total, alpha=floor / (1 - 4 * floor),
                                  out=total if floor == floors[-1] else None)
    scale = torch.tensor([1 / (1 - 4 * group.floor) for group, _ in bins], device=dots.device)
    bounds *= scale
    alive = None
    for floor, upper in uppers.items():
        least = bounds[:, [b for b, (group, _) in enumerate(bins) if group.floor == floor]]
        passes = upper >= least.amin(dim=1, keepdim=True)
        alive = passes if alive is None else alive.logical_or_(passes)
    quad, member = alive.nonzero(as_tuple=True)
    del alive
    flat = quad * dots.shape[1] + member
    scores = {floor: take(upper, flat) for floor, upper in uppers.items()}
    del uppers, ceiling, total
    everyone = torch.arange(count + 1, device=dots.device)
    for b, (group, quads) in enumerate(bins):
        kept = (scores[group.floor] >= bounds[:, b].index_select(0, quad)).nonzero().flatten()
        # quad ids come sorted (nonzero is row-major): each quad's survivors are one run
        starts = torch.searchsorted(quad.index_select(0, kept), everyone)
        survivors = Survivors(member.index_select(0, kept), starts[:-1], starts.diff(), len(bank))
        for chunk, best, chosen in rank_bin(dots, corners, plan.weights, survivors, group.slots,
                                            quads, k, chunk_elements):
            yield chunk + offset, group.slots, best, chosen
