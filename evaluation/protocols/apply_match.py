"""``imagenets apply-match``: rewrite predictions through a match (the fully unsupervised protocol's last step).

    imagenets apply-match --predict-dir P --match results/NAME.json --output-dir O [--workers N]

Every ``*.png`` under P (recursively) goes to the same relative path under O, each cluster id replaced by
its class. Resumable: O's marker records the match and, for each PNG written, the stamps (size, times,
inode) of its source and of its output; an output whose two stamps are unchanged is kept, so a rerun
finishes an interrupted run, a replaced prediction (even by ``cp -p``) is written again and a new match
rewrites everything.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from imagenets.cli import Command, add_quiet_argument, add_workers_argument
from imagenets.codec import MAX_ID, read_mask, write_mask
from imagenets.errors import UserError, first_few, info, warn
from imagenets.fileio import file_stamp, read_json, write_json_atomic
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
    """What a run did; merged across workers. ``outputs``: the stamp of each PNG written (rel -> stamp)."""

    written: int = 0
    kept: int = 0
    uncovered_pixels: int = 0
    uncovered_images: List[str] = field(default_factory=list)
    uncovered_ids: List[int] = field(default_factory=list)
    outputs: Dict[str, List[int]] = field(default_factory=dict)

    def merge(self, other: "ApplyStats") -> None:
        self.written += other.written
        self.kept += other.kept
        self.uncovered_pixels += other.uncovered_pixels
        self.uncovered_images += other.uncovered_images
        self.uncovered_ids = sorted(set(self.uncovered_ids) | set(other.uncovered_ids))[:SHOW + 1]
        self.outputs.update(other.outputs)


class _ApplyChunk:
    """Worker job: map a chunk of PNGs (relative paths) through the match (picklable)."""

    def __init__(self, src: Path, dst: Path, lut: np.ndarray, covered: np.ndarray):
        self.src, self.dst = src, dst
        self.lut, self.covered = lut, covered

    def __call__(self, names: Sequence[str]) -> ApplyStats:
        stats = ApplyStats()
        for name in names:
            src, dst = self.src / name, self.dst / name
            ids = read_mask(src)
            uncovered = ~self.covered[ids]
            if uncovered.any():
                stats.uncovered_pixels += int(uncovered.sum())
                stats.uncovered_images.append(name)
                values = {int(v) for v in np.unique(ids[uncovered])[:SHOW + 1]}
                stats.uncovered_ids = sorted(values | set(stats.uncovered_ids))[:SHOW + 1]
            write_mask(dst, self.lut[ids])
            stats.outputs[name] = file_stamp(dst)
            stats.written += 1
        return stats


def find_pngs(root: Path) -> List[str]:
    """Relative POSIX paths of every ``*.png`` under ``root``, sorted (linked folders followed, loops not)."""
    return [rel for rel in walk_files(root) if rel.lower().endswith(".png")]


class Manifest:
    """O's marker: the match, and for each PNG written the stamps of its source (when read) and of its output.

    An output is up to date when both stamps are unchanged: a prediction replaced in any way (``cp -p``,
    ``rsync -a``: same size and time, but another inode or change time) or an output edited is rewritten.
    Saved as the run goes, so that an interrupted run resumes.
    """

    SAVE_EVERY_S = 30.0

    def __init__(self, path: Path, record: Dict[str, object]):
        self.path, self.record = path, record
        self.sources: Dict[str, List[int]] = record.setdefault("sources", {})  # type: ignore[assignment]
        self.outputs: Dict[str, List[int]] = record.setdefault("outputs", {})  # type: ignore[assignment]
        self.saved = time.monotonic()
        self.dirty = True

    @classmethod
    def start(cls, out_dir: Path, match_obj: Dict[str, int], source: Path, num_classes: int,
              force: bool) -> "Manifest":
        """The marker of a resumed run (same match and K), else a new one (every output is rewritten)."""
        path = out_dir / APPLIED_MARKER
        previous = None
        if path.is_file() and not force:
            with contextlib.suppress(UserError):
                previous = read_json(path, "apply-match marker", expect=dict)
        record: Dict[str, object] = {"tool": "imagenets apply-match", "match_file": str(source),
                                     "num_classes": num_classes, "match": match_obj}
        resumed = (previous is not None and previous.get("match") == match_obj
                   and previous.get("num_classes") == num_classes
                   and isinstance(previous.get("sources"), dict) and isinstance(previous.get("outputs"), dict))
        if resumed:
            record.update(sources=previous["sources"], outputs=previous["outputs"])
        manifest = cls(path, record)
        manifest.dirty = not resumed
        manifest.save()  # a new match is recorded before the first output is written
        return manifest

    def up_to_date(self, name: str, source_stamp: List[int], output: Path) -> bool:
        recorded = self.outputs.get(name)
        if recorded is None or self.sources.get(name) != source_stamp:
            return False
        try:
            return file_stamp(output) == recorded
        except OSError:
            return False

    def add(self, outputs: Dict[str, List[int]], source_stamps: Dict[str, List[int]]) -> None:
        for name, stamp in outputs.items():
            self.sources[name], self.outputs[name] = source_stamps[name], stamp
            self.dirty = True
        if time.monotonic() - self.saved > self.SAVE_EVERY_S:
            self.save()

    def save(self) -> None:
        """Write the marker if anything changed since it was last written."""
        if self.dirty:
            write_json_atomic(self.path, self.record, indent=None)
            self.saved, self.dirty = time.monotonic(), False


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
    manifest = Manifest.start(output_dir, match_to_json(match), match_file, num_classes, force)
    sources = {name: file_stamp(predict_dir / name) for name in names}
    todo = [name for name in names if not manifest.up_to_date(name, sources[name], output_dir / name)]
    stats = ApplyStats(kept=len(names) - len(todo))

    def reduce(part: ApplyStats) -> None:
        stats.merge(part)
        manifest.add(part.outputs, sources)

    work = _ApplyChunk(predict_dir, output_dir, apply_lut(match, num_classes), match.covered)
    try:
        map_reduce(todo, work, reduce, workers=workers, quiet=quiet, desc="applying match")
    finally:  # what was written so far is recorded, also when the run is interrupted
        manifest.save()
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
                        help="rewrite every output; by default an output written from the same match and the "
                             "same, unchanged prediction (size, times, inode) is kept, so an interrupted run "
                             "resumes")
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

