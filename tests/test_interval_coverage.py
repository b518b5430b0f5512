"""A small, fast version of bench/bench_coverage.py: the default bootstrap intervals hold the population
value about as often as they claim, and are not wider than they need be."""

from __future__ import annotations

import numpy as np

from imagenets.evaluation.engine.bootstrap import Draws, Resampler
from imagenets.evaluation.engine.kernel import JointTable
from imagenets.evaluation.engine.metrics import SegmentationMetrics

K = 12


def image_table(rng: np.random.Generator, skill: np.ndarray) -> JointTable:
    """One image's counts: background and one object of a random class, predicted right with the class's
    skill (else as another class), its border off by a few percent of the object."""
    c = int(rng.integers(1, K + 1))
    size, background = int(rng.integers(500, 5000)), int(rng.integers(500, 5000))
    miss, spill = int(size * rng.uniform(0.0, 0.3)), int(size * rng.uniform(0.0, 0.3))
    guess = c if rng.random() < skill[c] else int((c + rng.integers(1, K)) % K + 1)
    pred_ids = np.unique([0, guess])
    counts = np.zeros((2, pred_ids.size + 1, 2, 2), dtype=np.int64)
    col = int(np.searchsorted(pred_ids, guess))
    counts[0, 0, 0, 0], counts[0, col, 0, 0] = background - spill, spill
    counts[1, 0, 0, 0], counts[1, col, 0, 0] = miss, size - miss
    return JointTable(np.array([0, c]), pred_ids, counts, 0, guess)


def test_default_intervals_cover_the_population_value():
    rng = np.random.default_rng(0)
    skill = np.concatenate([[1.0], rng.uniform(0.5, 0.95, K)])
    population = SegmentationMetrics(K, keep_images=True)
    population.update_tables([image_table(rng, skill) for _ in range(3000)])
    everyone = population.image_counts()
    truth = Resampler(everyone).point()
    held, widths, points = {"mIoU": 0, "FMeasure": 0}, [], []
    replications = 60
    for r in range(replications):
        sample = everyone.reordered(rng.choice(everyone.images, 120, replace=False))
        draws = Draws(sample, None, 200, r, with_errors=True)
        for key in held:
            lo, hi = draws.interval(key)
            held[key] += lo <= truth[key] <= hi
        widths.append(draws.interval("mIoU")[1] - draws.interval("mIoU")[0])
        points.append(draws.point["mIoU"])
    for key, count in held.items():
        assert count >= 0.85 * replications, (key, count)
    assert np.mean(widths) < 2 * 1.96 * 1.5 * np.std(points)  # not a vacuous interval
