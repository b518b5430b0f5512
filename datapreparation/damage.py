"""Damaged files of a prepared tree: what ``verify --deep`` flags is what ``prepare`` replaces.

Cheap checks run on every ``prepare`` (a copy whose size differs from its source's, an empty mask);
``--deep`` reads them as ``verify --deep`` does (every mask decoded, every image's header read, each image's
size compared with its mask's).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, List, Optional, Sequence, Set, Tuple

from imagenets.errors import UserError
from imagenets.progress import progress
from imagenets.subsets import MASK_FOLDERS, Subset

from .transfer import Plan

#: A problem found: ("image" or "mask", its path, why).
Problem = Tuple[str, str, str]


def inspect_pair(image: str, mask: Optional[str]) -> List[Problem]:
    """Problems of one present image (and its mask)."""
    from imagenets.codec import open_image, read_mask  # numpy and Pillow: a plain prepare run needs neither

    problems: List[Problem] = []
    size = None
    if os.path.isfile(image):
        try:
            with open_image(image) as photo:
                size = photo.size
        except (OSError, ValueError, SyntaxError, UserError):
            problems.append(("image", image, "not a readable image"))
    if mask is not None and os.path.isfile(mask):
        try:
            ids = read_mask(mask)
        except UserError:
            problems.append(("mask", mask, "not a decodable RGB PNG mask"))
        else:
            if size is not None and size != (ids.shape[1], ids.shape[0]):
                problems.append(("mask", mask, f"{ids.shape[1]}x{ids.shape[0]}, its image is {size[0]}x{size[1]}"))
    return problems


def inspect_pairs(pairs: Sequence[Tuple[str, Optional[str]]], workers: int, quiet: bool,
                  desc: str) -> Iterable[List[Problem]]:
    """:func:`inspect_pair` of every pair, on ``workers`` threads (the decoders release the GIL)."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        yield from progress(pool.map(lambda pair: inspect_pair(*pair), pairs), total=len(pairs), desc=desc,
                            quiet=quiet, unit="img")


def split_pairs(subset: Subset, meta, out: str) -> List[Tuple[str, Optional[str]]]:
    """(image, mask) paths of every listed file of the subset folder ``out`` that has a mask or a header."""
    pairs: List[Tuple[str, Optional[str]]] = []
    for split, names in (("validation", meta.validation_names(subset)), ("train-semi", meta.train_semi_names(subset))):
        pairs += [(os.path.join(out, split, image), os.path.join(out, MASK_FOLDERS[split], mask))
                  for image, mask in names]
    pairs += [(os.path.join(out, "test", image), None) for image in meta.split_images(subset, "test")]
    return pairs


def _wrong_size(source: str, path: str) -> bool:
    try:
        return os.path.getsize(path) != os.path.getsize(source)
    except OSError:
        return False  # a source gone: the plan reports it, nothing to compare


def _empty(path: str) -> bool:
    try:
        return os.path.getsize(path) == 0
    except OSError:
        return False


def repair_damaged(plans: Sequence[Plan], pairs: Sequence[Tuple[str, Optional[str]]], deep: bool, workers: int,
                   quiet: bool) -> int:
    """Plan a new copy (or extraction) of every present file of ``plans`` found damaged: a copy of another
    size than its source or an empty mask always; with ``deep``, also every file ``verify --deep`` flags
    among ``pairs``. Returns how many."""
    damaged: Set[str] = set()
    for plan in plans:
        if plan.step == "annotations":  # the source is an archive entry: an empty mask is the cheap sign
            damaged |= {path for _entry, path in plan.kept if _empty(path)}
        elif plan.step != "train" or deep:  # a --copy train tree holds 1.2 million files: compared with --deep
            damaged |= {path for source, path in plan.kept if _wrong_size(source, path)}
    if deep:
        present = {path for plan in plans for _source, path in plan.kept}
        wanted = [(image, mask) for image, mask in pairs if image in present or mask in present]
        for problems in inspect_pairs(wanted, workers, quiet, "reading what is there"):
            damaged |= {path for _kind, path, _why in problems}
    return sum(plan.repair(damaged) for plan in plans)
