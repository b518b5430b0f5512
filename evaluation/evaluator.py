"""``evaluator.py``: mIoU and its companion metrics of ImageNet-S predictions, exactly as the benchmark.

    python evaluator.py --predict-dir P --gt-dir G --mode 50 [--match results/x.json] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (`cd evaluation; python evaluator.py`, the original toolbox's usage): import the
    # package from the checkout instead of these files as top-level modules.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from imagenets.errors import dependencies_of  # noqa: E402 (needs no third-party package)

with dependencies_of("evaluator.py" if __name__ == "__main__" else None):
    from imagenets.cli import (Command, add_device_argument, add_meta_argument, add_mode_argument,
                               add_quiet_argument, add_workers_argument)
    from imagenets.errors import info
    from imagenets.fileio import check_outputs
    from imagenets.evaluation.engine.evaluation import evaluate_predictions
    from imagenets.evaluation.engine.inputs import add_pair_arguments
    from imagenets.evaluation.engine.report import publish
    from imagenets.metadata import load_metadata
    from imagenets.subsets import get_subset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_pair_arguments(parser, "class ids 0..K, or cluster ids with --match")
    add_mode_argument(parser)
    add_workers_argument(parser)
    parser.add_argument("--match", type=Path, default=None, metavar="FILE",
                        help="match file from match.py: prediction ids are mapped through it first")
    add_meta_argument(parser)
    add_device_argument(parser)
    add_quiet_argument(parser)
    parser.add_argument("--output", type=Path, default=None, metavar="FILE.json",
                        help="also write the summary (full precision), IoUs and run context as JSON")
    parser.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                        help="also draw the per-class IoU as a bar chart, classes sorted, with the mIoU line")


def run(args: argparse.Namespace) -> int:
    check_outputs({"--output": args.output, "--plot": args.plot}, {"--match": args.match},
                  {"--predict-dir": args.predict_dir, "--gt-dir": args.gt_dir})
    subset = get_subset(args.mode)
    meta = load_metadata(args.meta_dir, quiet=args.quiet)
    result = evaluate_predictions(args.predict_dir, args.gt_dir, subset, meta, match_file=args.match,
                                  workers=args.workers, device=args.device, quiet=args.quiet)
    if args.plot:
        from imagenets.evaluation.plot import plot_result  # Pillow drawing: loaded only when asked for

        plot_result(args.plot, result, meta, subset)
        info(f"wrote {args.plot}", args.quiet)
    return publish(result, meta, subset, args.output, args.quiet)


COMMAND = Command("evaluate", "evaluate predictions: mIoU, boundary mIoU, size buckets, Acc, FMeasure",
                  add_arguments, run,
                  description="Evaluate ImageNet-S predictions exactly as the benchmark does: per-class IoU "
                              "and the summary metrics (mIoU, mBIoU, S/MS/ML/L, BS/BMS/BML/BL, Acc, FMeasure).")


if __name__ == "__main__":
    sys.exit(COMMAND.main())
