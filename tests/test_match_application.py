"""Applying a match inside the kernel (per run) gives exactly the counts of mapping every pixel."""

from __future__ import annotations

import numpy as np
import pytest

from imagenets.evaluation.engine.kernel import joint_table
from imagenets.evaluation.engine.matchfile import is_one_to_one, match_lut
from imagenets.evaluation.engine.metrics import SegmentationMetrics


def blobs(rng, h, w, ids):
    out = np.full((h, w), ids[0], dtype=np.int32)
    for _ in range(6):
        y, x = rng.integers(0, h), rng.integers(0, w)
        r = rng.integers(2, max(3, min(h, w) // 2))
        yy, xx = np.ogrid[:h, :w]
        out[(yy - y) ** 2 + (xx - x) ** 2 < r * r] = rng.choice(ids)
    return out


@pytest.mark.parametrize("seed", range(20))
def test_one_to_one_match_per_run_equals_per_pixel(seed):
    rng = np.random.default_rng(seed)
    k = 12
    h, w = rng.integers(5, 90, size=2)
    gt = blobs(rng, h, w, [0, 1, 3, 7, 12, 1000])
    pred = blobs(rng, h, w, [0, 2, 5, 9, 11, 40, 41])     # 40, 41: not covered by the match
    perm = rng.permutation(k) + 1
    mapping = {0: 0, **{p + 1: int(perm[p]) for p in range(k)}}
    assert is_one_to_one(mapping)
    lut = match_lut(mapping)
    a, b = SegmentationMetrics(k), SegmentationMetrics(k)
    a.update(gt, lut.take(pred))
    b.update(gt, pred, pred_lut=lut)
    assert np.array_equal(a.counts, b.counts)
    assert (a.correct, a.f_sum, a.out_of_range_pixels) == (b.correct, b.f_sum, b.out_of_range_pixels)
    direct = joint_table(gt, lut.take(pred), k)
    assert direct.out_of_range == joint_table(gt, pred, k, pred_lut=lut).out_of_range


def test_many_to_one_match_is_not_one_to_one():
    assert not is_one_to_one({0: 0, 1: 3, 2: 3})
    assert is_one_to_one({0: 0, 1: 3, 2: 4})
