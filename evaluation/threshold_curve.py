"""``imagenets threshold-curve``: mIoU, Acc and FMeasure over "other" confidence thresholds, in one pass.

    imagenets threshold-curve --predict-dir P --scores-dir S --gt-dir G --mode 50 [--match FILE | --rematch]

PASS predicts "other" (0) wherever its confidence is below a threshold t, and picks t from such a
curve. Every image is decoded once for all thresholds; the best t (by mIoU) then gets the full
evaluation (boundaries and size buckets included) of the predictions really thresholded at t.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List

if __package__ in (None, ""):
    # Run as a script (`cd evaluation; python threshold_curve.py`): import the package from the checkout.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from imagenets.errors import dependencies_of  # noqa: E402 (needs no third-party package)

with dependencies_of("threshold_curve.py" if __name__ == "__main__" else None):
    from imagenets.cli import (Command, add_meta_argument, add_mode_argument, add_quiet_argument,
                               add_workers_argument)
    from imagenets.errors import info
    from imagenets.evaluation.engine.curve import threshold_curve
    from imagenets.evaluation.engine.inputs import add_pair_arguments
    from imagenets.evaluation.engine.report import OFFICIAL_LISTS, format_report, json_ready
    from imagenets.evaluation.html_report import add_report_arguments
    from imagenets.evaluation.engine.score_bins import THRESHOLDS_HINT, parse_thresholds
    from imagenets.fileio import write_json_atomic
    from imagenets.flags import input_dir, input_file, output_file
    from imagenets.metadata import load_metadata
    from imagenets.subsets import get_subset

DEFAULT_THRESHOLDS = "0:1:0.01"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_pair_arguments(parser, "class ids 0..K, or cluster ids with --match / --rematch")
    input_dir(parser, "--scores-dir", required=True, metavar="DIR",
              help="confidence of every prediction pixel: <wnid>/<name>.npy (float H x W, PASS's "
                   "inference --test output) or 16-bit grayscale <wnid>/<name>.png (value/65535); "
                   "may be --predict-dir itself")
    add_mode_argument(parser)
    how = parser.add_mutually_exclusive_group()
    input_file(how, "--match", default=None, metavar="FILE",
               help="fixed match file (match.py): applied after thresholding, at every threshold")
    how.add_argument("--rematch", action="store_true",
                     help="match cluster ids anew at every threshold (image-level, as match.py), as PASS does")
    parser.add_argument("--thresholds", default=DEFAULT_THRESHOLDS, metavar="SPEC",
                        help=f"thresholds to try: {THRESHOLDS_HINT}; a pixel is 'other' when its score < t")
    output_file(parser, "--output", default=None, metavar="FILE.json",
                help="also write the curve, the best threshold and its full metrics as JSON")
    output_file(parser, "--plot", default=None, metavar="FILE.png",
                help="also draw the curve (mIoU, Acc, FMeasure against the threshold) as a PNG")
    add_workers_argument(parser)
    add_meta_argument(parser)
    add_quiet_argument(parser)
    add_report_arguments(parser, images=False)


def curve_table(result: Dict[str, object]) -> str:
    """One row per threshold, two decimals; the best (by mIoU) marked with ``*``."""
    rows: List[Dict[str, float]] = result["curve"]  # type: ignore[assignment]
    extra = "objective" in rows[0]
    head = f"  {'t':>8}  {'mIoU':>7}  {'Acc':>7}  {'FMeasure':>8}" + ("  objective" if extra else "")
    lines = [head, "  " + "-" * (len(head) - 2)]
    for row in rows:
        mark = "*" if row["threshold"] == result["best_threshold"] else " "
        line = f"{mark} {row['threshold']!r:>8}  {row['mIoU']:>7.2f}  {row['Acc']:>7.2f}  {row['FMeasure']:>8.2f}"
        lines.append(line + (f"  {row['objective']:>9}" if extra else ""))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    thresholds = parse_thresholds(args.thresholds)
    subset = get_subset(args.mode)
    meta = load_metadata(args.meta_dir, quiet=args.quiet)
    kept = []  # the best threshold's accumulator, for --report
    result = threshold_curve(args.predict_dir, args.scores_dir, args.gt_dir, subset, meta, thresholds,
                             match_file=args.match, rematch=args.rematch, workers=args.workers, quiet=args.quiet,
                             on_best=kept.append if args.report else None)
    if args.output:
        best_json = json_ready(result["best"])  # type: ignore[arg-type]
        write_json_atomic(args.output, {**json_ready(result), "best": best_json, OFFICIAL_LISTS: meta.official})
        info(f"wrote {args.output}", args.quiet)
    if args.plot:
        from imagenets.evaluation.curve_plot import plot_curve  # Pillow drawing: loaded only when asked for

        plot_curve(args.plot, result)
        info(f"wrote {args.plot}", args.quiet)
    if args.report:
        from imagenets.evaluation.html_report import write_curve_report

        write_curve_report(args.report, json_ready(result), kept[0], meta, subset)  # type: ignore[arg-type]
        info(f"wrote {args.report}", args.quiet)
    if not args.quiet:
        how = "rematched at every threshold" if args.rematch else (
            f"match {args.match}" if args.match else "no match")
        print(f"{subset.name}, {result['images']} images, {how}: 'other' where score < t")
        print(curve_table(result))
        best = result["best"]
        print(f"\nbest t = {result['best_threshold']!r} (by mIoU); full evaluation at that threshold:")
        report = {**best, "match": str(args.match) if args.match else None}  # type: ignore[dict-item]
        print(format_report(report, meta, subset))
    return 0


COMMAND = Command("threshold-curve", "mIoU, Acc and FMeasure over 'other' confidence thresholds, in one pass",
                  add_arguments, run,
                  description="Try 'other' thresholds on per-pixel confidence maps (PASS's protocol: a pixel "
                              "whose score is below t is predicted 0) and report mIoU, Acc and FMeasure per t "
                              "from a single pass over the images, then the full metrics at the best t.")


if __name__ == "__main__":
    sys.exit(COMMAND.main())
