"""``imagenets submission``: check a prediction folder against a benchmark protocol and zip it for upload.

    imagenets submission --predict-dir P --mode 50 --protocol fully-unsupervised --match results/m.json \\
        --method-name ... --train-data ... --train-scheme ... --networks ... --link ... --description ... \\
        -o submission.zip
The zip has the official shape (as the benchmark's own tools make it): directory entries, no enclosing
folder, method.txt's six lines. Any problem: a report on stderr (counts, first paths per kind), no zip,
exit status 2.
"""

from __future__ import annotations

import argparse
import json
import re
import time
import zipfile
from pathlib import Path
from typing import Dict, Optional, Sequence

from imagenets.cli import Command, add_meta_argument, add_mode_argument, add_quiet_argument, add_workers_argument
from imagenets.errors import UserError, info, warn
from imagenets.fileio import atomic_path, check_outputs, read_json, write_json_atomic
from imagenets.metadata import Metadata, load_metadata
from imagenets.progress import progress
from imagenets.subsets import SUBMISSION_SPLITS, Subset, get_subset

from imagenets.zipsafe import exit_on_sigterm

from imagenets.evaluation.engine.matchfile import load_match, match_to_json
from imagenets.evaluation.protocols.rules import (APPLIED_MARKER, MATCH_FILE, METHOD_FIELDS, METHOD_FILE, PROTOCOLS,
                                                  get_protocol, match_rule, method_text, protocols_help)
from imagenets.evaluation.protocols.checks import (CheckReport, PixelItem, allowed_ids, allowed_text,
                                                   check_listing, check_pixels, list_files, split_entries,
                                                   split_hint, zip_folders)

#: A temporary zip not written to for this long belongs to a killed run (a live one writes continuously).
STALE_AFTER_S = 300


def applied_classes(predict_dir: Path) -> Optional[int]:
    """K recorded by apply-match in ``predict_dir`` (None when apply-match did not write it)."""
    marker = predict_dir / APPLIED_MARKER
    if not marker.is_file():
        return None
    record = read_json(marker, "apply-match marker")
    classes = record.get("num_classes") if isinstance(record, dict) else None
    if not isinstance(classes, int):
        raise UserError(f"{marker} is not an apply-match marker: delete it and rerun `imagenets apply-match`")
    return classes


def check_submission(predict_dir: Path, subset: Subset, meta: Metadata, split: str,
                     mapping: Optional[Dict[int, int]] = None, images: Optional[Path] = None,
                     workers: int = 2, quiet: bool = False) -> CheckReport:
    """Every check of a prediction folder: the split's PNGs and nothing else, 8-bit RGB, sizes, ids."""
    entries = split_entries(meta, subset, split)
    report = CheckReport()
    files = list_files(predict_dir, ignore={APPLIED_MARKER})
    present = check_listing(report, files, [m for _, m in entries])
    if "missing" in report.problems:
        report.hint = split_hint(meta, subset, split, files)
    wanted = set(present)
    items = [PixelItem(mask, predict_dir / mask, images / split / image if images else None)
             for image, mask in entries if mask in wanted]
    k = subset.num_classes
    check_pixels(report, items, allowed_ids(k, mapping), allowed_text(k, mapping), reference_what="image",
                 workers=workers, quiet=quiet)
    return report


def write_submission_zip(output: Path, predict_dir: Path, masks: Sequence[str], method: str,
                         match_obj: Optional[Dict[str, int]] = None, quiet: bool = False) -> None:
    """The official shape: folder entries, method.txt, match.json (if any), the PNGs; written under a
    temporary name then renamed."""
    with atomic_path(output) as tmp:
        with zipfile.ZipFile(tmp, "w", allowZip64=True) as archive:
            for folder in zip_folders(masks):
                archive.write(predict_dir / folder, folder + "/")
            archive.writestr(METHOD_FILE, method, compress_type=zipfile.ZIP_DEFLATED)
            if match_obj is not None:
                archive.writestr(MATCH_FILE, json.dumps(match_obj, indent=1) + "\n",
                                 compress_type=zipfile.ZIP_DEFLATED)
            # PNGs are deflate-compressed already: deflating them again gains a few bytes at a large CPU cost.
            for mask in progress(masks, desc="zipping", quiet=quiet, unit="img"):
                archive.write(predict_dir / mask, mask, compress_type=zipfile.ZIP_STORED)


def remove_stale_temporaries(output: Path, quiet: bool = False) -> None:
    """Delete the temporary zips a killed run left beside ``output`` (atomic_path's ``.NAME.XXXXXXXX.tmp``)."""
    pattern = re.compile(re.escape(f".{output.name}.") + r"[A-Za-z0-9_]{8}\.tmp")
    folder = output.parent
    if not folder.is_dir():
        return
    now = time.time()
    for path in folder.iterdir():
        try:
            if pattern.fullmatch(path.name) and path.is_file() and now - path.stat().st_mtime > STALE_AFTER_S:
                path.unlink()
                info(f"removed {path}, a temporary zip left by an interrupted run", quiet)
        except OSError:  # gone meanwhile, or not ours to delete: leave it
            continue


def out_of_range_fix(predict_dir: Path, mapping_given: bool) -> str:
    """How to deal with ids outside the allowed ones (nearly always unmatched cluster ids)."""
    if mapping_given:
        return ("ids outside 0 and the match's clusters count nowhere on the server; fix the match, or pass "
                "--allow-out-of-range to submit them anyway")
    matched = f"{predict_dir}-matched"
    return (f"ids above K are nearly always cluster ids: apply the match first (`imagenets apply-match "
            f"--predict-dir {predict_dir} --match results/NAME.json --output-dir {matched}`, then submit "
            f"{matched}) or ship it with --match results/NAME.json; or pass --allow-out-of-range to submit "
            "them anyway (they count nowhere in IoU, as in evaluator.py)")


def _option(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--predict-dir", required=True, type=Path, metavar="DIR",
                        help="predictions: one <wnid>/<name>.png per image of the split (id = R + 256*G), "
                             "nothing else")
    add_mode_argument(parser)
    parser.add_argument("--split", choices=SUBMISSION_SPLITS, default="test",
                        help="which split the predictions cover: test (the benchmark's) or validation "
                             "(to score locally with `imagenets score`)")
    parser.add_argument("--protocol", required=True, choices=list(PROTOCOLS),
                        help="the benchmark protocol: " + protocols_help())
    parser.add_argument("--match", type=Path, default=None, metavar="FILE.json",
                        help="match file (cluster id -> class id) to ship as match.json: the predictions then "
                             "hold cluster ids; expected by fully-unsupervised only")
    parser.add_argument("--matched", action="store_true",
                        help="fully-unsupervised without --match: declare that the predictions already hold "
                             "class ids (not needed for a folder written by `imagenets apply-match`)")
    parser.add_argument("--allow-out-of-range", action="store_true",
                        help="submit predictions holding ids outside 0..K (or outside the match's clusters) "
                             "with a warning instead of refusing them; the server counts them nowhere in IoU")
    parser.add_argument("--images", type=Path, default=None, metavar="DEST/ImageNetS{K}",
                        help="the prepared subset folder: each PNG must then have the size of its image "
                             "<split>/<wnid>/<name>.JPEG")
    for dest, label, text in METHOD_FIELDS:
        parser.add_argument(_option(dest), dest=dest, required=True, metavar="TEXT",
                            help=f"method.txt '{label}': {text}; 'none' or '' is written as null")
    parser.add_argument("-o", "--output", type=Path, default=Path("submission.zip"), metavar="FILE.zip",
                        help="the zip to write (atomically; only when every check passes)")
    parser.add_argument("--check-only", action="store_true", help="run every check, write no zip")
    parser.add_argument("--report", type=Path, default=None, metavar="FILE.json",
                        help="also write the check's result (every problem path, by kind) as JSON")
    add_workers_argument(parser)
    add_meta_argument(parser)
    add_quiet_argument(parser)


def run(args: argparse.Namespace) -> int:
    subset = get_subset(args.mode)
    k = subset.num_classes
    protocol = get_protocol(args.protocol)
    predict_dir: Path = args.predict_dir
    if not predict_dir.is_dir():
        raise UserError(f"--predict-dir {predict_dir} is not a directory: check the path")
    if args.images is not None and not (args.images / args.split).is_dir():
        raise UserError(f"--images {args.images} has no {args.split}/ folder: point it at the prepared "
                        f"DEST/{subset.name} folder, or leave --images out to skip the size check")
    check_outputs({"--output": None if args.check_only else args.output, "--report": args.report},
                  {"--match": args.match}, {"--predict-dir": predict_dir, "--images": args.images})
    mapping = load_match(args.match, k).mapping if args.match is not None else None
    applied = applied_classes(predict_dir)
    if applied is not None and applied != k:
        raise UserError(f"--predict-dir {predict_dir} was matched by apply-match for ImageNetS{applied}, not "
                        f"{subset.name}: check --mode, or rerun apply-match with the right match")
    matched = bool(args.matched or applied)
    for message in match_rule(protocol, mapping is not None, matched):
        warn(message)
    method = method_text({label: getattr(args, dest) for dest, label, _help in METHOD_FIELDS})
    # The protocol is no line of method.txt (the competition the zip goes to decides it): say it here.
    info(f"protocol {protocol.name} ({protocol.title}): upload the zip to that competition", args.quiet)

    meta = load_metadata(args.meta_dir, quiet=args.quiet)
    report = check_submission(predict_dir, subset, meta, args.split, mapping=mapping, images=args.images,
                              workers=args.workers, quiet=args.quiet)
    masks = [mask for _image, mask in split_entries(meta, subset, args.split)]
    allowed = report.problems.pop("out-of-range", []) if args.allow_out_of_range else []
    if args.report is not None:
        write_json_atomic(args.report, {"predict_dir": str(predict_dir), "subset": subset.name,
                                        "split": args.split, "protocol": protocol.name,
                                        "method": method.split("\n"), "expected": len(masks),
                                        "out_of_range_allowed": allowed, **report.as_json()})
    fixes = [report.hint] if report.hint else []
    if "out-of-range" in report.problems:
        fixes.append(out_of_range_fix(predict_dir, mapping is not None))
    report.refuse(f"{predict_dir} is not a valid {subset.name} {args.split} submission "
                  f"({len(masks)} PNGs expected):", "; ".join(fixes + ["fix them and rerun; no zip was written"]))
    if allowed:
        warn(f"{len(allowed)} PNGs hold ids outside {allowed_text(k, mapping)} (--allow-out-of-range; first: "
             f"{', '.join(allowed[:3])}): the server counts those pixels nowhere in IoU")
    if args.check_only:
        info(f"{predict_dir}: every check passed ({len(masks)} PNGs, protocol {protocol.name})", args.quiet)
        return 0
    remove_stale_temporaries(args.output, args.quiet)
    with exit_on_sigterm():
        write_submission_zip(args.output, predict_dir, masks, method,
                             match_to_json(mapping) if mapping is not None else None, quiet=args.quiet)
    info(f"wrote {args.output}: {len(masks)} PNGs, {METHOD_FILE}"
         + (f", {MATCH_FILE}" if mapping is not None else "") + f" (protocol {protocol.name})", args.quiet)
    return 0


COMMAND = Command("submission", "check predictions against a benchmark protocol and write submission.zip",
                  add_arguments, run,
                  description="Check that --predict-dir holds exactly the split's PNGs, each 8-bit RGB with "
                              "allowed ids (0..K, or the cluster ids of --match) and, with --images, the size "
                              "of its image; check the protocol's rules; then write method.txt, match.json "
                              "(if given) and the PNGs to a zip shaped as the official tools make it. Any "
                              "problem: a report and no zip.")

