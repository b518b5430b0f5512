"""The kernel's lookup table (``joint_table(pred_lut=Match.lut)``): raw-id boundaries, then every run relabelled."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from imagenets.evaluation.engine.kernel import boundary_width, joint_table
from imagenets.evaluation.engine.matchfile import UNCOVERED, Match
from imagenets.evaluation.engine.metrics import SegmentationMetrics

from helpers import brute_boundary, table_as_dict


def blobs(rng, h, w, ids):
    out = np.full((h, w), ids[0], dtype=np.int32)
    for _ in range(6):
        y, x = rng.integers(0, h), rng.integers(0, w)
        r = rng.integers(2, max(3, min(h, w) // 2))
        yy, xx = np.ogrid[:h, :w]
        out[(yy - y) ** 2 + (xx - x) ** 2 < r * r] = rng.choice(ids)
    return out


def brute_matched_table(gt, pred, mapping, k):
    """{(gt id, class or 'out', gt boundary, raw prediction boundary): count} by plain loops."""
    d = boundary_width(*gt.shape)
    gb, pb = brute_boundary(gt, d), brute_boundary(pred, d)
    counts = {}
    for y, x in itertools.product(range(gt.shape[0]), range(gt.shape[1])):
        q = mapping.get(int(pred[y, x]), "out")
        key = (int(gt[y, x]), q, int(gb[y, x]), int(pb[y, x]))
        counts[key] = counts.get(key, 0) + 1
    return counts


@pytest.mark.parametrize("seed", range(8))
def test_many_to_one_lut_keeps_the_raw_ids_boundaries(seed):
    rng = np.random.default_rng(seed)
    k = 4
    h, w = (int(v) for v in rng.integers(3, 26, size=2))
    gt = blobs(rng, h, w, [0, 1, 3, 1000])
    pred = blobs(rng, h, w, [0, 1, 2, 5, 6, 9, 40])             # 40: not covered
    mapping = {0: 0, 1: 1, 2: 1, 5: 3, 6: 0, 9: 3}              # many-to-one, a cluster to "other"
    match = Match.from_mapping(mapping)
    table = joint_table(gt, pred, k, pred_lut=match.lut)
    assert table_as_dict(table) == brute_matched_table(gt, pred, mapping, k)
    assert table.out_of_range == int((pred == 40).sum())


def test_seam_between_two_clusters_of_one_class_stays_a_boundary():
    gt = np.ones((9, 12), dtype=np.int32)
    pred = np.ones((9, 12), dtype=np.int32)
    pred[:, 6:] = 2                                              # two clusters, both class 1
    match = Match.from_mapping({0: 0, 1: 1, 2: 1})
    matched = joint_table(gt, pred, 1, pred_lut=match.lut)
    merged = joint_table(gt, match.relabel(pred), 1)
    assert matched.counts[..., 1].sum() > merged.counts[..., 1].sum()   # the seam's band
    np.testing.assert_array_equal(matched.counts.sum(axis=3), merged.counts.sum(axis=3))


@pytest.mark.parametrize("seed", range(10))
def test_one_to_one_lut_equals_relabelling_every_pixel_first(seed):
    rng = np.random.default_rng(seed)
    k = 12
    h, w = rng.integers(5, 90, size=2)
    gt = blobs(rng, h, w, [0, 1, 3, 7, 12, 1000])
    pred = blobs(rng, h, w, [0, 2, 5, 9, 11, 40, 41])     # 40, 41: not covered by the match
    perm = rng.permutation(k) + 1
    match = Match.from_mapping({0: 0, **{p + 1: int(perm[p]) for p in range(k)}})
    assert match.one_to_one
    a, b = SegmentationMetrics(k), SegmentationMetrics(k)
    a.update(preds=match.relabel(pred), target=gt)
    b.update(preds=pred, target=gt, pred_lut=match.lut)
    assert np.array_equal(a.counts, b.counts)
    assert (a.correct, a.f_sum, a.out_of_range_pixels) == (b.correct, b.f_sum, b.out_of_range_pixels)


def test_match_object_tells_one_to_one_and_coverage():
    assert not Match.from_mapping({0: 0, 1: 3, 2: 3}).one_to_one
    assert Match.from_mapping({0: 0, 1: 3, 2: 4}).one_to_one
    match = Match.from_mapping({0: 0, 7: 2})
    assert match.covered[[0, 7]].all() and match.covered.sum() == 2
    assert match.relabel(np.array([[7, 8]])).tolist() == [[2, UNCOVERED]]
