"""``match.py``: map unsupervised cluster ids onto ImageNet-S classes (image-level Hungarian matching).

    python match.py --predict-dir P --gt-dir G --mode 50 --workers 2 --session-name NAME
writes ``results/NAME.json`` (relative to the working directory) and prints its path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    from imagenets.evaluation.engine.inputs import add_pair_arguments
    from imagenets.evaluation.engine.matchfile import match_to_json, save_match
    from imagenets.evaluation.engine.matching import compute_match
    from imagenets.fileio import check_outputs, write_json_atomic
    from imagenets.metadata import load_metadata
    from imagenets.subsets import get_subset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_pair_arguments(parser, "cluster ids 1..K")
    add_mode_argument(parser)
    add_workers_argument(parser)
    parser.add_argument("--session-name", default="match", metavar="NAME",
                        help="the match is written to results/NAME.json under the working directory")
    parser.add_argument("--method", choices=METHODS, default="image",
                        help="image: the benchmark's image-level co-occurrence; pixel: maximise the total "
                             "pixel intersection of cluster and class (not the benchmark's protocol)")
    add_meta_argument(parser)
    add_device_argument(parser)
    add_quiet_argument(parser)
    parser.add_argument("--output", type=Path, default=None, metavar="FILE.json",
                        help="also write a JSON report: match file, method, objective, image count, match")


def run(args: argparse.Namespace) -> int:
    subset = get_subset(args.mode)
    name = args.session_name
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise UserError(f"--session-name {name!r}: use a plain file name (letters, digits, - and _)")
    match_path = Path("results") / f"{name}.json"
    check_outputs({"match file": match_path, "--output": args.output}, {},
                  {"--predict-dir": args.predict_dir, "--gt-dir": args.gt_dir})
    meta = load_metadata(args.meta_dir, quiet=args.quiet)
    result = compute_match(args.predict_dir, args.gt_dir, subset, meta, method=args.method,
                           workers=args.workers, device=args.device, quiet=args.quiet)
    path = save_match(match_path, result["assignment"])
    info(f"matched {subset.num_classes} clusters over {result['images']} images ({args.method} level), "
         f"objective {result['objective']}", args.quiet)
    if args.output:
        write_json_atomic(args.output, {"match_file": str(path), "subset": subset.name,
                                        "method": args.method, "images": result["images"],
                                        "objective": result["objective"],
                                        "match": match_to_json(result["assignment"])})
    print(path)
    return 0


COMMAND = Command("match", "match cluster ids to classes (image-level Hungarian matching)", add_arguments, run,
                  description="Match unsupervised cluster ids 1..K to ImageNet-S classes by maximising the "
                              "number of images in which a cluster and a class co-occur (the benchmark's "
                              "matching); writes results/NAME.json.")


if __name__ == "__main__":
    sys.exit(COMMAND.main())
