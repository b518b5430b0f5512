"""``imagenets prepare``: build ImageNet-S 50/300/919 from an ImageNet-1k copy, safely and resumably.

Everything is planned first (sources checked, conflicts found), then the annotation archives are
fetched and checked; no image is written unless all of that is sound. A rerun completes what is
missing and leaves complete entries alone.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from imagenets.cli import ArgumentParser, Command, add_meta_argument, add_quiet_argument
from imagenets.device import cap_workers
from imagenets.download import check_url
from imagenets.errors import UserError, first_few, info
from imagenets.flags import OUTPUT_DIR, Declared, input_dir, input_file, output_dir, workers
from imagenets.subsets import MODES, RELEASE_URL, Subset, get_subset

from .annotations import AnnotationJob, check_archive, plan_annotations, run_annotations, use_given_archive
from .damage import repair_damaged, split_pairs
from .sources import ImageNetSource
from .steps import IMAGE_STEPS, STEPS, plan_images
from .transfer import DestIndex, Plan, execute

ALL = "all"
ENV_RELEASE_URL = "IMAGENETS_RELEASE_URL"
ENV_SKIP_CHECKSUM = "IMAGENETS_SKIP_CHECKSUM"
DEFAULT_WORKERS = 4
#: Copy threads mostly wait for the disk (or network file system): a few per CPU still help.
COPIES_PER_CPU = 4


def subsets_for(mode: str) -> List[Subset]:
    """The subsets ``--mode`` names (``all`` = 50, 300 and 919)."""
    return [get_subset(m) for m in (MODES if mode == ALL else (mode,))]


def step_names(value: str) -> str:
    """An argparse ``type`` for one ``--steps`` value (``train`` or ``train,validation``)."""
    unknown = {part.strip() for part in value.split(",") if part.strip()} - set(STEPS) - {ALL}
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown step {', '.join(sorted(unknown))}; use any of "
                                         f"{', '.join(STEPS)} (or all)")
    return value


def parse_steps(values: Optional[Sequence[str]]) -> List[str]:
    """``--steps train validation`` or ``--steps train,validation`` (``all`` = every step, each value checked
    by :func:`step_names`), in run order."""
    if not values:
        return list(STEPS)
    wanted = {part.strip() for value in values for part in value.split(",") if part.strip()}
    return list(STEPS) if ALL in wanted else [s for s in STEPS if s in wanted]


def add_target_arguments(parser: argparse.ArgumentParser, imagenet_required: bool = False) -> None:
    """``--imagenet-dir``, ``--save-dir``, ``--mode`` and ``--copy``: what every entry point takes."""
    input_dir(parser, "--imagenet-dir", type=str, required=imagenet_required, metavar="IMAGENET",
              help="ImageNet-1k folder holding train/<wnid>/ and val/ (val as class folders "
                   "or flat: detected); needed by every step but annotations")
    output_dir(parser, "--save-dir", type=str, required=True, metavar="DEST", managed=True,
               help="where DEST/ImageNetS{50,300,919}/ is built (outside --imagenet-dir)")
    parser.add_argument("--mode", required=True, choices=MODES + (ALL,), metavar="{50,300,919,all}",
                        help="ImageNet-S subset to build; all = 50, 300 and 919 in one run")
    parser.add_argument("--copy", action="store_true",
                        help="copy the train images instead of linking the class folders "
                             "(validation, test and train-semi are always copied)")


def add_arguments(parser: argparse.ArgumentParser, with_steps: bool = True) -> None:
    add_target_arguments(parser)
    parser.add_argument("--workers", type=workers(), default=DEFAULT_WORKERS, metavar="N",
                        help="threads copying files (0 or 1 = copy in the main thread)")
    if with_steps:
        parser.add_argument("--steps", nargs="+", type=step_names, metavar="STEP",
                            help=f"steps to run, space- or comma-separated: {', '.join(STEPS)} "
                                 "(none given: all of them)")
    input_file(parser, "--annotations-zip", type=str, action="append", default=[], metavar="FILE",
               help="use this annotation archive (fetched elsewhere) instead of downloading "
                    "ImageNetS{K}-<md5>.zip into DEST; repeat it for --mode all")
    parser.add_argument("--release-url", default=os.environ.get(ENV_RELEASE_URL) or RELEASE_URL,
                        metavar="BASE", help=f"address the annotation archives are downloaded from "
                                             f"(BASE/ImageNetS{{K}}-<md5>.zip; env ${ENV_RELEASE_URL})")
    parser.add_argument("--skip-checksum", action="store_true",
                        default=os.environ.get(ENV_SKIP_CHECKSUM, "") == "1",
                        help="use an annotation archive whose MD5 differs from the official one "
                             f"(env {ENV_SKIP_CHECKSUM}=1); its CRCs are still tested")
    parser.add_argument("--dry-run", action="store_true",
                        help="check sources and the destination, say what would be done, write nothing")
    parser.add_argument("--deep", action="store_true",
                        help="also read what is already there as `imagenets verify --deep` does (masks decoded, "
                             "image headers read, sizes compared) and replace every damaged file; without it a "
                             "copy whose size differs from its source's and an empty mask are replaced")
    add_meta_argument(parser)
    add_quiet_argument(parser)


def _refuse(plans: Sequence[Plan]) -> None:
    """UserError (nothing written yet) if a step lacks sources or meets conflicting entries."""
    for plan in plans:
        if plan.missing:
            raise UserError(f"{plan.label}: {len(plan.missing)} {plan.missing_what} are missing, "
                            f"e.g. {first_few(plan.missing, 3, sep='; ', counted=True)}; check --imagenet-dir (nothing was "
                            "written)")
    conflicts = [c for plan in plans for c in plan.conflicts]
    if conflicts:
        raise UserError(f"{len(conflicts)} existing entries conflict with what this run would create "
                        f"({first_few(conflicts, 3, sep='; ', counted=True)}); nothing was overwritten: move or remove them "
                        "and rerun")


def make_plans(args: argparse.Namespace, steps: Sequence[str], meta,
               dest: DestIndex) -> Tuple[List[Plan], List[AnnotationJob]]:
    """Plan every step for every subset, without writing anything."""
    save_dir = os.path.abspath(os.path.expanduser(args.save_dir))
    source = None
    if any(step in IMAGE_STEPS for step in steps):
        if not args.imagenet_dir:
            needing = ", ".join(s for s in steps if s in IMAGE_STEPS)
            raise UserError(f"--imagenet-dir is required for the {needing} step(s): point it at the "
                            "ImageNet-1k folder that holds train/ and val/")
        source = ImageNetSource(args.imagenet_dir)
    plans: List[Plan] = []
    jobs: List[AnnotationJob] = []
    for subset in subsets_for(args.mode):
        out = os.path.join(save_dir, subset.name)
        for step in steps:
            if step == "annotations":
                jobs.append(plan_annotations(subset, meta, save_dir, dest, args.release_url, args.skip_checksum))
                plans.append(jobs[-1].plan)
            else:
                plans.append(plan_images(step, subset, meta, source, out, args.copy, dest))
            plans[-1].step = step
        pairs = split_pairs(subset, meta, out) if args.deep else []
        repair_damaged(plans[-len(steps):], pairs, args.deep, args.workers, args.quiet)
    for job in jobs:
        use_given_archive(job, args.annotations_zip)
    return plans, jobs


def declare(args: argparse.Namespace, declared: Declared) -> None:
    """Each subset folder DEST/ImageNetS{K} must be writable too (a read-only one is refused before any work)."""
    for subset in subsets_for(args.mode):
        label = f"--save-dir's {subset.name}"
        declared.add(OUTPUT_DIR, label, os.path.join(os.path.expanduser(args.save_dir), subset.name))
        declared.managed.append(Path(os.path.expanduser(args.save_dir), subset.name))


def report_line(plan: Plan, created: int, dry_run: bool) -> str:
    repairs = f" ({plan.repairs} of them over damaged files)" if plan.repairs else ""
    if dry_run:
        return f"{plan.label}: {plan.todo} to create{repairs}, {plan.present} already present"
    return f"{plan.label}: {created} created{repairs}, {plan.present} already present"


def run(args: argparse.Namespace, steps: Optional[Sequence[str]] = None) -> int:
    """Plan all, refuse on missing sources or conflicts, check the archives, then carry out step by step."""
    from imagenets.metadata import load_metadata

    steps = list(steps) if steps is not None else parse_steps(getattr(args, "steps", None))
    args.workers = cap_workers(args.workers, args.quiet, per_cpu=COPIES_PER_CPU)
    if "annotations" in steps:
        check_url("--release-url", args.release_url)
    meta = load_metadata(meta_dir=args.meta_dir, quiet=args.quiet)
    dest = DestIndex()
    plans, jobs = make_plans(args, steps, meta, dest)
    notes = dict.fromkeys(note for plan in plans for note in plan.notes)
    for note in notes:
        info(note, args.quiet)
    _refuse(plans)
    # The archives are fetched (into DEST) and checked now, so that a bad or missing one stops the
    # run before the first image is copied, not after all of them.
    for job in jobs:
        note = check_archive(job, args.quiet, dry_run=args.dry_run)
        if note:
            info(note, args.quiet)
    if not args.dry_run:
        for path in dest.leftovers:
            # Temporary files of an interrupted run: never complete, so never kept.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    by_plan = {id(job.plan): job for job in jobs}
    for plan in plans:
        created = 0
        if not args.dry_run:
            job = by_plan.get(id(plan))
            created = run_annotations(job, args.quiet) if job else execute(plan, args.workers,
                                                                           args.quiet)
        if not args.quiet:
            print(report_line(plan, created, args.dry_run), flush=True)
    return 0


COMMAND = Command(
    name="prepare",
    help="build ImageNet-S 50/300/919 (train, validation, test, train-semi, masks) from ImageNet-1k",
    add_arguments=add_arguments,
    run=run,
    declare=declare,
    description="Build DEST/ImageNetS{K}/ from an ImageNet-1k copy: train (class links, or copies "
                "with --copy), validation/test (copied per the mapping lists), train-semi, and the "
                "official masks. Sources and conflicts are checked before anything is written, and the "
                "annotation archive (downloaded into DEST, or --annotations-zip) is checked (MD5, "
                "CRCs, every listed mask) before any image is copied; a rerun completes an "
                "interrupted run and changes nothing once all is complete.")


def step_script_main(steps: Sequence[str], argv: Optional[Sequence[str]] = None) -> int:
    """The ``datapreparation_*.py`` scripts: the prepare options, for fixed steps."""
    parser = ArgumentParser(
        prog=os.path.basename(sys.argv[0]),
        description=f"Run the {', '.join(steps)} step(s) of `imagenets prepare`.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(parser, with_steps=False)
    args = parser.parse_args(argv)
    args.steps = list(steps)
    return COMMAND.execute(parser, args)
