"""Opt-in analysis of an evaluation, as a library: per-image counts, bootstrap, paired comparison,
confusion matrix, non-benchmark metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from imagenets.demo.synthetic import synthetic_pair
from imagenets.evaluation.engine.bootstrap import (METHODS, Draws, Resampler, bootstrap_intervals, interval,
                                                   multiplicities, p_value, paired_bootstrap)
from imagenets.evaluation.engine.confusion import (PixelConfusion, best_relabelled_miou, looks_like_clusters,
                                                   miou_of)
from imagenets.evaluation.engine.kernel import joint_table
from imagenets.evaluation.engine.metrics import SUMMARY_KEYS, SegmentationMetrics, extra_metrics

K = 50
CLASSES = 3  # few classes over many images: every resample keeps them all


def accumulate(images: int = 60, seed: int = 1, permutation=None):
    """Metrics (with per-image counts) and pixel confusion of synthetic pairs of classes 1..CLASSES."""
    metrics, confusion = SegmentationMetrics(K, keep_images=True), PixelConfusion(K)
    for index in range(images):
        gt, pred = synthetic_pair(seed, index, 1 + index % CLASSES, K, (16, 40), 0.7, 0.02)
        if index % 9 == 0:
            gt[:4] = 1000  # some ignore
        if permutation is not None:
            pred = np.where(pred <= K, permutation[np.minimum(pred, K)], pred)
        table = joint_table(gt, pred, K)
        metrics.update_table(table)
        confusion.update_table(table)
    return metrics, confusion


@pytest.fixture(scope="module")
def run():
    return accumulate()


def test_image_counts_add_up_to_the_accumulators(run):
    metrics, _ = run
    counts = metrics.image_counts()
    totals = np.zeros(int(np.prod(counts.shape)), np.int64)
    np.add.at(totals, counts.keys, counts.values)
    assert (totals.reshape(counts.shape) == metrics.counts).all()
    assert counts.images == metrics.images and counts.correct.sum() == metrics.correct
    assert math.isclose(counts.f.sum(), metrics.f_sum)


def test_a_batch_of_tables_adds_exactly_what_one_by_one_does():
    one_by_one, batched = SegmentationMetrics(K, keep_images=True), SegmentationMetrics(K, keep_images=True)
    tables = []
    for index in range(23):
        gt, pred = synthetic_pair(4, index, 1 + index % CLASSES, K, (8, 30), 0.6, 0.05)
        gt[: index % 5] = 1000
        if index == 7:
            gt[:] = 1000  # nothing left: counts nowhere
        tables.append(joint_table(gt, pred, K))
        one_by_one.update_table(tables[-1])
    batched.update_tables(tables[:10])
    batched.update_tables(tables[10:])
    assert (batched.counts == one_by_one.counts).all() and batched.f_sum == one_by_one.f_sum
    assert (batched.images, batched.correct) == (one_by_one.images, one_by_one.correct)
    a, b = batched.image_counts(), one_by_one.image_counts()
    for name in ("indptr", "keys", "values", "correct", "f"):
        assert (getattr(a, name) == getattr(b, name)).all(), name


def test_every_image_once_gives_the_plain_result(run):
    metrics, _ = run
    point, plain = Resampler(metrics.image_counts()).point(), metrics.compute()
    for key in SUMMARY_KEYS:
        if key == "FMeasure":  # a sum of floats in another order
            assert point[key] == pytest.approx(plain[key], abs=1e-9)
        elif math.isnan(plain[key]):
            assert math.isnan(point[key])
        else:
            assert point[key] == plain[key]


def test_multiplicities_draw_every_resample_from_all_images():
    blocks = list(multiplicities(7, 600, seed=3))
    weights = np.concatenate(blocks)
    assert weights.shape == (600, 7) and (weights.sum(axis=1) == 7).all()
    assert len(blocks) > 1  # several blocks, still one stream per seed
    assert (np.concatenate(list(multiplicities(7, 600, seed=3))) == weights).all()


def test_bootstrap_intervals_contain_the_point_estimate_and_repeat_per_seed(run):
    metrics, _ = run
    counts, plain = metrics.image_counts(), metrics.compute()
    first = bootstrap_intervals(counts, 300, seed=0)
    assert first == bootstrap_intervals(counts, 300, seed=0)
    assert first != bootstrap_intervals(counts, 300, seed=1)
    for key in SUMMARY_KEYS:
        lo, hi = first[key]
        if math.isnan(plain[key]):
            continue
        assert lo <= plain[key] <= hi, (key, lo, plain[key], hi)
        assert hi - lo > 0 or key == "FMeasure" and plain[key] == 0


def test_a_run_compared_with_itself_differs_by_zero_with_p_one(run):
    metrics, _ = run
    counts = metrics.image_counts()
    result = paired_bootstrap(counts, counts, 200, seed=5)
    for key in SUMMARY_KEYS:
        if math.isnan(result[key]["a"]):
            continue
        assert result[key]["difference"] == 0.0 and result[key]["ci95"] == [0.0, 0.0]
        assert result[key]["p"] == 1.0


def test_a_worse_run_is_told_apart(run):
    metrics, _ = run
    worse, _ = accumulate(permutation=np.concatenate([[0], np.roll(np.arange(1, K + 1), 1)]))
    result = paired_bootstrap(metrics.image_counts(), worse.image_counts(), 400, seed=0)
    assert result["mIoU"]["difference"] < 0 and result["mIoU"]["ci95"][1] < 0
    assert result["mIoU"]["p"] <= 2 / 401  # hardly any resample's |t| reaches the observed one


def test_influence_is_the_derivative_of_each_metric_with_respect_to_an_images_weight(run):
    metrics, _ = run
    resampler = Resampler(metrics.image_counts())
    ones = np.ones((1, metrics.images))
    for key in ("mIoU", "mBIoU", "S", "MS", "BS"):
        effects = resampler.influence(key, ones, resampler.totals(ones))[:, 0]
        for image in (0, 13, 41):
            nudged = ones.copy()
            nudged[0, image] += 1e-6
            slope = (resampler.summaries(nudged)[key][0] - resampler.summaries(ones)[key][0]) / 1e-6
            assert effects[image] == pytest.approx(slope, rel=1e-4, abs=1e-6), (key, image)


def test_p_values_invert_the_interval_of_their_method():
    rng = np.random.default_rng(0)
    values = rng.normal(1.0, 1.0, 2000)
    errors = np.abs(rng.normal(1.0, 0.1, 2000))
    for method in METHODS:
        for point in (0.5, 1.9, 2.5, 4.0):
            extra = dict(influence_values=rng.normal(size=50), errors=errors, point_error=1.0)
            lo, hi = interval(values, point, method, **extra)
            p = p_value(values, point, method, **extra)
            assert (p < 0.05) == (not lo <= 0 <= hi) or abs(p - 0.05) < 0.002, (method, point, p, lo, hi)


def test_studentized_interval_of_a_constant_resample_falls_back_to_the_point():
    assert interval(np.full(50, 3.0), 3.0, "studentized", errors=np.zeros(50), point_error=0.0) == [3.0, 3.0]
    assert p_value(np.zeros(50), 0.0, "studentized", errors=np.zeros(50), point_error=0.0) == 1.0
    assert p_value(np.array([math.nan]), 0.0) is None


def test_the_default_interval_holds_the_point_estimate(run):
    metrics, _ = run
    draws = Draws(metrics.image_counts(), None, 300, 0, with_errors=True)
    for key in ("mIoU", "FMeasure"):
        lo, hi = draws.interval(key)
        assert lo < draws.point[key] < hi, key


def test_reordered_counts_keep_each_image_its_rows(run):
    metrics, _ = run
    counts = metrics.image_counts()
    order = np.random.default_rng(0).permutation(counts.images)
    moved = counts.reordered(order)
    for j in (0, 7, counts.images - 1):
        i = order[j]
        assert (moved.keys[moved.indptr[j]:moved.indptr[j + 1]] == counts.keys[counts.indptr[i]:counts.indptr[i + 1]]).all()
        assert moved.correct[j] == counts.correct[i] and moved.f[j] == counts.f[i]
    assert Resampler(moved).point()["mIoU"] == Resampler(counts).point()["mIoU"]


def test_confusion_sums_to_the_kept_pixels_and_gives_the_benchmark_miou(run):
    metrics, confusion = run
    matrix = confusion.matrix()
    assert matrix.shape == (K + 1, K + 2) and matrix.dtype == np.int64
    assert matrix.sum() == metrics.counts[0, 2].sum()          # every non-ignored pixel (stat G)
    assert (matrix.sum(axis=1) == metrics.counts[0, 2]).all()
    assert (matrix[:, :-1].sum(axis=0) == metrics.counts[0, 1]).all()
    assert miou_of(matrix) == pytest.approx(metrics.compute()["mIoU"], abs=1e-12)


def test_cluster_ids_are_recognised_and_class_ids_are_not(run):
    metrics, confusion = run
    plain = metrics.compute()["mIoU"]
    assert not looks_like_clusters(plain, best_relabelled_miou(confusion.matrix()))
    shuffled = np.concatenate([[0], np.random.default_rng(2).permutation(K) + 1])
    clusters, cluster_confusion = accumulate(permutation=shuffled)
    estimate = best_relabelled_miou(cluster_confusion.matrix())
    assert estimate >= plain - 1.0  # about what the class ids themselves give (or better: stray ids moved away)
    assert looks_like_clusters(clusters.compute()["mIoU"], estimate)


def test_extra_metrics_match_a_hand_computation():
    gt = np.array([[0, 0, 1, 1], [0, 2, 2, 1000]], dtype=np.int32)
    pred = np.array([[0, 1, 1, 1], [0, 2, 0, 7]], dtype=np.int32)
    metrics = SegmentationMetrics(2)
    metrics.update(preds=pred, target=gt)
    extra = extra_metrics(metrics.counts)
    # 7 kept pixels, right: (0,0) (0,2) (0,3) (1,0) (1,1) = 5.  Per class I/G: 0: 2/3, 1: 2/2, 2: 1/2.
    assert extra["pixel_accuracy"] == pytest.approx(100 * 5 / 7)
    assert extra["mean_class_accuracy"] == pytest.approx(100 * (2 / 3 + 1 + 1 / 2) / 3)
    # IoU: 0: 2 / (3 + 3 - 2), 1: 2 / (2 + 3 - 2), 2: 1 / (2 + 1 - 1); weights G / 7.
    assert extra["fw_iou"] == pytest.approx(100 * (3 / 7 * 2 / 4 + 2 / 7 * 2 / 3 + 2 / 7 * 1 / 2))
