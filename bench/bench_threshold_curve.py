"""Benchmark of ``imagenets threshold-curve``: the 101-threshold curve against one plain evaluation.

    python bench/bench_threshold_curve.py [--pairs 2000] [--workers 2] [--data DIR]

Uses the cached ImageNet-S300-like pairs of ``bench_evaluate.py`` (sides 24-500 px) plus PASS-like
float32 ``.npy`` score maps (written once beside them). In one run it times: one plain evaluation
(``evaluate --match``), the one-pass curve over thresholds 0:1:0.01 with the fixed match and with
``--rematch``, and the whole command (curve + the full evaluation at the best threshold). PASS's way,
re-running match + evaluation per threshold, costs about 101 plain evaluations.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import List

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_evaluate import DATA, synthetic_case, timed, warm_page_cache  # noqa: E402

from imagenets.codec import read_mask  # noqa: E402
from imagenets.evaluation.engine.curve import check_inputs, count_curve, threshold_curve  # noqa: E402
from imagenets.evaluation.engine.evaluation import evaluate_predictions  # noqa: E402
from imagenets.evaluation.engine.matchfile import load_match  # noqa: E402
from imagenets.evaluation.engine.score_bins import parse_thresholds  # noqa: E402
from imagenets.metadata import load_metadata  # noqa: E402
from imagenets.subsets import get_subset  # noqa: E402

K = 300


def write_scores(case, scores_dir: Path, names: List[str]) -> None:
    """PASS-like confidences, float32 H x W (once): smooth, higher where the matched prediction is right."""
    marker = scores_dir / "complete"
    if marker.is_file():
        return
    print(f"writing {len(names)} score maps in {scores_dir} (once) ...", file=sys.stderr, flush=True)
    lut = load_match(case["match"], K).lut
    for index, name in enumerate(names):
        pred = read_mask(case["pred"] / name)
        right = lut.take(pred) == read_mask(case["gt"] / name)
        rng = np.random.default_rng([index, 0x5C0])
        h, w = pred.shape
        coarse = rng.random((h // 16 + 1, w // 16 + 1), dtype=np.float32)
        smooth = np.kron(coarse, np.ones((16, 16), np.float32))[:h, :w]
        scores = 0.3 * smooth + 0.4 * right + 0.3 * rng.random((h, w), dtype=np.float32)
        out = scores_dir / (os.path.splitext(name)[0] + ".npy")
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, scores.astype(np.float32))
    marker.write_text("ok")


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2000, help="number of synthetic validation pairs")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--data", type=Path, default=DATA, help="cache folder for the generated data")
    args = parser.parse_args(argv)
    case = synthetic_case(args.data, K, args.pairs, (24, 500), max(args.workers, 1))
    meta = load_metadata(case["meta"])
    subset = get_subset(K)
    names = [m for _i, m in meta.validation_names(subset)]
    scores_dir = case["root"] / "scores"
    write_scores(case, scores_dir, names)
    items = check_inputs(case["pred"], scores_dir, case["gt"], names, quiet=True)
    size = warm_page_cache([p for pair, score in items for p in (pair.gt, pair.pred, score)])
    thresholds = parse_thresholds("0:1:0.01")
    mapping = load_match(case["match"], K)

    def plain():
        return evaluate_predictions(case["pred"], case["gt"], subset, meta, match_file=case["match"],
                                    workers=args.workers, quiet=True)

    def one_pass(rematch: bool):
        return count_curve(items, K, thresholds, None if rematch else mapping, rematch, workers=args.workers,
                           quiet=True)

    def command():
        return threshold_curve(case["pred"], scores_dir, case["gt"], subset, meta, thresholds,
                               match_file=case["match"], workers=args.workers, quiet=True)

    plain_s, plain_cpu, _ = timed(plain)
    curve_s, curve_cpu, _ = timed(lambda: one_pass(False))
    rematch_s, rematch_cpu, recounts = timed(lambda: one_pass(True))
    solve_s, solve_cpu, (assignments, _obj) = timed(recounts.matches)
    apply_s, apply_cpu, _ = timed(lambda: recounts.compute(assignments))
    whole_s, whole_cpu, result = timed(command)
    plain2_s, plain2_cpu, _ = timed(plain)
    base_s, base_cpu = min(plain_s, plain2_s), min(plain_cpu, plain2_cpu)

    def line(label: str, wall: float, cpu: float) -> str:
        return (f"{label:<30} {wall:7.2f} s wall {cpu:7.2f} s CPU   {wall / base_s:5.2f}x plain wall, "
                f"{cpu / base_cpu:5.2f}x plain CPU")

    print(f"bench_threshold_curve: {args.pairs} ImageNet-S300-like pairs (sides 24-500 px), {size / 2 ** 20:.0f} MiB "
          f"of PNG + .npy, {thresholds.size} thresholds, {args.workers} workers, {os.cpu_count()} CPUs")
    print(f"{'plain evaluate --match':<30} {base_s:7.2f} s wall {base_cpu:7.2f} s CPU   "
          f"(runs: {plain_s:.2f} s, {plain2_s:.2f} s wall)")
    print(line("curve pass, --match", curve_s, curve_cpu))
    print(line("curve pass, --rematch", rematch_s, rematch_cpu))
    print(line("  + 101 assignments (K=300)", solve_s, solve_cpu))
    print(line("  + metrics under each match", apply_s, apply_cpu))
    print(line("whole command, --match", whole_s, whole_cpu) + "   (curve + full evaluation at best t)")
    print(f"{'PASS-style estimate':<30} {thresholds.size} x (match + evaluate) >= {thresholds.size:.0f}x plain")
    print(f"{'result':<30} best t = {result['best_threshold']!r}, mIoU {result['best']['mIoU']:.2f} "
          f"(t=0: {result['curve'][0]['mIoU']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
