"""``imagenets verify``: check a prepared ImageNet-S tree against the official lists, split by split."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

from imagenets.cli import Command, add_meta_argument, add_quiet_argument, add_workers_argument
from imagenets.device import cap_workers
from imagenets.errors import UserError, info
from imagenets.names import shown
from imagenets.flags import input_dir
from imagenets.progress import progress
from imagenets.subsets import MASK_FOLDERS, MODES, Subset, subset_folder

from .prepare import ALL, subsets_for
from .sources import FileIndex, ImageNetSource
from .steps import train_groups
from .damage import inspect_pairs
from .transfer import EXAMPLES

EXIT_PROBLEMS = 1
COLUMNS = ("expected", "present", "missing", "broken", "extra")
CHECKS = {"presence": "names and links only (a 0-byte or corrupt file counts as present; --deep reads them)",
          "deep": "names and links, every mask decoded, every image's header read and its size compared "
                  "with its mask's (train: names only)"}


@dataclass
class SplitCheck:
    """Counts for one split folder; ``examples`` names the first few problems."""

    split: str
    expected: int = 0
    present: int = 0
    missing: int = 0
    broken: int = 0
    extra: int = 0
    note: str = ""
    examples: List[str] = field(default_factory=list)

    @property
    def problems(self) -> int:
        return self.missing + self.broken + self.extra

    def flag(self, column: str, path: str, count: int = 1) -> None:
        setattr(self, column, getattr(self, column) + count)
        if len(self.examples) < EXAMPLES:
            self.examples.append(f"{column}: {path}")


def _entries(folder: str) -> Dict[str, bool]:
    """name -> whether it is a link whose target is gone, for everything in ``folder``."""
    found = {}
    try:
        with os.scandir(folder) as it:
            for entry in it:
                found[entry.name] = entry.is_symlink() and not os.path.exists(entry.path)
    except (FileNotFoundError, NotADirectoryError):
        pass
    return found


def _compare(check: SplitCheck, folder: str, wanted: Optional[FrozenSet[str]]) -> None:
    """Count ``folder``'s files against ``wanted`` names (None: any file counts as present)."""
    have = _entries(folder)
    for name, dangling in have.items():
        path = os.path.join(folder, name)
        if dangling:
            check.flag("broken", path)
        elif wanted is None or name in wanted:
            check.present += 1
        else:
            check.flag("extra", path)
    for name in sorted(wanted or ()):
        if name not in have:
            check.flag("missing", os.path.join(folder, name))


def check_listed(split: str, folder: str, rels: Sequence[str]) -> SplitCheck:
    """A split whose files the lists name (``wnid/file`` relative to ``folder``)."""
    check = SplitCheck(split, expected=len(rels))
    by_class: Dict[str, set] = {}
    for rel in rels:
        wnid, _, name = rel.rpartition("/")
        by_class.setdefault(wnid, set()).add(name)
    for wnid, names in sorted(by_class.items()):
        _compare(check, os.path.join(folder, wnid), frozenset(names))
    for name in _entries(folder):
        if name not in by_class:
            check.flag("extra", os.path.join(folder, name))
    return check


def find_train_source(out: str, imagenet_dir: Optional[str]) -> Optional[str]:
    """ImageNet's train folder: from ``--imagenet-dir``, else from the links prepare made."""
    if imagenet_dir:
        return ImageNetSource(imagenet_dir).train
    full = os.path.join(out, "train-full")
    if os.path.islink(full):
        return os.readlink(full)
    folder = os.path.join(out, "train")
    for name in sorted(_entries(folder)):
        path = os.path.join(folder, name)
        if os.path.islink(path):
            return os.path.dirname(os.readlink(path))
    return None


def check_train(subset: Subset, meta, out: str, source: Optional[str], quiet: bool) -> SplitCheck:
    """Every class folder of the subset, file by file against the ImageNet source when it is known."""
    folder = os.path.join(out, "train")
    groups = train_groups(subset, meta.categories(subset))
    check = SplitCheck("train")
    index = FileIndex()
    for wnid in progress(groups, desc=f"{subset.name} train", quiet=quiet, unit="class"):
        path = os.path.join(folder, wnid)
        wanted = None
        if source is not None:
            wanted = frozenset(n for w in groups[wnid] for n in index.files(os.path.join(source, w)))
            check.expected += len(wanted)
        if not os.path.lexists(path):
            check.flag("missing", path, len(wanted) if wanted is not None else 0)
        elif not os.path.exists(path):
            check.flag("broken", path)
            check.missing += len(wanted or ())
        elif (source is not None and len(groups[wnid]) == 1
              and os.path.realpath(path) == os.path.realpath(os.path.join(source, wnid))):
            check.present += len(wanted)  # the link prepare makes: nothing to list
        else:
            _compare(check, path, wanted)
    for name in _entries(folder):
        if name not in groups:
            check.flag("extra", os.path.join(folder, name))
    if source is None:
        check.expected = subset.train
        check.missing += max(0, subset.train - check.present)
        check.note = "official count: pass --imagenet-dir to compare file by file"
    return check


def check_deep(image_check: SplitCheck, image_dir: str, mask_check: Optional[SplitCheck],
               mask_dir: Optional[str], pairs: Sequence[Tuple[str, Optional[str]]], workers: int,
               quiet: bool) -> None:
    """Read every present (image, mask) of a split: damaged files move from present to broken."""
    paths = [(os.path.join(image_dir, image), os.path.join(mask_dir, mask) if mask is not None and mask_dir else None)
             for image, mask in pairs]
    for problems in inspect_pairs(paths, workers, quiet, f"reading {image_check.split}"):
        for kind, path, why in problems:
            check = image_check if kind == "image" else mask_check
            check.present -= 1
            check.flag("broken", f"{path} ({why})")


def check_link(split: str, path: str) -> SplitCheck:
    """One link that must lead to a folder (919's ``train-full``)."""
    check = SplitCheck(split, expected=1)
    if not os.path.lexists(path):
        check.flag("missing", path)
    elif not os.path.isdir(path):
        check.flag("broken", path)
    else:
        check.present = 1
    return check


def verify_subset(subset: Subset, meta, dest: str, imagenet_dir: Optional[str],
                  quiet: bool, deep: bool = False, workers: int = 2) -> Dict[str, object]:
    """All checks of one prepared subset, as a JSON-ready dict."""
    found = subset_folder(dest, subset)  # DEST, or the ImageNetS{K} folder itself
    if found is None:
        raise UserError(f"{os.path.join(dest, subset.name)} not found: pass the --save-dir used with "
                        f"`imagenets prepare` (the folder holding {subset.name}/), or prepare it first")
    out = str(found)
    source = find_train_source(out, imagenet_dir)
    validation = meta.validation_names(subset)
    semi = meta.train_semi_names(subset)
    checks = [check_train(subset, meta, out, source, quiet)]
    if subset.merged:
        checks.append(check_link("train-full", os.path.join(out, "train-full")))
    checks += [
        check_listed("train-semi", os.path.join(out, "train-semi"), [i for i, _ in semi]),
        check_listed(MASK_FOLDERS["train-semi"], os.path.join(out, MASK_FOLDERS["train-semi"]),
                     [m for _, m in semi]),
        check_listed("validation", os.path.join(out, "validation"),
                     meta.split_images(subset, "validation")),
        check_listed(MASK_FOLDERS["validation"], os.path.join(out, MASK_FOLDERS["validation"]),
                     [m for _, m in validation]),
        check_listed("test", os.path.join(out, "test"), meta.split_images(subset, "test")),
    ]
    if deep:
        by_split = {c.split: c for c in checks}
        for images, masks, pairs in (
                ("train-semi", MASK_FOLDERS["train-semi"], semi), ("validation", MASK_FOLDERS["validation"], validation),
                ("test", None, [(image, None) for image in meta.split_images(subset, "test")])):
            check_deep(by_split[images], os.path.join(out, images), by_split.get(masks),
                       os.path.join(out, masks) if masks else None, pairs, workers, quiet)
    return {"subset": subset.name, "root": out, "train_source": source, "check": "deep" if deep else "presence",
            "ok": not any(c.problems for c in checks), "splits": [asdict(c) for c in checks]}


def render(result: Dict[str, object]) -> str:
    """The table of one subset's checks."""
    lines = [f"{result['subset']} ({result['root']}); checked: {CHECKS[str(result['check'])]}",
             f"{'split':<26}" + "".join(f"{c:>10}" for c in COLUMNS)]
    notes = []
    for row in result["splits"]:
        lines.append(f"{row['split']:<26}" + "".join(f"{row[c]:>10}" for c in COLUMNS))
        notes += [f"  {row['split']}: {shown(example)}" for example in row["examples"]]  # names from disk
        if row["note"]:
            notes.append(f"  {row['split']}: {row['note']}")
    return "\n".join(lines + notes)


def verdict(result: Dict[str, object]) -> str:
    if result["ok"]:
        return f"{result['subset']}: complete"
    totals = {c: sum(row[c] for row in result["splits"]) for c in ("missing", "broken", "extra")}
    counts = ", ".join(f"{v} {k}" for k, v in totals.items() if v)
    # prepare replaces what this check flags; damaged files found by reading them need its --deep too (a
    # link whose target is gone needs the ImageNet folder back: prepare says so)
    deep = " plus --deep" if totals["broken"] and result["check"] == "deep" else ""
    return (f"{result['subset']}: NOT complete ({counts}): rerun `imagenets prepare` with the same "
            f"options{deep} to complete and repair it; remove extra entries by hand")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    input_dir(parser, "dest", type=str, metavar="DEST",
              help="the --save-dir given to prepare (holding ImageNetS{K}/)")
    parser.add_argument("--mode", required=True, choices=MODES + (ALL,), metavar="{50,300,919,all}",
                        help="subset to check; all = 50, 300 and 919")
    input_dir(parser, "--imagenet-dir", type=str, default=None, metavar="IMAGENET",
              help="ImageNet-1k folder, to count train's expected images file by file; by "
                   "default taken from train's class links, and for a --copy tree without "
                   "this option train is compared with the official image count")
    parser.add_argument("--json", action="store_true",
                        help="print the results as JSON on stdout instead of tables")
    parser.add_argument("--deep", action="store_true",
                        help="also decode every mask and read every image's header, comparing each image's "
                             "size with its mask's (by default only names and links are checked)")
    add_workers_argument(parser)
    add_meta_argument(parser)
    add_quiet_argument(parser)


def run(args: argparse.Namespace) -> int:
    from imagenets.metadata import load_metadata

    meta = load_metadata(meta_dir=args.meta_dir, quiet=args.quiet)
    dest = os.path.abspath(os.path.expanduser(args.dest))
    workers = cap_workers(args.workers, args.quiet)
    results = [verify_subset(s, meta, dest, args.imagenet_dir, args.quiet, args.deep, workers)
               for s in subsets_for(args.mode)]
    if args.json:
        print(json.dumps(results, indent=1))
    for result in results:
        if not args.json and not args.quiet:
            print(render(result) + "\n" + verdict(result) + "\n", flush=True)
        elif not result["ok"]:
            info(verdict(result))
    return 0 if all(r["ok"] for r in results) else EXIT_PROBLEMS


COMMAND = Command(
    name="verify",
    help="check a prepared ImageNet-S tree against the official lists (exit 1 on any problem)",
    add_arguments=add_arguments,
    run=run,
    description="Print, per split, how many files the lists expect, how many are present, missing, "
                "broken links and extra entries; exit 1 if anything is missing, broken or extra.")
