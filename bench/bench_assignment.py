"""Time the image-level matching's core on an ImageNet-S919-sized case: co-occurrence + assignment.

Run: ``python bench/bench_assignment.py [--classes 919] [--images 12419] [--repeat 3] [--seed 0]``.
Compares with scipy's ``linear_sum_assignment`` when scipy is installed (it is not a run-time dependency).
"""

from __future__ import annotations

import argparse
import time
from typing import Callable, List, Tuple

import numpy as np

from imagenets.evaluation.engine.assignment import linear_sum_assignment


def simulate_images(num_classes: int, num_images: int, seed: int) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """Per image, the GT class ids and the predicted cluster ids present (both in 1..K).

    Predictions follow a hidden permutation of the classes, more or less faithfully per class
    (a fifth of the clusters are poor), plus some spurious clusters: ties are common.
    """
    rng = np.random.default_rng(seed)
    hidden = rng.permutation(num_classes) + 1
    faithful = np.where(rng.random(num_classes + 1) < 0.2, 0.3, 0.85)
    gt_lists: List[np.ndarray] = []
    pred_lists: List[np.ndarray] = []
    for _ in range(num_images):
        gt = np.unique(rng.integers(1, num_classes + 1, size=1 + rng.poisson(0.6)))
        kept = rng.random(gt.size) < faithful[gt]
        pred = np.where(kept, hidden[gt - 1], rng.integers(1, num_classes + 1, size=gt.size))
        spurious = rng.integers(1, num_classes + 1, size=rng.poisson(0.5))
        gt_lists.append(gt)
        pred_lists.append(np.unique(np.concatenate([pred, spurious])))
    return gt_lists, pred_lists


def cooccurrence(gt_lists: List[np.ndarray], pred_lists: List[np.ndarray], num_classes: int) -> np.ndarray:
    """``C[p][g]`` = number of images where cluster p and class g both appear ((K+1) x (K+1), row/column 0 unused)."""
    gt_counts = np.array([g.size for g in gt_lists])
    pred_counts = np.array([p.size for p in pred_lists])
    gt_flat = np.concatenate(gt_lists)
    pred_flat = np.concatenate(pred_lists)
    gt_start = np.cumsum(gt_counts) - gt_counts
    # Every predicted id is repeated once per GT id of its image; pair k of that block takes GT id k.
    pair_counts = np.repeat(gt_counts, pred_counts)
    pred_of_pair = np.repeat(pred_flat, pair_counts)
    block_start = np.repeat(np.cumsum(pair_counts) - pair_counts, pair_counts)
    image_of_pair = np.repeat(np.repeat(np.arange(len(gt_lists)), pred_counts), pair_counts)
    gt_of_pair = gt_flat[gt_start[image_of_pair] + np.arange(pair_counts.sum()) - block_start]
    side = num_classes + 1
    flat = np.bincount(pred_of_pair * side + gt_of_pair, minlength=side * side)
    return flat.reshape(side, side)


def best_time(func: Callable[[], object], repeat: int) -> Tuple[float, object]:
    """The fastest of ``repeat`` runs (seconds) and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=919, help="number of classes K (default 919)")
    parser.add_argument("--images", type=int, default=12419, help="number of simulated images (default 12419)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing; the best is shown (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the simulation (default 0)")
    args = parser.parse_args()

    gt_lists, pred_lists = simulate_images(args.classes, args.images, args.seed)
    build_s, counts = best_time(lambda: cooccurrence(gt_lists, pred_lists, args.classes), args.repeat)
    weights = counts[1:, 1:]
    solve_s, (rows, cols) = best_time(lambda: linear_sum_assignment(weights, maximize=True), args.repeat)
    objective = int(weights[rows, cols].sum())
    print(f"K={args.classes} images={args.images}: {int((weights > 0).sum())} non-zero co-occurrences, "
          f"max {int(weights.max())}")
    print(f"co-occurrence build  {build_s * 1000:8.1f} ms")
    print(f"assignment (ours)    {solve_s * 1000:8.1f} ms   objective {objective}")
    print(f"total                {(build_s + solve_s) * 1000:8.1f} ms   (goal: under 1000 ms)")

    # A collapsed model: most clusters are never predicted, so their rows are all zero (massive ties).
    collapsed = weights.copy()
    collapsed[np.random.default_rng(args.seed).random(args.classes) < 0.6] = 0
    collapsed_s, _ = best_time(lambda: linear_sum_assignment(collapsed, maximize=True), args.repeat)
    print(f"collapsed (60% idle) {collapsed_s * 1000:8.1f} ms   (ours; 60% of the clusters never predicted)")

    dense = np.random.default_rng(args.seed).random((args.classes, args.classes))
    dense_s, (dense_rows, dense_cols) = best_time(lambda: linear_sum_assignment(dense), 1)
    print(f"dense random floats  {dense_s * 1000:8.1f} ms")
    try:
        from scipy.optimize import linear_sum_assignment as scipy_lsa
    except ImportError:
        print("scipy not installed: no comparison")
        return
    ref_s, (ref_rows, ref_cols) = best_time(lambda: scipy_lsa(weights, maximize=True), args.repeat)
    ref_objective = int(weights[ref_rows, ref_cols].sum())
    print(f"assignment (scipy)   {ref_s * 1000:8.1f} ms   objective {ref_objective}   "
          f"ours/scipy = {solve_s / ref_s:.1f}x   objectives agree: {objective == ref_objective}")
    dense_ref_s, (ref_rows, ref_cols) = best_time(lambda: scipy_lsa(dense), 1)
    agree = np.isclose(dense[dense_rows, dense_cols].sum(), dense[ref_rows, ref_cols].sum(), rtol=1e-9, atol=0)
    print(f"dense random (scipy) {dense_ref_s * 1000:8.1f} ms   ours/scipy = {dense_s / dense_ref_s:.1f}x   "
          f"objectives agree: {bool(agree)}")


if __name__ == "__main__":
    main()
