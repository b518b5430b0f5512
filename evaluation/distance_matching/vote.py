"""Distance matching, step 2's core: weighted k-nearest-embedding vote per pixel, in chunks.

:func:`vote_map` serves feature maps upsampled 4x (bilinear). Upsampling is linear, so it takes
the dot products at feature resolution (16x fewer operations) and upsamples those; dividing by
each upsampled pixel's feature norm then gives its cosine similarities, as :func:`knn_vote`
computes them pixel by pixel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Elements of one chunk's similarity matrix (pixels x embeddings): 2^22 floats = 16 MiB
#: (larger chunks fall out of the CPU caches and run slower; see bench/).
CHUNK_ELEMENTS = 1 << 22
#: Norm floor, as F.normalize uses: an all-zero feature gets similarities 0, not NaN.
EPS = 1e-12


class VoteBank:
    """The embedding bank prepared for voting: L2-normalised rows, labels as compact indices."""

    def __init__(self, embeddings: torch.Tensor, labels: torch.Tensor, device: torch.device):
        self.embeddings = F.normalize(embeddings.to(device=device, dtype=torch.float32), dim=1, eps=EPS)
        # Sorted unique labels: argmax over them resolves ties to the smallest label.
        self.values, self.index = torch.unique(labels.to(device), return_inverse=True)

    def __len__(self) -> int:
        return self.embeddings.shape[0]

    def vote(self, top: torch.Tensor, which: torch.Tensor, temperature: float) -> torch.Tensor:
        """Labels from each row's top similarities (P, k) and their embedding indices (P, k)."""
        # Relative to the best match: same ratios as exp(s/T), but never overflows for small T.
        weights = torch.exp((top - top[:, :1]) / temperature)
        votes = torch.zeros(top.shape[0], len(self.values), device=top.device)
        votes.scatter_add_(1, self.index[which], weights)
        return self.values[votes.argmax(dim=1)]


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


def vote_map(features: torch.Tensor, bank: VoteBank, k: int, temperature: float, scale: int = 4,
             chunk_elements: int = CHUNK_ELEMENTS) -> torch.Tensor:
    """Labels (scale*h, scale*w) of a feature map (C, h, w) upsampled ``scale`` x (bilinear):
    the same vote as :func:`knn_vote` on the upsampled pixels, computed at feature resolution.
    """
    channels, height, width = features.shape
    size = (height * scale, width * scale)
    pixels = size[0] * size[1]
    flat = features.float().reshape(channels, -1).t()  # (h*w, C)
    upsampled = F.interpolate(features.float()[None], size=size, mode="bilinear", align_corners=False)
    norms = upsampled[0].norm(dim=0).clamp_min(EPS).reshape(-1, 1)
    k = min(k, len(bank))
    step = max(k, chunk_elements // pixels)
    best_top = best_which = None
    for start in range(0, len(bank), step):
        # One matrix product per chunk of embeddings, at feature resolution: (h*w, m), which
        # is (1, m, h, w) in channels-last layout, so upsampling yields (pixels, m) rows directly.
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
    # dot products with unit embeddings / the upsampled pixel's norm = cosine similarities
    return bank.vote(best_top / norms, best_which, temperature).reshape(size)
