"""The checks a submission must pass: shared by ``submission`` (before zipping) and ``score`` (after extracting)."""

from __future__ import annotations

import os
import posixpath
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from imagenets.codec import MAX_ID, MAX_PIXELS, open_image, read_mask
from imagenets.errors import UserError, first_few
from imagenets.metadata import Metadata
from imagenets.subsets import SUBMISSION_SPLITS, Subset
from imagenets.walk import walk_files

from imagenets.evaluation.engine.inputs import COLOR_TYPES, png_header
from imagenets.errors import SHOW
from imagenets.evaluation.engine.parallel import map_reduce


#: Kinds of problem in report order, with what a report line says about them.
KINDS: Dict[str, str] = {
    "missing": "expected PNGs are absent",
    "extra": "files are not in the split's list",
    "method": "method.txt problems",
    "match": "match.json problems",
    "not-rgb": "PNGs are not 8-bit RGB/RGBA PNGs",
    "too-large": f"PNGs have more than {MAX_PIXELS:,} pixels",
    "unreadable": "PNGs cannot be decoded",
    "no-reference": "PNGs have no readable image to compare their size with",
    "wrong-size": "PNGs do not have the size of their image",
    "out-of-range": "PNGs hold ids outside the allowed ones",
}


def split_entries(meta: Metadata, subset: Subset, split: str) -> List[Tuple[str, str]]:
    """(image, mask) relative paths of a split: the validation names list, or the test mapping's targets."""
    if split == "validation":
        return meta.validation_names(subset)
    if split == "test":
        return [(image, os.path.splitext(image)[0] + ".png") for image in meta.split_images(subset, "test")]
    raise UserError(f"--split {split!r}: use one of {', '.join(SUBMISSION_SPLITS)}")


def zip_folders(masks: Iterable[str]) -> List[str]:
    """Every folder above the masks (``n01443537``), parents before children: a zip's directory entries."""
    folders = set()
    for mask in masks:
        parent = posixpath.dirname(mask)
        while parent and parent not in folders:
            folders.add(parent)
            parent = posixpath.dirname(parent)
    return sorted(folders)


def split_hint(meta: Metadata, subset: Subset, split: str, present: Iterable[str]) -> str:
    """Which ``--split`` the files fit, when that is another split than ``split`` ("" otherwise)."""
    have = set(present)
    fits = {name: len(have & {mask for _image, mask in split_entries(meta, subset, name)})
            for name in SUBMISSION_SPLITS}
    best = max(SUBMISSION_SPLITS, key=lambda name: fits[name])
    if best == split or fits[best] <= fits[split]:
        return ""
    return (f"the files look like {subset.name} {best} predictions ({fits[best]} of its PNGs are there, "
            f"{fits[split]} of {split}'s): pass --split {best}")


def allowed_ids(num_classes: int, mapping: Optional[Dict[int, int]] = None) -> np.ndarray:
    """Boolean table over every mask id: 0..K, or the ids a match covers (0 and its clusters)."""
    table = np.zeros(MAX_ID + 1, dtype=bool)
    if mapping is None:
        table[:num_classes + 1] = True
    else:
        table[np.fromiter(mapping.keys(), dtype=np.int64, count=len(mapping))] = True
    return table


def allowed_text(num_classes: int, mapping: Optional[Dict[int, int]] = None) -> str:
    return f"0..{num_classes}" if mapping is None else "0 and the cluster ids match.json covers"


@dataclass
class CheckReport:
    """Problems by kind, each a list of ``path (detail)`` strings."""

    problems: Dict[str, List[str]] = field(default_factory=dict)
    labels: Dict[str, str] = field(default_factory=lambda: dict(KINDS))
    hint: str = ""  # a likely cause to name in the refusal (e.g. the split the files fit)

    def add(self, kind: str, item: str) -> None:
        self.problems.setdefault(kind, []).append(item)

    def merge(self, other: "CheckReport") -> None:
        for kind, items in other.problems.items():
            self.problems.setdefault(kind, []).extend(items)

    @property
    def ok(self) -> bool:
        return not self.problems

    def count(self) -> int:
        return sum(len(items) for items in self.problems.values())

    def lines(self, show: int = SHOW) -> List[str]:
        """One line per kind: count, what, and the first few paths."""
        return [f"  {kind}: {len(self.problems[kind])} {self.labels[kind]} (first: "
                f"{first_few(self.problems[kind], show)})" for kind in KINDS if kind in self.problems]

    def as_json(self) -> Dict[str, object]:
        return {"ok": self.ok, "problems": {kind: {"count": len(self.problems[kind]), "what": self.labels[kind],
                                                   "items": self.problems[kind]}
                                            for kind in KINDS if kind in self.problems},
                **({"hint": self.hint} if self.hint else {})}

    def refuse(self, header: str, fix: str) -> None:
        """Print the report on stderr and raise the UserError that ends the command (exit 2)."""
        if self.ok:
            return
        print(header, file=sys.stderr)
        for line in self.lines():
            print(line, file=sys.stderr)
        sys.stderr.flush()
        raise UserError(f"{self.count()} problems of {len(self.problems)} kinds (listed above): {fix}")


def list_files(root: Path, ignore: Collection[str] = ()) -> List[str]:
    """Relative POSIX paths of every non-directory entry under ``root`` (links included), minus ``ignore``."""
    # A link to a folder is not descended into: it is listed as an entry (an extra file).
    return [path for path in walk_files(root, follow_links=False) if path not in ignore]


def check_listing(report: CheckReport, present: Iterable[str], expected: Sequence[str],
                  optional: Collection[str] = ()) -> List[str]:
    """Record missing and extra files; returns the expected names that are present."""
    have = set(present)
    wanted = set(expected)
    for name in expected:
        if name not in have:
            report.add("missing", name)
    for name in sorted(have - wanted - set(optional)):
        report.add("extra", name)
    return [name for name in expected if name in have]


@dataclass(frozen=True)
class PixelItem:
    """One prediction to check: its list name, file, and the file whose size it must have (if any)."""

    name: str
    pred: Path
    reference: Optional[Path] = None


def _image_size(path: Path) -> Tuple[int, int]:
    with open_image(path) as im:  # reads the header only
        return im.size


class _PixelCheck:
    """Worker job: header, size and id checks of a chunk of predictions (picklable)."""

    def __init__(self, allowed: Optional[np.ndarray], reference_what: str):
        self.allowed = allowed
        self.reference_what = reference_what

    def __call__(self, items: Sequence[PixelItem]) -> CheckReport:
        report = CheckReport()
        for item in items:
            self.check(item, report)
        return report

    def check(self, item: PixelItem, report: CheckReport) -> None:
        try:
            width, height, depth, color = png_header(item.pred)
        except UserError:
            report.add("not-rgb", f"{item.name} (not a PNG file)")
            return
        if color not in (2, 6) or depth != 8:
            kind = COLOR_TYPES.get(color, f"colour type {color}")
            report.add("not-rgb", f"{item.name} ({kind}, {depth}-bit)")
            return
        if width * height > MAX_PIXELS:
            report.add("too-large", f"{item.name} ({width}x{height})")
            return
        if item.reference is not None:
            try:
                size = _image_size(item.reference)
            except (OSError, ValueError, SyntaxError, UserError):
                report.add("no-reference", f"{item.name} ({self.reference_what} {item.reference} "
                                           f"is missing or unreadable)")
            else:
                if size != (width, height):
                    report.add("wrong-size", f"{item.name} ({width}x{height}, {self.reference_what} is "
                                             f"{size[0]}x{size[1]})")
        if self.allowed is None:  # the ids are not checked: the pixels are left to the evaluation
            return
        try:
            ids = read_mask(item.pred)
        except UserError:
            report.add("unreadable", f"{item.name} (corrupt PNG data)")
            return
        bad = ~self.allowed[ids]
        if bad.any():
            values = np.unique(ids[bad])
            report.add("out-of-range", f"{item.name} ({int(bad.sum())} pixels, ids {first_few(values)})")


def check_pixels(report: CheckReport, items: Sequence[PixelItem], allowed: Optional[np.ndarray],
                 allowed_label: str = "", reference_what: str = "image", workers: int = 2,
                 quiet: bool = False) -> None:
    """Check every prediction (in parallel) into ``report``: 8-bit RGB, its reference's size and, unless
    ``allowed`` is None (headers only, no decoding), its ids."""
    report.labels["out-of-range"] = f"PNGs hold ids outside {allowed_label}"
    map_reduce(list(items), _PixelCheck(allowed, reference_what), report.merge, workers=workers, quiet=quiet,
               desc="checking predictions")
