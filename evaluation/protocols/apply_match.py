"""``imagenets apply-match``: rewrite predictions through a match (the fully unsupervised protocol's last step).

    imagenets apply-match --predict-dir P --match results/NAME.json --output-dir O [--workers N]

Every ``*.png`` under P (recursively) goes to the same relative path under O, each cluster id replaced by
its class. Resumable: an output newer than its input and than O's marker (written when the match changes)
is kept, so a rerun finishes an interrupted run and a new match rewrites everything.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from imagenets.cli import Command, add_quiet_argument, add_workers_argument
from imagenets.codec import MAX_ID, read_mask, write_mask
from imagenets.errors import UserError, first_few, info, warn
from imagenets.fileio import read_json, write_json_atomic
from imagenets.flags import input_dir, input_file, output_dir
from imagenets.subsets import MODES, SUBSETS, get_subset
from imagenets.walk import walk_files

from imagenets.evaluation.engine.matchfile import UNCOVERED, Match, load_match, match_to_json
from imagenets.errors import SHOW
from imagenets.evaluation.protocols.rules import APPLIED_MARKER
from imagenets.evaluation.engine.parallel import map_reduce


def infer_classes(match: Match) -> int:
    """The smallest subset's K that holds every class of the match."""
    top = max(match.mapping.values())
    return min(k for k in SUBSETS if k >= top)


def apply_lut(match: Match, num_classes: int) -> np.ndarray:
    """Covered ids -> their class; uncovered ids above K stay as they are (out of range either way, and the
    original id stays visible); uncovered ids 1..K become UNCOVERED, since keeping them would silently turn
    a cluster into a class."""
    lut = match.lut.copy()
    ids = np.arange(MAX_ID + 1, dtype=np.int32)
    keep = (lut == UNCOVERED) & (ids > num_classes)
    lut[keep] = ids[keep]
    return lut


@dataclass
class ApplyStats:
    """What a run did; merged across workers."""

    written: int = 0
    kept: int = 0
    uncovered_pixels: int = 0
    uncovered_images: List[str] = field(default_factory=list)
    uncovered_ids: List[int] = field(default_factory=list)

    def merge(self, other: "ApplyStats") -> None:
        self.written += other.written
        self.kept += other.kept
        self.uncovered_pixels += other.uncovered_pixels
        self.uncovered_images += other.uncovered_images
        self.uncovered_ids = sorted(set(self.uncovered_ids) | set(other.uncovered_ids))[:SHOW + 1]


class _ApplyChunk:
    """Worker job: map a chunk of PNGs (relative paths) through the match (picklable)."""

    def __init__(self, src: Path, dst: Path, lut: np.ndarray, covered: np.ndarray, since_ns: int, force: bool):
        self.src, self.dst = src, dst
        self.lut, self.covered = lut, covered
        self.since_ns = since_ns
        self.force = force

    def up_to_date(self, src: Path, dst: Path) -> bool:
        try:
            done = dst.stat().st_mtime_ns
        except FileNotFoundError:
            return False
        return done >= max(src.stat().st_mtime_ns, self.since_ns)

    def __call__(self, names: Sequence[str]) -> ApplyStats:
        stats = ApplyStats()
        for name in names:
            src, dst = self.src / name, self.dst / name
            if not self.force and self.up_to_date(src, dst):
                stats.kept += 1
                continue
            ids = read_mask(src)
            uncovered = ~self.covered[ids]
            if uncovered.any():
                stats.uncovered_pixels += int(uncovered.sum())
                stats.uncovered_images.append(name)
                values = {int(v) for v in np.unique(ids[uncovered])[:SHOW + 1]}
                stats.uncovered_ids = sorted(values | set(stats.uncovered_ids))[:SHOW + 1]
            write_mask(dst, self.lut[ids])
            stats.written += 1
        return stats


def find_pngs(root: Path) -> List[str]:
    """Relative POSIX paths of every ``*.png`` under ``root``, sorted (linked folders followed, loops not)."""
    return [rel for rel in walk_files(root) if rel.lower().endswith(".png")]


def start_marker(out_dir: Path, match_obj: Dict[str, int], source: Path, num_classes: int, force: bool) -> int:
    """Keep O's marker when it records the same match (a resumed run), else write a new one; returns its
    mtime: outputs older than it predate this match and are rewritten."""
    marker = out_dir / APPLIED_MARKER
    if marker.is_file() and not force:
        try:
            previous = read_json(marker, "apply-match marker")
        except UserError:
            previous = None
        if (isinstance(previous, dict) and previous.get("match") == match_obj
                and previous.get("num_classes") == num_classes):
            return marker.stat().st_mtime_ns
    write_json_atomic(marker, {"tool": "imagenets apply-match", "match_file": str(source),
                               "num_classes": num_classes, "match": match_obj})
    return marker.stat().st_mtime_ns


def apply_match(predict_dir: Path, match_file: Path, output_dir: Path, mode: Optional[str] = None,
                workers: int = 2, force: bool = False, quiet: bool = False) -> ApplyStats:
    """Map every PNG under ``predict_dir`` through the match into ``output_dir``; returns the run's counts."""
    predict_dir, output_dir = Path(predict_dir), Path(output_dir)
    if not predict_dir.is_dir():
        raise UserError(f"--predict-dir {predict_dir} is not a directory: check the path")
    num_classes = get_subset(mode).num_classes if mode else None
    match = load_match(match_file, num_classes or max(SUBSETS))
    num_classes = num_classes or infer_classes(match)
    names = find_pngs(predict_dir)
    if not names:
        raise UserError(f"--predict-dir {predict_dir} holds no .png file: point it at the raw predictions "
                        "(<wnid>/<name>.png with cluster ids)")
    output_dir.mkdir(parents=True, exist_ok=True)
    if not match.one_to_one:
        warn(f"{match_file} maps several clusters to one class: the written PNGs lose the seams between "
             "them, so their boundary metrics (mBIoU, B*) differ from evaluator.py --match on the raw "
             "predictions (spec, step 3); submit the raw predictions with match.json to keep them")
    since = start_marker(output_dir, match_to_json(match), match_file, num_classes, force)
    stats = ApplyStats()
    work = _ApplyChunk(predict_dir, output_dir, apply_lut(match, num_classes), match.covered, since, force)
    map_reduce(names, work, stats.merge, workers=workers, quiet=quiet, desc="applying match")
    if stats.uncovered_pixels:
        ids = first_few(stats.uncovered_ids)
        warn(f"{stats.uncovered_pixels} pixels in {len(stats.uncovered_images)} images (first: "
             f"{stats.uncovered_images[0]}) have ids the match does not cover (ids {ids}): ids above "
             f"{num_classes} were kept, ids 1..{num_classes} were written as {UNCOVERED}; both are out of "
             "range, as in evaluator.py --match, and `imagenets submission` will refuse them")
    return stats


def add_arguments(parser: argparse.ArgumentParser) -> None:
    input_dir(parser, "--predict-dir", required=True, metavar="DIR",
              help="raw predictions: every *.png under it (recursively) holds cluster ids, id = R + 256*G")
    input_file(parser, "--match", required=True, metavar="FILE.json",
               help="match file from match.py (cluster id -> class id), computed on the validation split")
    output_dir(parser, "--output-dir", required=True, metavar="DIR",
               help="where the matched PNGs go, same relative paths; must not overlap --predict-dir")
    parser.add_argument("--mode", choices=MODES, default=None, metavar="{50,300,919}",
                        help="ImageNet-S subset; default: the smallest whose K holds every class of the match. "
                             "Uncovered ids above K are kept, uncovered ids 1..K become 65535 (both out of range)")
    add_workers_argument(parser)
    parser.add_argument("--force", action="store_true",
                        help="rewrite every output; by default outputs newer than their input (and than the "
                             "last change of match) are kept, so an interrupted run resumes")
    add_quiet_argument(parser)


def run(args: argparse.Namespace) -> int:
    stats = apply_match(args.predict_dir, args.match, args.output_dir, mode=args.mode, workers=args.workers,
                        force=args.force, quiet=args.quiet)
    info(f"{stats.written} PNGs written, {stats.kept} already up to date, in {args.output_dir}", args.quiet)
    return 0


COMMAND = Command("apply-match", "rewrite predictions through a match (fully unsupervised protocol)",
                  add_arguments, run,
                  description="Assign the matched categories to predictions: every cluster id of every PNG "
                              "under --predict-dir is replaced by its class from --match, written atomically "
                              "under --output-dir. Resumable; a different match rewrites everything.")

