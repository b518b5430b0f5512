"""``evaluator.py``: mIoU and its companion metrics of ImageNet-S predictions, exactly as the benchmark.

    python evaluator.py --predict-dir P --gt-dir G --mode 50 [--match results/x.json] [--workers 2]

Opt-in analysis (never changes the benchmark's numbers): ``--bootstrap B`` intervals, ``--save-counts``
for ``imagenets compare``, ``--confusion`` and ``--per-image`` exports, ``--extra-metrics``.
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
    import numpy as np

    from imagenets.cli import (Command, add_device_argument, add_meta_argument, add_mode_argument,
                               add_quiet_argument, add_workers_argument)
    from imagenets.errors import info, warn
    from imagenets.evaluation.engine import distributed
    from imagenets.evaluation.engine.evaluation import Keep, Tally, count_predictions, summarize_tally
    from imagenets.evaluation.engine.exports import (MATRIX_SUFFIXES, suffix_option, write_matrix,
                                                     write_per_image)
    from imagenets.evaluation.engine.inputs import add_pair_arguments
    from imagenets.evaluation.engine.report import NOT_BENCHMARK, OFFICIAL_LISTS, json_ready, publish
    from imagenets.evaluation.html_report import add_report_arguments, check_report_arguments
    from imagenets.flags import input_file, output_file, resamples, seed
    from imagenets.metadata import Metadata, load_metadata
    from imagenets.subsets import get_subset

#: The metric keys, for --help (the README's Evaluation section says the same).
EPILOG = ("Summary keys (percent): mIoU = mean IoU over ids 0..K (background included, absent classes count "
          "0); mBIoU = the same on boundary pixels; S, MS, ML, L = mIoU of objects by their share of the image "
          "(S <= 5%, MS <= 25%, ML <= 50%, L > 50%); BS, BMS, BML, BL = the same buckets on boundary pixels; "
          "Acc = share of images whose most predicted class is in the ground truth; FMeasure = foreground "
          "F-measure (beta^2 = 0.3, any non-zero id is foreground), averaged over images.")
#: Images a class should appear in for resamples to keep it (below: they often miss it, its IoU drops to 0).
FEW_IMAGES = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_pair_arguments(parser, "class ids 0..K, or cluster ids with --match")
    add_mode_argument(parser)
    add_workers_argument(parser)
    input_file(parser, "--match", default=None, metavar="FILE",
               help="match file from match.py (cluster id -> class id; many-to-one allowed): "
                    "boundaries are taken on the cluster ids, then everything is mapped")
    add_meta_argument(parser)
    add_device_argument(parser)
    add_quiet_argument(parser)
    output_file(parser, "--output", default=None, metavar="FILE.json",
                help="also write the summary (full precision), IoUs and run context as JSON")
    output_file(parser, "--plot", default=None, metavar="FILE.png",
                help="also draw the per-class IoU as a bar chart, classes sorted, with the mIoU line")
    group = parser.add_argument_group("analysis (opt-in; the benchmark's numbers stay the same)")
    group.add_argument("--bootstrap", type=resamples(0), default=0, metavar="B",
                       help="resample the images B times (with replacement): a 95%% interval for every summary "
                            "key (symmetric studentized bootstrap, bootstrap-t), in the table and as \"ci95\" in "
                            "--output (with \"ci95_method\")")
    group.add_argument("--seed", type=seed(), default=0, metavar="S", help="random seed of --bootstrap")
    output_file(group, "--save-counts", type=suffix_option(".npz"), default=None, metavar="FILE.npz",
                help="keep every image's counts and name, for `imagenets compare A.npz B.npz`")
    output_file(group, "--confusion", type=suffix_option(*MATRIX_SUFFIXES), default=None,
                metavar="FILE.npz|FILE.csv",
                help="write the pixel confusion matrix: rows = GT id 0..K, columns = prediction id "
                     "0..K plus one for ids outside 0..K, ignore pixels dropped; with --match after "
                     "the match, without it of the ids as they are (cluster ids x classes, before "
                     "any match)")
    output_file(group, "--per-image", type=suffix_option(".csv"), default=None, metavar="FILE.csv",
                help="one row per image: name, width, height, GT classes, per-image IoU (the "
                     "visualize gallery's), Acc correctness (0/1), F-measure (percent)")
    group.add_argument("--extra-metrics", action="store_true",
                       help="also pixel accuracy, mean class accuracy and frequency-weighted IoU, from the same "
                            "counts: NOT the benchmark's metrics (a separate block, and key \"not_benchmark\")")
    add_report_arguments(parser)
    parser.epilog = EPILOG


def add_analysis(result: dict, tally: Tally, args: argparse.Namespace) -> None:
    """The opt-in numbers: bootstrap intervals and the non-benchmark block."""
    if args.bootstrap:
        from imagenets.evaluation.engine.bootstrap import METHOD, bootstrap_intervals  # torch: only when asked for

        counts = tally.metrics.image_counts()
        few = rare_classes(counts)
        if few:
            warn(f"{few} classes appear in fewer than {FEW_IMAGES} images: resamples often miss them, "
                 "which skews the intervals; they are reliable when every class has several images, as in "
                 "the official splits")
        result["bootstrap"] = {"resamples": args.bootstrap, "seed": args.seed, "level": 95, "method": METHOD}
        result["ci95_method"] = METHOD
        result["ci95"] = bootstrap_intervals(counts, args.bootstrap, args.seed, quiet=args.quiet)
    if args.extra_metrics:
        from imagenets.evaluation.engine.metrics import extra_metrics

        result[NOT_BENCHMARK] = extra_metrics(tally.metrics.counts)


def rare_classes(counts) -> int:
    """Classes 1..K with ground truth in 1 to FEW_IMAGES - 1 images (``counts``: ImageCounts)."""
    k1 = counts.num_classes + 1
    gt_keys = counts.keys[(counts.keys // k1) == 2]  # scope "all", stat G: keys 2*(K+1) + class
    images = np.bincount(gt_keys % k1, minlength=k1)[1:]
    return int(((images > 0) & (images < FEW_IMAGES)).sum())


def write_exports(tally: Tally, args: argparse.Namespace, meta: Metadata) -> None:
    """The files asked for: per-image counts, confusion matrix, per-image CSV."""
    k = tally.metrics.num_classes
    if args.save_counts:
        from imagenets.evaluation.engine.countsfile import save_counts

        save_counts(args.save_counts, tally.metrics.image_counts(), tally.names,
                    {**tally.context, OFFICIAL_LISTS: meta.official})
        info(f"wrote {args.save_counts}", args.quiet)
    if args.confusion:
        write_matrix(args.confusion, tally.confusion.matrix(), "gt", "prediction",
                     [str(i) for i in range(k + 1)] + ["out_of_range"])
        info(f"wrote {args.confusion}", args.quiet)
    if args.per_image:
        counts = tally.metrics.image_counts()
        rows = [{"name": name, **image, "acc_correct": int(correct), "fmeasure": 100.0 * f}
                for name, image, correct, f in zip(tally.names, tally.images, counts.correct, counts.f)]
        write_per_image(args.per_image, rows)
        info(f"wrote {args.per_image}", args.quiet)


def run(args: argparse.Namespace) -> int:
    check_report_arguments(args)
    subset = get_subset(args.mode)
    meta = load_metadata(args.meta_dir, quiet=args.quiet)
    page = args.report is not None  # the page's per-class, per-image and cluster data come from this pass
    keep = Keep(image_counts=bool(args.bootstrap or args.save_counts or args.per_image or page),
                per_image=bool(args.per_image), confusion=bool(args.confusion or page), clusters=page)
    tally = count_predictions(args.predict_dir, args.gt_dir, subset, meta, match_file=args.match,
                              workers=args.workers, device=args.device, quiet=args.quiet, keep=keep)
    if not distributed.is_main():
        return 0  # rank 0 holds the same sums and writes the results
    result = summarize_tally(tally)
    add_analysis(result, tally, args)
    write_exports(tally, args, meta)
    if args.plot:
        from imagenets.evaluation.plot import plot_result  # Pillow drawing: loaded only when asked for

        plot_result(args.plot, result, meta, subset)
        info(f"wrote {args.plot}", args.quiet)
    if args.report:
        from imagenets.evaluation.html_report import write_evaluation_report

        write_evaluation_report(args.report, tally, json_ready(result), meta, subset, args.images,
                                args.report_pictures)
        info(f"wrote {args.report}", args.quiet)
    return publish(result, meta, subset, args.output, args.quiet)


COMMAND = Command("evaluate", "evaluate predictions: mIoU, boundary mIoU, size buckets, Acc, FMeasure",
                  add_arguments, run,
                  start=distributed.start_command,  # under torchrun: one rank of several (rank 0 prints, writes)
                  description="Evaluate ImageNet-S predictions exactly as the benchmark does: per-class IoU "
                              "and the summary metrics (mIoU, mBIoU, S/MS/ML/L, BS/BMS/BML/BL, Acc, FMeasure).")


if __name__ == "__main__":
    sys.exit(COMMAND.main())
