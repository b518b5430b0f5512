"""Coverage of ``--bootstrap`` intervals and size of ``compare``'s test, by simulation (issue 17, part 3).

    python bench/bench_coverage.py [--replications 1000] [--images 400] [--resamples 1000] [--workers 2]

A synthetic population of ImageNet-S50-like images (real masks through the real counting kernel: one main
object per image, sometimes a second one, ignore bands; class frequencies log-normal, so that a sample of a
few hundred images holds each class in a handful of images, some in one or two) is scored for two methods
with the same skill. Every image of the population has two predictions drawn alike; the population holds it
twice, methods A and B swapped, so A and B have exactly the same population metrics (a true null).

Each replication draws ``--images`` images from the population, computes the nominal 95% intervals of
every method from the same bootstrap resamples, and records whether they hold the population value (the
metric computed on the whole population); and ``compare``'s p-value of B - A (true difference 0). Goal:
coverage within 93-97% for mIoU and FMeasure, and about 5% of p-values below 0.05.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from imagenets.demo.synthetic import synthetic_pair  # noqa: E402
from imagenets.evaluation.engine.bootstrap import METHOD, METHODS, Draws, Resampler  # noqa: E402
from imagenets.evaluation.engine.kernel import joint_table  # noqa: E402
from imagenets.evaluation.engine.metrics import SUMMARY_KEYS, ImageCounts, SegmentationMetrics  # noqa: E402
from imagenets.subsets import IGNORE  # noqa: E402

K = 50
GOAL_KEYS = ("mIoU", "FMeasure")


def predict(gt: np.ndarray, rng: np.random.Generator, skill: np.ndarray) -> np.ndarray:
    """A method's prediction of one GT map: each object kept with its class's skill (else another class),
    the whole map shifted by a few pixels (more for harder classes), sometimes a false object."""
    pred = np.where(gt == IGNORE, 0, gt)
    present = np.unique(gt[(gt > 0) & (gt != IGNORE)])
    for c in present:
        if rng.random() > skill[c]:
            pred[gt == c] = (c + rng.integers(1, K)) % K + 1  # any other class
    h, w = gt.shape
    if present.size:
        reach = int(round((1.0 - skill[present].mean()) * 0.2 * min(h, w)))
        pred = np.roll(pred, tuple(rng.integers(-reach, reach + 1, 2)), axis=(0, 1))
    if rng.random() < 0.2:
        y, x = rng.integers(0, h), rng.integers(0, w)
        pred[y:y + h // 4, x:x + w // 4] = rng.integers(1, K + 1)
    return pred


def population(bases: int, seed: int, spread: float = 0.3) -> Tuple[ImageCounts, ImageCounts]:
    """Per-image counts of methods A and B over 2 * ``bases`` images (each base image twice, A and B swapped);
    ``spread``: the standard deviation of the log class frequencies."""
    rng = np.random.default_rng(seed)
    frequency = rng.lognormal(0.0, spread, K)
    frequency /= frequency.sum()
    skill = np.concatenate([[1.0], rng.uniform(0.5, 0.95, K)])
    main = rng.choice(K, size=bases, p=frequency) + 1
    a, b = SegmentationMetrics(K, keep_images=True), SegmentationMetrics(K, keep_images=True)
    tables: Dict[str, List] = {"a": [], "b": []}
    for index in range(bases):
        gt, _ = synthetic_pair(seed, index, int(main[index]), K, (24, 64), 1.0)
        first, second = joint_table(gt, predict(gt, rng, skill), K), joint_table(gt, predict(gt, rng, skill), K)
        tables["a"] += [first, second]
        tables["b"] += [second, first]
    a.update_tables(tables["a"])
    b.update_tables(tables["b"])
    return a.image_counts(), b.image_counts()


def one_replication(job: Tuple[ImageCounts, ImageCounts, Dict[str, float], int, int, int]) -> Dict[str, object]:
    """Intervals of every method on one sample, and compare's p-values of B - A on it."""
    pop_a, pop_b, truth, images, resamples, seed = job
    rng = np.random.default_rng(seed)
    pick = rng.choice(pop_a.images, size=images, replace=False)
    sample_a, sample_b = pop_a.reordered(pick), pop_b.reordered(pick)
    draws = Draws(sample_a, None, resamples, seed, with_errors=True)
    covered = {}
    for method in METHODS:
        for key in SUMMARY_KEYS:
            lo, hi = draws.interval(key, method)
            covered[method, key] = None if math.isnan(lo) or math.isnan(truth[key]) else bool(lo <= truth[key] <= hi)
    paired = Draws(sample_a, sample_b, resamples, seed + 1, with_errors=True)
    return {"covered": covered, "p": {(method, key): paired.p_value(key, method) for method in METHODS
                                      for key in SUMMARY_KEYS},
            "bias": {key: draws.point[key] - truth[key] for key in SUMMARY_KEYS}}


def _setup() -> None:
    import torch

    torch.set_num_threads(1)


def rate(flags: List[object]) -> Tuple[float, int]:
    kept = [f for f in flags if f is not None]
    return (100.0 * sum(kept) / len(kept) if kept else math.nan), len(kept)


def rejected(results: List[Dict[str, object]], method: str, key: str) -> float:
    return rate([r["p"][method, key] is not None and r["p"][method, key] < 0.05 for r in results])[0]


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replications", type=int, default=1000, help="samples drawn from the population")
    parser.add_argument("--images", type=int, default=500, help="images per sample")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples per interval")
    parser.add_argument("--bases", type=int, default=10000, help="base images of the population (each held twice)")
    parser.add_argument("--workers", type=int, default=2, help="processes")
    parser.add_argument("--spread", type=float, default=0.3,
                        help="standard deviation of the log class frequencies (0.3: ImageNet-S's 10-20 images a class)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    pop_a, pop_b = population(args.bases, args.seed, args.spread)
    truth_a, truth_b = Resampler(pop_a).point(), Resampler(pop_b).point()
    assert all(truth_a[k] == truth_b[k] or math.isclose(truth_a[k], truth_b[k], rel_tol=1e-12)
               for k in SUMMARY_KEYS), "A and B must have the same population metrics"
    built = time.perf_counter() - start
    jobs = [(pop_a, pop_b, truth_a, args.images, args.resamples, args.seed * 100003 + 2 * r + 1)
            for r in range(args.replications)]
    if args.workers:
        with ProcessPoolExecutor(args.workers, initializer=_setup) as pool:
            results = list(pool.map(one_replication, jobs, chunksize=8))
    else:
        results = [one_replication(job) for job in jobs]
    elapsed = time.perf_counter() - start

    images_per_class = np.bincount(pop_a.keys[(pop_a.keys // (K + 1)) == 2] % (K + 1), minlength=K + 1)[1:]
    per_sample = images_per_class * args.images / pop_a.images
    se = 100 * math.sqrt(0.95 * 0.05 / args.replications)
    print(f"bench_coverage: population of {pop_a.images} ImageNet-S50-like images ({args.bases} masks, each with "
          f"two predictions, A and B swapped); samples of {args.images} images, {args.replications} replications, "
          f"B = {args.resamples}, nominal 95%; {args.workers} workers, {os.cpu_count()} CPUs, {elapsed:.0f} s "
          f"({built:.0f} s for the population)")
    print(f"classes per sample: {per_sample.min():.1f} to {per_sample.max():.1f} images each "
          f"(median {np.median(per_sample):.1f}); Monte Carlo standard error of a coverage: {se:.1f} points")
    print("population values: " + ", ".join(f"{k} {truth_a[k]:.2f}" for k in SUMMARY_KEYS))
    print()
    print(f"{'coverage (%)':<13}" + "".join(f"{m:>22}" for m in METHODS) + f"{'mean bias':>12}")
    for key in SUMMARY_KEYS:
        cells = []
        for method in METHODS:
            value, n = rate([r["covered"][method, key] for r in results])
            cells.append(f"{value:21.1f}" + ("*" if n < len(results) else " "))
        bias = np.nanmean([r["bias"][key] for r in results])
        print(f"{key:<13}" + "".join(cells) + f"{bias:+12.2f}")
    print("(*: replications where the key is undefined, a size bucket without objects, left out; "
          "mean bias: sample value - population value)")
    print()
    print("compare, true null (A and B equally good): share of p < 0.05 (%)")
    print(f"{'':<13}" + "".join(f"{m:>22}" for m in METHODS))
    for key in SUMMARY_KEYS:
        print(f"{key:<13}" + "".join(f"{rejected(results, method, key):21.1f} " for method in METHODS))
    verdicts = []
    for key in GOAL_KEYS:
        value, _n = rate([r["covered"][METHOD, key] for r in results])
        verdicts.append(f"{key} coverage {value:.1f}% ({'within' if 93 <= value <= 97 else 'OUTSIDE'} 93-97)")
    verdicts += [f"{key} p < 0.05 in {rejected(results, METHOD, key):.1f}%" for key in GOAL_KEYS]
    print(f"goal ({METHOD}, the default): " + "; ".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
