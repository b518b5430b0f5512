"""``match.py``: map unsupervised cluster ids onto ImageNet-S classes (image-level Hungarian matching).

    python match.py --predict-dir P --gt-dir G --mode 50 --workers 2 --session-name NAME [--clusters N]
writes ``results/NAME.json`` (relative to the working directory) and prints its path, and the tie report
``results/NAME.ties.json`` beside it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List

if __package__ in (None, ""):
    # Run as a script (`cd evaluation; python match.py`, the original toolbox's usage): import the
    # package from the checkout instead of these files as top-level modules.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from imagenets.errors import dependencies_of  # noqa: E402 (needs no third-party package)

with dependencies_of("match.py" if __name__ == "__main__" else None):
    from imagenets.cli import (Command, add_device_argument, add_meta_argument, add_mode_argument,
                               add_quiet_argument, add_workers_argument)
    from imagenets.errors import UserError, info
    from imagenets.evaluation.engine.cooccurrence import METHODS
    from imagenets.evaluation.engine.exports import MATRIX_SUFFIXES, suffix_option, write_matrix
    from imagenets.evaluation.engine.inputs import add_pair_arguments
    from imagenets.evaluation.engine.matchfile import match_to_json, save_match, ties_path
    from imagenets.evaluation.engine.report import OFFICIAL_LISTS
    from imagenets.evaluation.engine.matching import check_clusters, compute_match
    from imagenets.evaluation.engine.tiebreak import DEFAULT_TIE_BREAK, TIE_BREAKS
    from imagenets.fileio import write_json_atomic
    from imagenets.flags import OUTPUT_FILE, Declared, integer, output_file
    from imagenets.metadata import Metadata, load_metadata
    from imagenets.names import shown
    from imagenets.subsets import Subset, get_subset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_pair_arguments(parser, "cluster ids 1..K, or 1..N with --clusters")
    add_mode_argument(parser)
    parser.add_argument("--clusters", type=integer(), default=None, metavar="N",
                        help="the predictions hold cluster ids 1..N, N >= K (over-clustering): each class gets "
                             "its best distinct cluster, every other cluster the class it co-occurs with most; "
                             "prints where each cluster went and its purity. Default: K (one-to-one)")
    add_workers_argument(parser)
    parser.add_argument("--session-name", default="match", metavar="NAME",
                        help="the match is written to results/NAME.json under the working directory")
    parser.add_argument("--method", choices=METHODS, default="image",
                        help="image: the benchmark's image-level co-occurrence; pixel: maximise the total "
                             "pixel intersection of cluster and class (not the benchmark's protocol)")
    parser.add_argument("--tie-break", choices=list(TIE_BREAKS), default=DEFAULT_TIE_BREAK,
                        help="which of several equally good matches to keep: "
                             + "; ".join(f"{name}: {what}" for name, what in TIE_BREAKS.items())
                             + ". Whether there were ties, and which clusters could go elsewhere, is written "
                               "to results/NAME.ties.json")
    add_meta_argument(parser)
    add_device_argument(parser)
    add_quiet_argument(parser)
    output_file(parser, "--output", default=None, metavar="FILE.json",
                help="also write a JSON report: match file, method, objective, image count, match, "
                     "tie report (and, with --clusters, each cluster's class and purity)")
    output_file(parser, "--confusion", type=suffix_option(*MATRIX_SUFFIXES), default=None,
                metavar="FILE.npz|FILE.csv",
                help="also write the co-occurrence matrix the match maximises: rows = prediction id, "
                     "columns = GT id 0..K (images with both; pixels with --method pixel)")


def match_path(args: argparse.Namespace) -> Path:
    """Where the match goes: ``results/NAME.json`` under the working directory (NAME a plain file name)."""
    name = args.session_name
    if not name or "/" in name or "\\" in name or name.startswith(".") or not name.isprintable():
        raise UserError(f"--session-name {name!r}: use a plain file name (letters, digits, - and _)")
    return Path("results") / f"{name}.json"


def declare(args: argparse.Namespace, declared: Declared) -> None:
    declared.add(OUTPUT_FILE, "match file", match_path(args))
    declared.add(OUTPUT_FILE, "tie report", ties_path(match_path(args)))


def cluster_table(report: List[Dict[str, object]], meta: Metadata, subset: Subset) -> str:
    """Per cluster: its class (id, wnid, name) and purity, the share of its co-occurrence on that class."""
    wnids = ["-"] + meta.categories(subset)
    names = ["other (background)"] + meta.class_names(subset)
    width = min(max(len(n) for n in names), 40)
    lines = [f"{'cluster':>7}  {'class':>5}  {'wnid':<9}  {'name':<{width}}  {'purity':>6}",
             f"{'-' * 7}  {'-' * 5}  {'-' * 9}  {'-' * width}  {'-' * 6}"]
    for row in report:
        g, share = int(row["class"]), row["purity"]
        text = "n/a" if share is None else f"{100 * share:.1f}%"
        lines.append(f"{row['cluster']:>7}  {g:>5}  {wnids[g]:<9}  {shown(names[g])[:width]:<{width}}  {text:>6}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    subset = get_subset(args.mode)
    check_clusters(args.clusters, subset.num_classes)  # before any long work
    meta = load_metadata(args.meta_dir, quiet=args.quiet)
    result = compute_match(args.predict_dir, args.gt_dir, subset, meta, method=args.method,
                           workers=args.workers, device=args.device, quiet=args.quiet,
                           num_clusters=args.clusters, tie_break=args.tie_break)
    path = save_match(match_path(args), result["assignment"], ties=result["ties"])
    over = args.clusters is not None  # without --clusters: today's output, byte for byte
    if over:
        info(cluster_table(result["report"], meta, subset), args.quiet)
    info(f"matched {result['clusters']} clusters" + (f" onto {subset.num_classes} classes" if over else "")
         + f" over {result['images']} images ({args.method} level), objective {result['objective']}", args.quiet)
    if args.output:
        report = {"match_file": str(path), "subset": subset.name, "method": args.method,
                  "images": result["images"], "objective": result["objective"],
                  "match": match_to_json(result["assignment"]), "ties": result["ties"],
                  OFFICIAL_LISTS: meta.official}
        if over:
            report.update(clusters=result["clusters"], cluster_report=result["report"])
        write_json_atomic(args.output, report)
    if args.confusion:
        matrix = result["cooccurrence"]
        write_matrix(args.confusion, matrix, "prediction", "gt", [str(i) for i in range(matrix.shape[1])])
        info(f"wrote {args.confusion}", args.quiet)
    print(path)
    return 0


COMMAND = Command("match", "match cluster ids to classes (image-level Hungarian matching)", add_arguments, run,
                  declare=declare,
                  description="Match unsupervised cluster ids 1..K to ImageNet-S classes by maximising the "
                              "number of images in which a cluster and a class co-occur (the benchmark's "
                              "matching); with --clusters N, clusters 1..N onto the K classes (many-to-one). "
                              "Among equally good matches it keeps the one the original match.py keeps "
                              "(munkres 1.1.4's; --tie-break for others). Writes results/NAME.json and the "
                              "tie report results/NAME.ties.json.")


if __name__ == "__main__":
    sys.exit(COMMAND.main())
