"""``imagenets score``: what the benchmark server does with a ``submission.zip``, run locally.

    imagenets score submission.zip --gt-dir G --mode 50 [--split validation] [--protocol P]
Vets every entry and the listing before extracting anything, extracts to a temporary folder (removed on
success, error or SIGTERM), checks method.txt and the PNGs' headers, and evaluates exactly as
``evaluator.py`` does (match.json applied if present; out-of-range ids counted and warned about).
Takes zips made by the official tools as well as by ``imagenets submission``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence

from imagenets.cli import (Command, add_device_argument, add_meta_argument, add_mode_argument,
                           add_quiet_argument, add_workers_argument)
from imagenets.errors import UserError, warn
from imagenets.fileio import parse_json, temporary_folder
from imagenets.names import shown
from imagenets.flags import input_dir, input_file, integer, output_file
from imagenets.metadata import Metadata, load_metadata
from imagenets.subsets import SUBMISSION_SPLITS, Subset, get_subset
from imagenets.zipsafe import (DEFAULT_MAX_ENTRIES, DEFAULT_MAX_SIZE, Entry, extract_entries,
                               open_zip, parse_size, read_capped, vet_entries)

from imagenets.evaluation.engine.evaluation import evaluate_predictions
from imagenets.evaluation.engine.report import publish
from imagenets.evaluation.engine.matchfile import Match, parse_match
from imagenets.evaluation.protocols.rules import (MATCH_FILE, MATCH_MAX_BYTES, METHOD_FILE, METHOD_LABELS,
                                                  METHOD_MAX_BYTES, PROTOCOLS, get_protocol, match_rule,
                                                  parse_method_text)
from imagenets.evaluation.protocols.checks import (CheckReport, PixelItem, check_listing, check_pixels,
                                                   split_entries, split_hint, zip_folders)

REBUILD = "rebuild the zip with `imagenets submission` (or the official tools)"
#: The small files of a submission, with the most bytes each may hold.
SMALL_FILES = {METHOD_FILE: METHOD_MAX_BYTES, MATCH_FILE: MATCH_MAX_BYTES}


def check_entries(entries: Sequence[Entry], masks: Sequence[str], meta: Metadata, subset: Subset,
                  split: str) -> CheckReport:
    """The zip's listing against the split's: missing PNGs, unexpected files or folders, no method.txt."""
    report = CheckReport()
    files = [entry.name for entry in entries if not entry.is_dir]
    check_listing(report, files, masks, optional=SMALL_FILES)
    folders = set(zip_folders(masks))
    for entry in entries:
        if entry.is_dir and entry.name not in folders:
            report.add("extra", entry.name + "/")
    if METHOD_FILE not in files:
        report.add("method", f"{METHOD_FILE} (missing)")
    if "missing" in report.problems:
        report.hint = split_hint(meta, subset, split, files)
    return report


def read_method(root: Path, report: CheckReport, source: str) -> Dict[str, str]:
    """method.txt's values; problems go to ``report`` under "method", oddities are warned about."""
    try:
        text = read_capped(root / METHOD_FILE, METHOD_MAX_BYTES, METHOD_FILE).decode("utf-8")
    except UnicodeDecodeError:
        report.add("method", f"{METHOD_FILE} (not UTF-8 text)")
        return {}
    parsed = parse_method_text(text)
    for problem in parsed.problems:
        report.add("method", f"{METHOD_FILE} ({problem})")
    for message in parsed.warnings:
        warn(f"{source}: {METHOD_FILE} has {message}")
    return parsed.fields


def read_zip_match(root: Path, report: CheckReport, num_classes: int, source: str) -> Optional[Match]:
    """The submission's match.json (None if absent); a malformed one goes to ``report`` under "match"."""
    path = root / MATCH_FILE
    if not path.is_file():
        return None
    try:
        data = parse_json(read_capped(path, MATCH_MAX_BYTES, MATCH_FILE), MATCH_FILE, expect=dict)
        return parse_match(data, num_classes, source=f"{MATCH_FILE} in {source}", path=str(path))
    except UserError as exc:
        report.add("match", f"{MATCH_FILE} ({exc})")
    return None


@contextlib.contextmanager
def entries_named(root: Path, zip_path: Path) -> Iterator[None]:
    """A UserError about an extracted file names its zip entry (``sub.zip:n01443537/x.png``), not the
    temporary folder, which is gone by the time the message is read."""
    try:
        yield
    except UserError as exc:
        raise UserError(str(exc).replace(f"{root}{os.sep}", f"{zip_path}:")) from None


def score_submission(zip_path: Path, gt_dir: Path, subset: Subset, meta: Metadata, split: str = "validation",
                     workers: int = 2, device: str = "auto", quiet: bool = False,
                     max_size: int = DEFAULT_MAX_SIZE, max_entries: int = DEFAULT_MAX_ENTRIES,
                     protocol: Optional[str] = None) -> Dict[str, object]:
    """Extract, check and evaluate a submission; returns the evaluator's result plus the submission's context."""
    zip_path, gt_dir = Path(zip_path), Path(gt_dir)
    if not gt_dir.is_dir():
        raise UserError(f"--gt-dir {gt_dir} is not a directory: point it at the subset's "
                        f"{split}-segmentation folder")
    k = subset.num_classes
    masks = [mask for _image, mask in split_entries(meta, subset, split)]
    refusal = f"{zip_path} is not a valid {subset.name} {split} submission ({len(masks)} PNGs expected):"
    # SIGTERM raises inside the block (the command layer's handler), so the temporary folder goes as it
    # does on success or error.
    with open_zip(zip_path, fix=REBUILD) as archive:
        entries = vet_entries(archive.infolist(), zip_path, max_size, max_entries, caps=SMALL_FILES, fix=REBUILD)
        listing = check_entries(entries, masks, meta, subset, split)
        listing.refuse(refusal, "; ".join(([listing.hint] if listing.hint else [])
                                          + [f"nothing was extracted; {REBUILD}"]))
        with temporary_folder("imagenets-score-", quiet) as root, entries_named(root, zip_path):
            extract_entries(archive, entries, root, zip_path, max_size, fix=REBUILD, quiet=quiet)
            report = CheckReport()
            fields = read_method(root, report, str(zip_path))
            match = read_zip_match(root, report, k, str(zip_path))
            mapping = match.mapping if match is not None else None
            if protocol is not None:
                for message in match_rule(get_protocol(protocol), mapping is not None, matched=None):
                    warn(message)
            # Headers and sizes only: the ids are the evaluation's business (out of range = counted, warned).
            items = [PixelItem(mask, root / mask, gt_dir / mask) for mask in masks]
            check_pixels(report, items, None, reference_what="ground truth", workers=workers, quiet=quiet)
            report.refuse(refusal, f"fix the predictions and {REBUILD}")
            result = evaluate_predictions(root, gt_dir, subset, meta, match=match, workers=workers,
                                          device=device, quiet=quiet, names=masks)
    # The temporary folder is gone: name the zip instead.
    result.update(predict_dir=str(zip_path), match=f"{zip_path}:{MATCH_FILE}" if mapping is not None else None,
                  submission=str(zip_path), split=split, protocol=protocol,
                  method_name=fields.get(METHOD_LABELS[0]), method=fields)
    return result


def _size_option(text: str) -> int:
    try:
        return parse_size(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    input_file(parser, "submission", metavar="SUBMISSION.zip",
               help="the zip, as `imagenets submission` or the official tools write it")
    input_dir(parser, "--gt-dir", required=True, metavar="DIR",
              help="ground truth of the split: the subset's validation-segmentation folder")
    add_mode_argument(parser)
    parser.add_argument("--split", choices=SUBMISSION_SPLITS, default="validation",
                        help="the split the submission covers (test ground truth is the benchmark's own)")
    parser.add_argument("--protocol", choices=list(PROTOCOLS), default=None,
                        help="the competition the zip is meant for (method.txt does not say): checks its "
                             "match.json rule")
    add_workers_argument(parser)
    add_meta_argument(parser)
    add_device_argument(parser)
    add_quiet_argument(parser)
    output_file(parser, "--output", default=None, metavar="FILE.json",
                help="also write the summary (full precision), IoUs and the submission's context as JSON")
    parser.add_argument("--max-extract-size", type=_size_option, default="4G", metavar="SIZE",
                        help="refuse a zip that extracts to more bytes than this (e.g. 500M, 4G)")
    parser.add_argument("--max-entries", type=integer(1, 10 ** 9), default=DEFAULT_MAX_ENTRIES, metavar="N",
                        help="refuse a zip with more entries than this")


def run(args: argparse.Namespace) -> int:
    subset = get_subset(args.mode)
    meta = load_metadata(args.meta_dir, quiet=args.quiet)
    result = score_submission(args.submission, args.gt_dir, subset, meta, split=args.split,
                              workers=args.workers, device=args.device, quiet=args.quiet,
                              max_size=args.max_extract_size, max_entries=args.max_entries,
                              protocol=args.protocol)
    protocol = f", protocol {args.protocol}" if args.protocol else ""
    return publish(result, meta, subset, args.output, args.quiet,
                   heading=f"submission {args.submission}: method {shown(result['method_name'])}{protocol}")


COMMAND = Command("score", "score a submission.zip locally, as the benchmark server does",
                  add_arguments, run,
                  description="Vet a submission.zip (no absolute paths, no '..', no links or aliases, capped "
                              "size and entry count, exactly the split's PNGs), extract it to a temporary "
                              "folder, check method.txt and the PNGs' headers, apply its match.json if "
                              "present and evaluate it exactly as evaluator.py (and so the server) does.")

