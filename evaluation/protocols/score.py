"""``imagenets score``: what the benchmark server does with a ``submission.zip``, run locally.

    imagenets score submission.zip --gt-dir G --mode 50 [--split validation]
Extracts safely to a temporary folder, checks the structure as ``submission`` does, applies ``match.json``
if present and evaluates exactly as ``evaluator.py``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Dict, Optional, Tuple

from imagenets.cli import (Command, add_device_argument, add_meta_argument, add_mode_argument,
                           add_quiet_argument, add_workers_argument)
from imagenets.errors import UserError, warn
from imagenets.fileio import check_outputs
from imagenets.metadata import Metadata, load_metadata
from imagenets.subsets import Subset, get_subset

from imagenets.evaluation.engine.evaluation import evaluate_predictions
from imagenets.evaluation.engine.report import publish
from imagenets.evaluation.engine.matchfile import parse_match
from imagenets.evaluation.protocols.rules import (CONTEXT_FIELDS, MATCH_FILE, METHOD_FIELDS, METHOD_FILE, PROTOCOLS, Protocol,
                                  match_rule, parse_method_text)
from imagenets.evaluation.protocols.checks import (SPLITS, CheckReport, PixelItem, allowed_ids, allowed_text,
                                         check_listing, check_pixels, list_files, split_entries)
from imagenets.zipsafe import DEFAULT_MAX_ENTRIES, DEFAULT_MAX_SIZE, parse_size, safe_extract


def read_method(root: Path, report: CheckReport, subset: Subset, split: str) -> Tuple[Dict[str, str],
                                                                                     Optional[Protocol]]:
    """method.txt's fields and protocol; every problem goes to ``report`` under "method"."""
    path = root / METHOD_FILE
    if not path.is_file():
        report.add("method", f"{METHOD_FILE} (missing)")
        return {}, None
    try:
        fields = parse_method_text(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        report.add("method", f"{METHOD_FILE} (not UTF-8 text)")
        return {}, None
    labels = [METHOD_FIELDS[0][1], *CONTEXT_FIELDS, *(label for _dest, label, _help in METHOD_FIELDS[1:])]
    for label in labels:
        if not fields.get(label):
            report.add("method", f"{METHOD_FILE} (no '{label}: ...' line)")
    protocol = PROTOCOLS.get(fields.get("Protocol", ""))
    if fields.get("Protocol") and protocol is None:
        report.add("method", f"{METHOD_FILE} (unknown protocol {fields['Protocol']!r}; one of "
                             f"{', '.join(PROTOCOLS)})")
    for label, want, option in (("Subset", subset.name, "--mode"), ("Split", split, "--split")):
        if fields.get(label) and fields[label] != want:
            report.add("method", f"{METHOD_FILE} ({label} {fields[label]}, but {option} says {want})")
    return fields, protocol


def read_zip_match(root: Path, report: CheckReport, num_classes: int, source: str) -> Optional[Dict[int, int]]:
    """The submission's match.json (None if absent); a malformed one goes to ``report`` under "match"."""
    path = root / MATCH_FILE
    if not path.is_file():
        return None
    try:
        return parse_match(json.loads(path.read_text(encoding="utf-8")), num_classes,
                           source=f"{MATCH_FILE} in {source}")
    except (ValueError, UnicodeDecodeError) as exc:
        report.add("match", f"{MATCH_FILE} (not valid JSON: {exc})")
    except UserError as exc:
        report.add("match", f"{MATCH_FILE} ({exc})")
    return None


def score_submission(zip_path: Path, gt_dir: Path, subset: Subset, meta: Metadata, split: str = "validation",
                     workers: int = 2, device: str = "auto", quiet: bool = False,
                     max_size: int = DEFAULT_MAX_SIZE, max_entries: int = DEFAULT_MAX_ENTRIES) -> Dict[str, object]:
    """Extract, check and evaluate a submission; returns the evaluator's result plus the submission's context."""
    zip_path, gt_dir = Path(zip_path), Path(gt_dir)
    if not gt_dir.is_dir():
        raise UserError(f"--gt-dir {gt_dir} is not a directory: point it at the subset's "
                        f"{split}-segmentation folder")
    k = subset.num_classes
    masks = [mask for _image, mask in split_entries(meta, subset, split)]
    with tempfile.TemporaryDirectory(prefix="imagenets-score-") as tmp:
        root = Path(tmp)
        safe_extract(zip_path, root, max_size=max_size, max_entries=max_entries, quiet=quiet)
        report = CheckReport()
        present = check_listing(report, list_files(root), masks, optional=(METHOD_FILE, MATCH_FILE))
        fields, protocol = read_method(root, report, subset, split)
        mapping = read_zip_match(root, report, k, str(zip_path))
        if protocol is not None:
            for message in match_rule(protocol, mapping is not None, matched=None):
                warn(message)
        items = [PixelItem(mask, root / mask, gt_dir / mask) for mask in present]
        check_pixels(report, items, allowed_ids(k, mapping), allowed_text(k, mapping),
                     reference_what="ground truth", workers=workers, quiet=quiet)
        report.refuse(f"{zip_path} is not a valid {subset.name} {split} submission ({len(masks)} PNGs "
                      "expected):", "fix the predictions and rebuild the zip with `imagenets submission`")
        result = evaluate_predictions(root, gt_dir, subset, meta,
                                      match_file=root / MATCH_FILE if mapping is not None else None,
                                      workers=workers, device=device, quiet=quiet, names=masks)
    # The temporary folder is gone: name the zip instead.
    result.update(predict_dir=str(zip_path), match=f"{zip_path}:{MATCH_FILE}" if mapping is not None else None,
                  submission=str(zip_path), split=split, protocol=fields.get("Protocol"),
                  method_name=fields.get(METHOD_FIELDS[0][1]))
    return result


def _size_option(text: str) -> int:
    try:
        return parse_size(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("submission", type=Path, metavar="SUBMISSION.zip",
                        help="the zip written by `imagenets submission`")
    parser.add_argument("--gt-dir", required=True, type=Path, metavar="DIR",
                        help="ground truth of the split: the subset's validation-segmentation folder")
    add_mode_argument(parser)
    parser.add_argument("--split", choices=SPLITS, default="validation",
                        help="the split the submission covers (test ground truth is the benchmark's own)")
    add_workers_argument(parser)
    add_meta_argument(parser)
    add_device_argument(parser)
    add_quiet_argument(parser)
    parser.add_argument("--output", type=Path, default=None, metavar="FILE.json",
                        help="also write the summary (full precision), IoUs and the submission's context as JSON")
    parser.add_argument("--max-extract-size", type=_size_option, default="4G", metavar="SIZE",
                        help="refuse a zip that extracts to more bytes than this (e.g. 500M, 4G)")
    parser.add_argument("--max-entries", type=int, default=DEFAULT_MAX_ENTRIES, metavar="N",
                        help="refuse a zip with more entries than this")


def run(args: argparse.Namespace) -> int:
    check_outputs({"--output": args.output}, {"SUBMISSION.zip": args.submission}, {"--gt-dir": args.gt_dir})
    subset = get_subset(args.mode)
    meta = load_metadata(args.meta_dir, quiet=args.quiet)
    result = score_submission(args.submission, args.gt_dir, subset, meta, split=args.split,
                              workers=args.workers, device=args.device, quiet=args.quiet,
                              max_size=args.max_extract_size, max_entries=args.max_entries)
    return publish(result, meta, subset, args.output, args.quiet,
                   heading=f"submission {args.submission}: protocol {result['protocol']}, "
                           f"method {result['method_name']}")


COMMAND = Command("score", "score a submission.zip locally, as the benchmark server does",
                  add_arguments, run,
                  description="Extract a submission.zip safely (no absolute paths, no '..', no links, capped "
                              "size and entry count) to a temporary folder, check its structure as "
                              "`imagenets submission` does, apply its match.json if present and evaluate it "
                              "exactly as evaluator.py.")

