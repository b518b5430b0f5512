"""The counting kernel against slow references: boundary maps, boundary width, joint tables."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from imagenets.evaluation.engine.kernel import boundary_mask, boundary_width, joint_table

from helpers import brute_boundary, table_as_dict

ndimage = pytest.importorskip("scipy.ndimage")


def reference_boundary(ids: np.ndarray, d: int) -> np.ndarray:
    """scipy max/min filters over the (2d+1)^2 square; a square leaving the image is a boundary."""
    size = 2 * d + 1
    differs = (ndimage.maximum_filter(ids, size=size, mode="nearest") != ids) | \
              (ndimage.minimum_filter(ids, size=size, mode="nearest") != ids)
    h, w = ids.shape
    ys, xs = np.mgrid[0:h, 0:w]
    near_edge = (ys < d) | (ys >= h - d) | (xs < d) | (xs >= w - d)
    return differs | near_edge


def blob_mask(rng: np.random.Generator, h: int, w: int, n_ids: int) -> np.ndarray:
    """Blocky random regions (upsampled noise) so that boundaries are neither everywhere nor nowhere."""
    cell = int(rng.integers(1, 8))
    coarse = rng.integers(0, n_ids, size=(h // cell + 1, w // cell + 1))
    return np.kron(coarse, np.ones((cell, cell), dtype=np.int64))[:h, :w].astype(np.int32)


@pytest.mark.parametrize("seed", range(12))
def test_boundary_mask_equals_filter_reference_on_random_blobs(seed):
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(8, 90, size=2))
    ids = blob_mask(rng, h, w, n_ids=int(rng.integers(2, 6)))
    ids[ids == 3] = 1000  # ignore is an id like any other here
    for d in (1, 2, boundary_width(h, w), 5):
        np.testing.assert_array_equal(boundary_mask(ids, d), reference_boundary(ids, d), err_msg=f"d={d}")


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (2, 2), (3, 3), (3, 7), (5, 5), (6, 5), (7, 7),
                                   (8, 3), (4, 40), (40, 4)])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_boundary_mask_on_tiny_and_degenerate_shapes(shape, d):
    rng = np.random.default_rng(sum(shape) * 10 + d)
    ids = rng.integers(0, 2, size=shape).astype(np.int32)
    np.testing.assert_array_equal(boundary_mask(ids, d), brute_boundary(ids, d))
    single = np.full(shape, 7, dtype=np.int32)
    np.testing.assert_array_equal(boundary_mask(single, d), brute_boundary(single, d))


def test_single_colour_image_has_only_the_frame_as_boundary():
    ids = np.full((20, 30), 5, dtype=np.int32)
    got = boundary_mask(ids, 3)
    assert got[:3].all() and got[-3:].all() and got[:, :3].all() and got[:, -3:].all()
    assert not got[3:-3, 3:-3].any()


def test_sides_below_the_window_are_all_boundary():
    for side in range(1, 7):  # 2d = 6: no square fits inside
        assert boundary_mask(np.zeros((side, 50), dtype=np.int32), 3).all()
        assert boundary_mask(np.zeros((50, side), dtype=np.int32), 3).all()
    # At exactly 2d + 1 the middle line fits.
    got = boundary_mask(np.zeros((7, 50), dtype=np.int32), 3)
    assert not got[3, 3:-3].any() and got[[0, 1, 2, 4, 5, 6]].all()


@pytest.mark.parametrize("h, w, expected", [
    (30, 40, 2),     # 0.03 * 50 = 1.5 -> 2 (even)
    (42, 144, 4),    # 4.5 -> 4: half to even, not half up
    (90, 120, 4),    # 4.5 -> 4
    (98, 336, 10),   # 10.5 -> 10
    (150, 200, 8),   # 7.5 -> 8
    (126, 432, 14),  # 13.5 -> 14
    (1, 1, 1),       # round(0.04) = 0 -> at least 1
    (1, 16, 1),
    (500, 375, 19),  # 18.75
    (2048, 3072, 111),
])
def test_boundary_width_rounds_half_to_even(h, w, expected):
    assert boundary_width(h, w) == expected
    assert boundary_width(w, h) == expected


def brute_table(gt, pred, k, d):
    """{(gt id, pred id or 'out', gt boundary, pred boundary): count} by plain loops."""
    gb, pb = brute_boundary(gt, d), brute_boundary(pred, d)
    counts = {}
    for y, x in itertools.product(range(gt.shape[0]), range(gt.shape[1])):
        q = int(pred[y, x])
        key = (int(gt[y, x]), q if 0 <= q <= k else "out", int(gb[y, x]), int(pb[y, x]))
        counts[key] = counts.get(key, 0) + 1
    return counts


@pytest.mark.parametrize("seed", range(8))
def test_joint_table_equals_brute_force_counts(seed):
    rng = np.random.default_rng(100 + seed)
    k = 6
    h, w = (int(v) for v in rng.integers(1, 30, size=2))
    gt = blob_mask(rng, h, w, k + 1)
    gt[rng.random((h, w)) < 0.1] = 1000
    pred = blob_mask(rng, h, w, k + 3)                  # ids k+1, k+2 are out of range
    pred[rng.random((h, w)) < 0.05] = 65535
    table = joint_table(gt, pred, k)
    assert table_as_dict(table) == brute_table(gt, pred, k, boundary_width(h, w))
    assert table.out_of_range == int((pred > k).sum())
    assert list(table.gt_ids) == sorted(set(gt.ravel().tolist()))
    assert list(table.pred_ids) == sorted(v for v in set(pred.ravel().tolist()) if v <= k)


def test_joint_table_without_boundaries_puts_everything_in_the_first_cell():
    rng = np.random.default_rng(5)
    gt = blob_mask(rng, 17, 23, 4)
    pred = blob_mask(rng, 17, 23, 6)
    full = joint_table(gt, pred, 4)
    plain = joint_table(gt, pred, 4, with_boundaries=False)
    np.testing.assert_array_equal(plain.counts[:, :, 0, 0], full.counts.sum(axis=(2, 3)))
    assert plain.counts[:, :, 1, :].sum() == 0 and plain.counts[:, :, :, 1].sum() == 0


@pytest.mark.parametrize("shape", [(1, 1), (1, 13), (13, 1), (2, 3), (5, 5)])
def test_joint_table_on_degenerate_shapes(shape):
    rng = np.random.default_rng(shape[0] * 31 + shape[1])
    gt = rng.choice([0, 2, 1000], size=shape).astype(np.int32)
    pred = rng.choice([0, 1, 2, 9], size=shape).astype(np.int32)
    table = joint_table(gt, pred, 3)
    assert table_as_dict(table) == brute_table(gt, pred, 3, boundary_width(*shape))


def test_joint_table_on_pure_noise_where_every_pixel_is_a_run():
    rng = np.random.default_rng(9)
    gt = rng.integers(0, 6, size=(23, 31)).astype(np.int32)
    pred = rng.integers(0, 4000, size=(23, 31)).astype(np.int32)  # mostly out of range
    table = joint_table(gt, pred, 5)
    assert table_as_dict(table) == brute_table(gt, pred, 5, boundary_width(23, 31))
    assert table.counts.dtype == np.int64 and table.counts.sum() == gt.size
