"""``SegmentationMetrics`` against a plain, slow reference written from spec/evaluation.md (``helpers.Reference``)."""

from __future__ import annotations

import math
from typing import List, Tuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagenets.evaluation.engine.metrics import SegmentationMetrics

from helpers import BUCKETS, IGNORE, Reference, assert_same, blobs

pytest.importorskip("scipy.ndimage")  # the reference's boundary maps


# ---- comparison -----------------------------------------------------------------------------

def run_both(k: int, images: List[Tuple[np.ndarray, np.ndarray]], split: int = 0):
    """Reference result and ours (optionally through two accumulators merged, as workers do)."""
    ref = Reference(k)
    first, second = SegmentationMetrics(k), SegmentationMetrics(k)
    for index, (gt, pred) in enumerate(images):
        ref.add(gt, pred)
        (second if split and index >= split else first).update(preds=pred.astype(np.int32),
                                                                target=gt.astype(np.int32))
    return ref.result(), first.merge(second).compute()


def random_pair(rng: np.random.Generator, k: int) -> Tuple[np.ndarray, np.ndarray]:
    h, w = (int(v) for v in rng.integers(1, 28, size=2))
    gt_ids = np.concatenate([[0], rng.choice(np.arange(1, k + 1), size=int(rng.integers(0, 4))), [IGNORE]])
    gt = blobs(rng, h, w, gt_ids)
    pred_ids = np.concatenate([np.arange(0, k + 1), [k + 1, 999, IGNORE, 65535]])
    pred = blobs(rng, h, w, rng.choice(pred_ids, size=int(rng.integers(1, 6))))
    if rng.random() < 0.5:  # predictions that mostly follow the GT, so IoUs are not all tiny
        pred = np.where(rng.random((h, w)) < 0.8, np.where(gt == IGNORE, 0, gt), pred)
    return gt, pred


@pytest.mark.parametrize("seed", range(6))
def test_random_images_equal_the_reference(seed):
    rng = np.random.default_rng(seed)
    k = 5
    images = [random_pair(rng, k) for _ in range(25)]
    assert_same(*run_both(k, images, split=10))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.integers(1, 4))
def test_any_small_set_equals_the_reference(seed, k):
    rng = np.random.default_rng(seed)
    images = [random_pair(rng, k) for _ in range(int(rng.integers(1, 5)))]
    assert_same(*run_both(k, images))


def test_empty_image_counts_zero_in_acc_and_fmeasure():
    k = 3
    all_ignore = (np.full((6, 7), IGNORE), np.full((6, 7), 2))
    good = (np.full((6, 7), 2), np.full((6, 7), 2))
    expected, got = run_both(k, [all_ignore, good])
    assert_same(expected, got)
    assert got["Acc"] == pytest.approx(50.0) and got["FMeasure"] == pytest.approx(50.0)


def test_only_empty_images_give_zeros_not_errors():
    expected, got = run_both(2, [(np.full((3, 3), IGNORE), np.zeros((3, 3)))])
    assert_same(expected, got)
    assert got["mIoU"] == 0.0 and got["Acc"] == 0.0 and math.isnan(got["S"])


def test_acc_ties_go_to_the_smallest_id():
    k = 4
    pred = np.zeros((4, 4), dtype=np.int64)
    pred[:2, :2], pred[2:, 2:] = 3, 2                    # 2 and 3 tie on 4 pixels each
    gt_has_2 = np.where(pred == 2, 2, 0)
    gt_has_3 = np.where(pred == 3, 3, 0)
    for gt, correct in ((gt_has_2, 100.0), (gt_has_3, 0.0)):
        expected, got = run_both(k, [(gt, pred)])
        assert_same(expected, got)
        assert got["Acc"] == correct


def test_no_prediction_means_class_one_and_not_correct():
    k = 3
    gt = np.ones((5, 5), dtype=np.int64)                # GT is class 1 everywhere
    for pred in (np.zeros((5, 5)), np.full((5, 5), 77)):  # nothing in 1..K predicted
        expected, got = run_both(k, [(gt, pred)])
        assert_same(expected, got)
        assert got["Acc"] == 0.0


def test_prediction_hidden_under_ignore_does_not_count_for_acc():
    gt = np.full((4, 4), 1, dtype=np.int64)
    gt[:, :3] = IGNORE
    pred = np.full((4, 4), 2)
    pred[:, 3] = 1                                       # class 2 dominates only under ignore
    expected, got = run_both(2, [(gt, pred)])
    assert_same(expected, got)
    assert got["Acc"] == 100.0


@pytest.mark.parametrize("class_pixels, total, bucket", [
    (5, 100, "S"), (6, 100, "MS"), (25, 100, "MS"), (26, 100, "ML"), (50, 100, "ML"), (51, 100, "L"),
    (9, 200, "S"),     # 4.5 % -> ceil 5
    (11, 200, "MS"),   # 5.5 % -> 6
    (49, 196, "MS"),   # exactly 25 %
    (1, 20, "S"), (10, 20, "ML"),
])
def test_size_buckets_on_their_thresholds(class_pixels, total, bucket):
    k = 2
    gt = np.zeros(total, dtype=np.int64)
    gt[:class_pixels] = 1
    gt = gt.reshape(-1, 10 if total % 10 == 0 else 14)
    pred = np.roll(gt, 1, axis=1)
    ignore_row = np.full((1, gt.shape[1]), IGNORE)      # ignored pixels are not part of N
    gt, pred = np.vstack([gt, ignore_row]), np.vstack([pred, ignore_row])
    expected, got = run_both(k, [(gt, pred)])
    assert_same(expected, got)
    for other in BUCKETS:
        assert math.isnan(got[other]) == (other != bucket), other


def test_out_of_range_ids_count_as_foreground_only():
    gt = np.array([[1, 1, 0, 0]])
    pred = np.array([[1, 9, 9, 0]])                      # 9 > K = 2
    metrics = SegmentationMetrics(2)
    metrics.update(preds=pred.astype(np.int32), target=gt.astype(np.int32))
    expected, got = run_both(2, [(gt, pred)])
    assert_same(expected, got)
    assert metrics.out_of_range_pixels == 2
    assert got["IoUs"][1] == pytest.approx(50.0)         # I=1, G=2, P=1
    # Foreground: t=2, p=3, tp=2 -> R=1, P=2/3.
    assert got["FMeasure"] == pytest.approx(100 * 1.3 * (2 / 3) / (0.3 * 2 / 3 + 1), rel=1e-12)
