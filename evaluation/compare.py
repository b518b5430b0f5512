"""``imagenets compare A.npz B.npz``: paired difference (B - A) of two runs on the same images.

Both files come from ``evaluate --save-counts``. The images are resampled together (paired bootstrap):
each summary key gets B - A, its 95% interval and a two-sided p-value (symmetric studentized bootstrap:
the method is named in the table and as "ci95_method" in the JSON).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict

import numpy as np

from imagenets.cli import Command, add_quiet_argument
from imagenets.errors import UserError, first_few
from imagenets.flags import input_file, resamples, seed
from imagenets.evaluation.engine.countsfile import SavedCounts, load_counts
from imagenets.evaluation.engine.metrics import SUMMARY_KEYS
from imagenets.evaluation.engine.report import _fmt, interval, json_ready, text_table


def paired_runs(a: SavedCounts, b: SavedCounts, a_path: Path, b_path: Path) -> SavedCounts:
    """``b`` with its images in ``a``'s order; a UserError naming both files and what differs unless they hold
    the same subset, the same images and the same GT counts (GT fingerprint)."""
    if a.counts.num_classes != b.counts.num_classes:
        raise UserError(f"{a_path} is ImageNet-S{a.counts.num_classes} but {b_path} is "
                        f"ImageNet-S{b.counts.num_classes}: compare runs of the same subset")
    if a.names != b.names:
        b = _same_images(a, b, a_path, b_path)
    if a.context["gt_fingerprint"] != b.context["gt_fingerprint"]:
        raise UserError(f"{a_path} and {b_path} were scored against different ground truth (GT fingerprints "
                        f"{a.context['gt_fingerprint'][:12]} and {b.context['gt_fingerprint'][:12]}; --gt-dir "
                        f"{a.context.get('gt_dir', '?')} and {b.context.get('gt_dir', '?')}): compare runs "
                        "evaluated against the same GT masks")
    return b


def _same_images(a: SavedCounts, b: SavedCounts, a_path: Path, b_path: Path) -> SavedCounts:
    only_a, only_b = sorted(set(a.names) - set(b.names)), sorted(set(b.names) - set(a.names))
    if only_a or only_b or len(a.names) != len(b.names):
        raise UserError(f"{a_path} and {b_path} hold different images ({len(only_a)} only in {a_path}"
                        + (f", first: {first_few(only_a)}" if only_a else "")
                        + f"; {len(only_b)} only in {b_path}" + (f", first: {first_few(only_b)}" if only_b else "")
                        + "): save both with --save-counts over the same split and --mode")
    where = {name: i for i, name in enumerate(b.names)}
    order = np.array([where[name] for name in a.names], dtype=np.int64)
    return SavedCounts(b.counts.reordered(order), list(a.names), b.context)


def compare_files(a_path: Path, b_path: Path, resamples: int, seed: int, quiet: bool = True) -> Dict[str, object]:
    from imagenets.evaluation.engine.bootstrap import METHOD, paired_bootstrap  # torch: loaded only here

    a, b = load_counts(a_path), load_counts(b_path)
    b = paired_runs(a, b, a_path, b_path)
    return {"a": str(a_path), "b": str(b_path), "subset": a.context["subset"],
            "gt_fingerprint": a.context["gt_fingerprint"], "images": a.counts.images, "resamples": resamples,
            "seed": seed, "ci95_method": METHOD,
            "metrics": paired_bootstrap(a.counts, b.counts, resamples, seed, quiet=quiet)}


def comparison_table(result: Dict[str, object]) -> str:
    rows = []
    for key in SUMMARY_KEYS:
        m = result["metrics"][key]
        p = m["p"]
        rows.append([key, _fmt(m["a"]), _fmt(m["b"]), _fmt(m["difference"], signed=True),
                     interval(m["ci95"], signed=True), "n/a" if p is None else f"{p:.4f}"])
    return "\n".join([f"A = {result['a']}", f"B = {result['b']}",
                      f"{result['subset']}, {result['images']} images; paired bootstrap ({result['ci95_method']}), "
                      f"{result['resamples']} resamples, seed {result['seed']}", "",
                      text_table(["metric", "A", "B", "B - A", f"95% interval ({result['ci95_method']})",
                                  f"p ({result['ci95_method']})"], rows)])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    input_file(parser, "a", metavar="A.npz", help="counts of the baseline run (evaluate --save-counts)")
    input_file(parser, "b", metavar="B.npz", help="counts of the other run, on the same images")
    parser.add_argument("--bootstrap", type=resamples(1), default=1000, metavar="B",
                        help="resamples of the images (1000 or more for p-values)")
    parser.add_argument("--seed", type=seed(), default=0, metavar="S", help="random seed of the resampling")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    add_quiet_argument(parser)


def run(args: argparse.Namespace) -> int:
    result = compare_files(args.a, args.b, args.bootstrap, args.seed, quiet=args.quiet)
    print(json.dumps(json_ready(result), indent=1) if args.json else comparison_table(result))
    return 0


COMMAND = Command("compare", "paired difference of two runs' saved counts, with intervals and p-values",
                  add_arguments, run,
                  description="Paired bootstrap of two runs saved with `evaluate --save-counts` on the same "
                              "images: B - A for every summary key, its 95% interval and a two-sided p-value, both "
                              "from the symmetric studentized bootstrap (p: the share of resamples whose |t| reaches "
                              "the observed difference's).")

