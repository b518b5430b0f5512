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
import zipfile
from pathlib import Path
from typing import Dict, Optional, Sequence

from imagenets.cli import Command, add_meta_argument, add_mode_argument, add_quiet_argument, add_workers_argument
from imagenets.errors import UserError, first_few, info, warn
from imagenets.fileio import archive_stream, atomic_path, read_json, write_json_atomic
from imagenets.flags import Declared, input_dir, input_file, output_file
from imagenets.metadata import Metadata, load_metadata
from imagenets.progress import progress
from imagenets.subsets import SUBMISSION_SPLITS, Subset, get_subset

from imagenets.evaluation.engine.matchfile import load_match, match_to_json
from imagenets.evaluation.engine.report import OFFICIAL_LISTS
from imagenets.evaluation.protocols.rules import (APPLIED_MARKER, MATCH_FILE, METHOD_FIELDS, METHOD_FILE, PROTOCOLS,
                                                  get_protocol, match_rule, method_text, protocols_help)
from imagenets.evaluation.protocols.checks import (CheckReport, PixelItem, allowed_ids, allowed_text,
                                                   check_listing, check_pixels, list_files, split_entries,
                                                   split_hint, zip_folders)

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
    with atomic_path(output) as tmp, archive_stream(tmp) as stream:
        with zipfile.ZipFile(stream, "w", allowZip64=True) as archive:
            for folder in zip_folders(masks):
                archive.write(predict_dir / folder, folder + "/")
            archive.writestr(METHOD_FILE, method, compress_type=zipfile.ZIP_DEFLATED)
            if match_obj is not None:
                archive.writestr(MATCH_FILE, json.dumps(match_obj, indent=1) + "\n",
                                 compress_type=zipfile.ZIP_DEFLATED)
            # PNGs are deflate-compressed already: deflating them again gains a few bytes at a large CPU cost.
            for mask in progress(masks, desc="zipping", quiet=quiet, unit="img"):
                archive.write(predict_dir / mask, mask, compress_type=zipfile.ZIP_STORED)


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
    input_dir(parser, "--predict-dir", required=True, metavar="DIR",
              help="predictions: one <wnid>/<name>.png per image of the split (id = R + 256*G), nothing else")
    add_mode_argument(parser)
    parser.add_argument("--split", choices=SUBMISSION_SPLITS, default="test",
                        help="which split the predictions cover: test (the benchmark's) or validation "
                             "(to score locally with `imagenets score`)")
    parser.add_argument("--protocol", required=True, choices=list(PROTOCOLS),
                        help="the benchmark protocol: " + protocols_help())
    input_file(parser, "--match", default=None, metavar="FILE.json",
               help="match file (cluster id -> class id) to ship as match.json: the predictions then "
                    "hold cluster ids; expected by fully-unsupervised only")
    parser.add_argument("--matched", action="store_true",
                        help="fully-unsupervised without --match: declare that the predictions already hold "
                             "class ids (not needed for a folder written by `imagenets apply-match`)")
    parser.add_argument("--allow-out-of-range", action="store_true",
                        help="submit predictions holding ids outside 0..K (or outside the match's clusters) "
                             "with a warning instead of refusing them; the server counts them nowhere in IoU")
    input_dir(parser, "--images", default=None, metavar="DEST/ImageNetS{K}",
              help="the prepared subset folder: each PNG must then have the size of its image "
                   "<split>/<wnid>/<name>.JPEG")
    for dest, label, text in METHOD_FIELDS:
        parser.add_argument(_option(dest), dest=dest, required=True, metavar="TEXT",
                            help=f"method.txt '{label}': {text}; 'none' or '' is written as null")
    output_file(parser, "-o", "--output", default=Path("submission.zip"), metavar="FILE.zip",
                help="the zip to write (atomically; only when every check passes)")
    parser.add_argument("--check-only", action="store_true", help="run every check, write no zip")
    output_file(parser, "--report", default=None, metavar="FILE.json",
                help="also write the check's result (every problem path, by kind) as JSON")
    add_workers_argument(parser)
    add_meta_argument(parser)
    add_quiet_argument(parser)


def run(args: argparse.Namespace) -> int:
    build_submission(args.predict_dir, get_subset(args.mode), args.protocol,
                     {dest: getattr(args, dest) for dest, _label, _help in METHOD_FIELDS}, args.output,
                     split=args.split, match=args.match, matched=args.matched, images=args.images,
                     check_only=args.check_only, report=args.report, meta_dir=args.meta_dir,
                     workers=args.workers, quiet=args.quiet, allow_out_of_range=args.allow_out_of_range)
    return 0


def build_submission(predict_dir: Path, subset: Subset, protocol_name: str, method: Dict[str, str],
                     output: Path, split: str = "test", match: Optional[Path] = None, matched: bool = False,
                     images: Optional[Path] = None, check_only: bool = False, report: Optional[Path] = None,
                     meta: Optional[Metadata] = None, meta_dir: Optional[str] = None, workers: int = 2,
                     quiet: bool = False, allow_out_of_range: bool = False) -> None:
    """``imagenets submission`` as a function: check ``predict_dir`` and write the zip ``output``.

    ``method`` holds the method.txt fields by option name (method_name, train_data, ...); ``meta``
    is loaded from ``meta_dir`` when not given. Any problem raises UserError and writes no zip.
    """
    k = subset.num_classes
    protocol = get_protocol(protocol_name)
    if not predict_dir.is_dir():
        raise UserError(f"--predict-dir {predict_dir} is not a directory: check the path")
    if images is not None and not (images / split).is_dir():
        raise UserError(f"--images {images} has no {split}/ folder: point it at the prepared "
                        f"DEST/{subset.name} folder, or leave --images out to skip the size check")
    mapping = load_match(match, k).mapping if match is not None else None
    applied = applied_classes(predict_dir)
    if applied is not None and applied != k:
        raise UserError(f"--predict-dir {predict_dir} was matched by apply-match for ImageNetS{applied}, not "
                        f"{subset.name}: check --mode, or rerun apply-match with the right match")
    for message in match_rule(protocol, mapping is not None, bool(matched or applied)):
        warn(message)
    text = method_text({label: method[dest] for dest, label, _help in METHOD_FIELDS})  # a bad field fails fast
    # The protocol is no line of method.txt (the competition the zip goes to decides it): say it here.
    info(f"protocol {protocol.name} ({protocol.title}): upload the zip to that competition", quiet)

    if meta is None:
        meta = load_metadata(meta_dir, quiet=quiet)
    checked = check_submission(predict_dir, subset, meta, split, mapping=mapping, images=images,
                               workers=workers, quiet=quiet)
    masks = [mask for _image, mask in split_entries(meta, subset, split)]
    allowed = checked.problems.pop("out-of-range", []) if allow_out_of_range else []
    if report is not None:
        write_json_atomic(report, {"predict_dir": str(predict_dir), "subset": subset.name,
                                   "split": split, "protocol": protocol.name,
                                   "method": text.split("\n"), "expected": len(masks),
                                   "out_of_range_allowed": allowed, OFFICIAL_LISTS: meta.official,
                                   **checked.as_json()})
    fixes = [checked.hint] if checked.hint else []
    if "out-of-range" in checked.problems:
        fixes.append(out_of_range_fix(predict_dir, mapping is not None))
    checked.refuse(f"{predict_dir} is not a valid {subset.name} {split} submission "
                   f"({len(masks)} PNGs expected):", "; ".join(fixes + ["fix them and rerun; no zip was written"]))
    if allowed:
        warn(f"{len(allowed)} PNGs hold ids outside {allowed_text(k, mapping)} (--allow-out-of-range; first: "
             f"{first_few(allowed, 3)}): the server counts those pixels nowhere in IoU")
    if check_only:
        info(f"{predict_dir}: every check passed ({len(masks)} PNGs, protocol {protocol.name})", quiet)
        return
    write_submission_zip(output, predict_dir, masks, text,
                         match_to_json(mapping) if mapping is not None else None, quiet=quiet)
    info(f"wrote {output}: {len(masks)} PNGs, {METHOD_FILE}"
         + (f", {MATCH_FILE}" if mapping is not None else "") + f" (protocol {protocol.name})", quiet)


def declare(args: argparse.Namespace, declared: Declared) -> None:
    if args.check_only:  # no zip is written
        declared.drop("--output")


COMMAND = Command("submission", "check predictions against a benchmark protocol and write submission.zip",
                  add_arguments, run, declare=declare,
                  description="Check that --predict-dir holds exactly the split's PNGs, each 8-bit RGB with "
                              "allowed ids (0..K, or the cluster ids of --match) and, with --images, the size "
                              "of its image; check the protocol's rules; then write method.txt, match.json "
                              "(if given) and the PNGs to a zip shaped as the official tools make it. Any "
                              "problem: a report and no zip.")

