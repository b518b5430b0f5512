"""``match.py``: map unsupervised cluster ids onto ImageNet-S classes (image-level Hungarian matching).

    python match.py --predict-dir P --gt-dir G --mode 50 --workers 2 --session-name NAME
writes ``results/NAME.json`` (relative to the working directory) and prints its path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

if __package__ in (None, ""):
    # Run as a script (`cd evaluation; python match.py`, the original toolbox's usage): import the
    # package from the checkout instead of these files as top-level modules.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from imagenets.cli import (Command, add_device_argument, add_meta_argument, add_mode_argument,
                           add_quiet_argument, add_workers_argument)
from imagenets.errors import UserError, info
from imagenets.fileio import write_json_atomic
from imagenets.metadata import Metadata, load_metadata
from imagenets.subsets import Subset, get_subset

from evaluation.cooccurrence import METHODS, Cooccurrence, best_match
from evaluation.evaluator import read_pair
from evaluation.kernel import joint_table
from evaluation.matchfile import match_to_json, save_match
from evaluation.pairs import Pair, add_pair_arguments, prepare_pairs
from evaluation.runner import counting_device, map_reduce


class _CountChunk:
    """Worker job: co-occurrence counts of a chunk of pairs (picklable)."""

    def __init__(self, num_classes: int, method: str):
        self.num_classes = num_classes
        self.method = method

    def __call__(self, pairs: Sequence[Pair]) -> Cooccurrence:
        counts = Cooccurrence(self.num_classes, self.method)
        for pair in pairs:
            gt, pred = read_pair(pair)
            counts.update_table(joint_table(gt, pred, self.num_classes, with_boundaries=False))
        return counts


def compute_match(predict_dir: Path, gt_dir: Path, subset: Subset, meta: Metadata, method: str = "image",
                  workers: int = 2, device: str = "auto", quiet: bool = False) -> Dict[str, object]:
    """Count co-occurrences over the validation list and solve the assignment."""
    counting_device(device, quiet)
    k = subset.num_classes
    names = [mask for _image, mask in meta.validation_names(subset)]
    pairs = prepare_pairs(names, Path(gt_dir), Path(predict_dir), quiet=quiet)
    total = Cooccurrence(k, method)
    map_reduce(pairs, _CountChunk(k, method), total.merge, workers=workers, quiet=quiet, desc="matching")
    assignment, objective = best_match(total.matrix())
    return {"subset": subset.name, "mode": k, "images": total.images, "method": method,
            "objective": objective, "assignment": assignment}


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
    meta = load_metadata(args.meta_dir, quiet=args.quiet)
    result = compute_match(args.predict_dir, args.gt_dir, subset, meta, method=args.method,
                           workers=args.workers, device=args.device, quiet=args.quiet)
    path = save_match(Path("results") / f"{name}.json", result["assignment"])
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


def main(argv: Optional[List[str]] = None) -> int:
    return COMMAND.main(argv)


if __name__ == "__main__":
    sys.exit(main())
