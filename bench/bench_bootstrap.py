"""Benchmark of ``evaluate --bootstrap``: what B resamples add to one plain evaluation (goal: seconds).

    python bench/bench_bootstrap.py [--pairs 12419] [--resamples 1000] [--workers 2] [--data DIR]

On ImageNet-S919-like synthetic pairs (sides 24-160 px, cached under ``bench/_data/``, shared with
bench_match.py), in one run: the plain evaluation with ``--match`` (the floor), the same keeping every
image's sparse counts, then the bootstrap alone (multiplicity matrix times sparse counts, the summary of
every resample, each resample's standard error for the studentized intervals; and, for reference, the
percentile intervals, which need no standard errors); and the evaluation without ``--match`` (pixel confusion kept, the cluster-id
hint's assignment solved), each as a ratio to the floor.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_evaluate import add_small_919_arguments, best_of_rounds, small_919_case, timed  # noqa: E402
from imagenets.evaluation.engine.bootstrap import METHOD, bootstrap_intervals  # noqa: E402
from imagenets.evaluation.engine.evaluation import (Keep, count_predictions, evaluate_predictions,  # noqa: E402
                                                    summarize_tally)


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_small_919_arguments(parser)
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples B")
    args = parser.parse_args(argv)

    case, meta, subset = small_919_case(args.data, args.pairs, args.workers)

    def count(keep: Keep, match=case["match"]):
        return count_predictions(case["pred"], case["gt"], subset, meta, match_file=match, workers=args.workers,
                                 quiet=True, keep=keep)

    def plain_run():
        return evaluate_predictions(case["pred"], case["gt"], subset, meta, match_file=case["match"],
                                    workers=args.workers, quiet=True)

    (plain_s, plain_cpu, plain), (keep_s, keep_cpu, tally) = best_of_rounds(
        args.rounds, plain_run, lambda: count(Keep(image_counts=True)))
    counts_s, _cpu, counts = timed(tally.metrics.image_counts)
    boot_s, boot_cpu, ci = timed(lambda: bootstrap_intervals(counts, args.resamples, seed=0))
    plain_boot_s, _cpu, plain_ci = timed(lambda: bootstrap_intervals(counts, args.resamples, seed=0,
                                                                    method="percentile"))
    assert summarize_tally(tally)["mIoU"] == plain["mIoU"]
    unmatched_s, unmatched_cpu, _result = timed(lambda: summarize_tally(count(Keep(), match=None)))

    added = keep_s - plain_s + counts_s + boot_s
    print(f"bench_bootstrap: {args.pairs} ImageNet-S919-like pairs (sides 24-160 px), {args.workers} workers, "
          f"B = {args.resamples}")
    print(f"{'':<36} {'wall':>9}  {'CPU':>9}   (best of {args.rounds} rounds for the first two)")
    print(f"{'evaluate --match (floor)':<36} {plain_s:7.2f} s  {plain_cpu:7.2f} s   mIoU {plain['mIoU']:.2f}")
    print(f"{'  keeping per-image counts':<36} {keep_s:7.2f} s  {keep_cpu:7.2f} s   {keep_s / plain_s:.2f}x / "
          f"{keep_cpu / plain_cpu:.2f}x the floor; {counts.keys.size} sparse rows, "
          f"{counts.keys.size / args.pairs:.1f} per image")
    print(f"{'  bootstrap alone':<36} {boot_s:7.2f} s  {boot_cpu:7.2f} s   (+ {counts_s:.2f} s to gather the rows); "
          f"mIoU 95% interval ({METHOD}) [{ci['mIoU'][0]:.2f}, {ci['mIoU'][1]:.2f}]")
    print(f"{'  percentile intervals instead':<36} {plain_boot_s:7.2f} s  {'':>9}   (no standard errors); "
          f"mIoU [{plain_ci['mIoU'][0]:.2f}, {plain_ci['mIoU'][1]:.2f}]")
    print(f"{'  added by --bootstrap':<36} {added:7.2f} s  {'':>9}   {added / plain_s:.2f}x the floor "
          f"(whole run {(plain_s + added) / plain_s:.2f}x); bootstrap alone {boot_s / plain_s:.3f}x")
    print(f"{'evaluate without --match':<36} {unmatched_s:7.2f} s  {unmatched_cpu:7.2f} s   "
          f"{unmatched_s / plain_s:.2f}x / {unmatched_cpu / plain_cpu:.2f}x the floor (pixel confusion + "
          "cluster-id hint)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
