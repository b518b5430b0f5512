"""Evaluating through a match against the spec's text: raw-id boundaries (the square), then relabel.

Many-to-one and over-clustering matches (more clusters than classes, clusters mapped to "other", ids the
match does not cover), checked against ``SegmentationMetrics`` with the match as the kernel's table.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np
import pytest

from imagenets.evaluation.engine.matchfile import Match
from imagenets.evaluation.engine.metrics import SegmentationMetrics

from helpers import IGNORE, Reference, assert_same, blobs, spec_boundary

#: What an uncovered id becomes: outside 0..K for every K here.
OUT = 10 ** 6


def square_boundary(ids: np.ndarray) -> np.ndarray:
    """``id + 1`` where the (2d+1)^2 square around a pixel holds another id or leaves the image, else 0."""
    h, w = ids.shape
    d = max(1, round(0.03 * (h * h + w * w) ** 0.5))
    padded = np.full((h + 2 * d, w + 2 * d), -1, dtype=np.int64)  # -1: outside, unlike every id
    padded[d:d + h, d:d + w] = ids
    differs = np.zeros((h, w), dtype=bool)
    for dy in range(2 * d + 1):
        for dx in range(2 * d + 1):
            differs |= padded[dy:dy + h, dx:dx + w] != ids
    return np.where(differs, ids + 1, 0)


def spec_add(ref: Reference, gt: np.ndarray, pred: np.ndarray, mapping: Dict[int, int]) -> None:
    """Steps 2-3 literally: both boundary maps on the raw ids, then ``v -> match[v]``, ``v + 1 -> match[v] + 1``."""
    gt, pred = gt.astype(np.int64), pred.astype(np.int64)
    gb, raw_pb = square_boundary(gt), square_boundary(pred)
    matched = np.full(pred.shape, OUT, dtype=np.int64)
    pb = np.zeros(pred.shape, dtype=np.int64)
    for v in np.unique(pred):
        target = mapping.get(int(v), OUT)
        matched[pred == v] = target
        pb[raw_pb == v + 1] = target + 1
    ref.add_maps(gt, matched, gb, pb)


def random_case(rng: np.random.Generator, k: int, n: int) -> Tuple[Dict[int, int], List[Tuple[np.ndarray, np.ndarray]]]:
    """A many-to-one match of clusters 1..n onto 0..k and images whose clusters mostly follow the GT."""
    mapping = {0: 0, **{p: int(rng.integers(0, k + 1)) for p in range(1, n + 1)}}
    for p in rng.choice(np.arange(1, n + 1), size=2, replace=False):
        del mapping[int(p)]                                        # uncovered clusters
    clusters_of = {g: [p for p, c in mapping.items() if c == g] or [0] for g in range(k + 1)}
    images = []
    for _ in range(12):
        h, w = (int(v) for v in rng.integers(2, 30, size=2))
        gt_ids = np.concatenate([[0], rng.choice(np.arange(1, k + 1), size=int(rng.integers(1, 4))), [IGNORE]])
        gt = blobs(rng, h, w, gt_ids)
        # Each GT pixel predicted by one of its class's clusters (two clusters meet inside objects) ...
        split = blobs(rng, h, w, np.arange(4))
        follow = np.zeros_like(gt)
        for g in np.unique(gt[gt != IGNORE]):
            options = np.array(clusters_of[int(g)])
            follow = np.where(gt == g, options[split % options.size], follow)
        # ... or, now and then, by any cluster, "0", or an id the match does not cover.
        noise = blobs(rng, h, w, rng.choice(np.arange(0, n + 3), size=int(rng.integers(1, 5))))
        images.append((gt, np.where(rng.random((h, w)) < 0.75, follow, noise)))
    return mapping, images


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("k, n", [(3, 3), (3, 8), (5, 12), (2, 9)])
def test_match_through_the_kernel_equals_the_spec_text(seed, k, n):
    rng = np.random.default_rng(1000 * k + 10 * n + seed)
    mapping, images = random_case(rng, k, n)
    ref, ours = Reference(k), SegmentationMetrics(k)
    match = Match.from_mapping(mapping)
    for gt, pred in images:
        spec_add(ref, gt, pred, mapping)
        ours.update(preds=pred.astype(np.int32), target=gt.astype(np.int32), pred_lut=match.lut)
    assert_same(ref.result(), ours.compute())


def test_square_boundary_agrees_with_the_filter_reference():
    rng = np.random.default_rng(4)
    for _ in range(20):
        h, w = (int(v) for v in rng.integers(1, 40, size=2))
        ids = blobs(rng, h, w, np.array([0, 1, 2, IGNORE]))
        np.testing.assert_array_equal(square_boundary(ids), spec_boundary(ids))


def test_matching_first_would_give_other_boundary_numbers():
    """The revised spec's point: with a many-to-one match the seam between two clusters stays a boundary."""
    gt = np.zeros((20, 30), dtype=np.int64)
    gt[4:16, 5:25] = 1
    pred = gt.copy()
    pred[4:16, 15:25] = 2                                          # the object split in two clusters
    mapping = {0: 0, 1: 1, 2: 1}
    seams, merged = Reference(1), Reference(1)
    spec_add(seams, gt, pred, mapping)
    merged.add(gt, np.where(pred == 2, 1, pred))
    ours = SegmentationMetrics(1)
    ours.update(preds=pred.astype(np.int32), target=gt.astype(np.int32),
                pred_lut=Match.from_mapping(mapping).lut)
    assert_same(seams.result(), ours.compute())
    assert ours.compute()["mIoU"] == pytest.approx(merged.result()["mIoU"])
    assert ours.compute()["mBIoU"] < merged.result()["mBIoU"] - 1.0
