"""The image steps of preparing one subset: train, validation, test and train-semi, as plans."""

from __future__ import annotations

import os
from typing import Dict, List, Tuple

from imagenets.metadata import train_semi_source
from imagenets.subsets import Subset

from .sources import LAYOUT_TEXT, ImageNetSource
from .transfer import DestIndex, Plan, add_dir, add_files, add_link

#: Every step, in the order a full run does them.
STEPS = ("train", "validation", "test", "train-semi", "annotations")
IMAGE_STEPS = STEPS[:4]


def train_groups(subset: Subset, categories: List[str]) -> Dict[str, List[str]]:
    """Destination class -> the ImageNet classes whose images it holds (two for 919's merged ones)."""
    groups = {wnid: [wnid] for wnid in categories}
    for source, into in subset.merged.items():
        if into in groups:
            groups[into].append(source)
    return groups


def plan_train(subset: Subset, meta, source: ImageNetSource, out: str, copy: bool,
               dest: DestIndex) -> Plan:
    """A link (or, with --copy, a folder of copies) per class; merged classes are real folders."""
    plan = Plan(f"{subset.name} train", missing_what="class folders")
    source.require("train", "train")
    groups = train_groups(subset, meta.categories(subset))
    plan.missing = [source.train_class(w) for ws in groups.values() for w in ws
                    if not os.path.isdir(source.train_class(w))]
    if plan.missing:
        return plan
    folder = os.path.join(out, "train")
    if not split_folder_ok(plan, folder):
        return plan
    redo = " (was this tree prepared without --copy? remove it or rerun without --copy)" if copy else ""
    for wnid, wnids in groups.items():
        target = os.path.join(folder, wnid)
        if len(wnids) == 1 and not copy:
            add_link(plan, dest, source.train_class(wnid), target)
            continue
        if not add_dir(plan, dest, target, redo):
            continue
        pairs = [(os.path.join(source.train_class(w), name), os.path.join(target, name))
                 for w in wnids for name in sorted(source.index.files(source.train_class(w)))]
        add_files(plan, dest, pairs, link=not copy)
    if subset.merged:
        # ImageNet-S919 also offers the whole ImageNet train set, as the original does.
        add_link(plan, dest, source.train, os.path.join(out, "train-full"))
    return plan


def split_folder_ok(plan: Plan, path: str) -> bool:
    """A split folder may be absent, a folder, or a link to one (e.g. on another disk)."""
    if os.path.lexists(path) and not os.path.isdir(path):
        plan.conflicts.append(f"{path} is in the way: it is not a folder (nor a link to one)")
        return False
    return True


def _copies(plan: Plan, dest: DestIndex, pairs: List[Tuple[str, str]], folder: str) -> Plan:
    if not plan.missing and split_folder_ok(plan, folder):
        add_files(plan, dest, pairs, link=False)
    return plan


def plan_mapped(subset: Subset, split: str, meta, source: ImageNetSource, out: str,
                dest: DestIndex) -> Plan:
    """Copies of ImageNet val images per the ``validation``/``test`` mapping list (``src dst``)."""
    plan = Plan(f"{subset.name} {split}", missing_what="source images")
    source.require("val", split)
    plan.notes.append(f"validation source layout: {LAYOUT_TEXT[source.val_layout]}")
    pairs = []
    for src_rel, dst_rel in meta.mapping(subset, split):
        path = source.val_file(src_rel)
        if path is None:
            plan.missing.append(os.path.join(source.val, src_rel))
        else:
            pairs.append((path, os.path.join(out, split, dst_rel)))
    return _copies(plan, dest, pairs, os.path.join(out, split))


def plan_train_semi(subset: Subset, meta, source: ImageNetSource, out: str, dest: DestIndex) -> Plan:
    """Copies of the listed train images; each comes from the class its file name starts with."""
    plan = Plan(f"{subset.name} train-semi", missing_what="source images")
    source.require("train", "train-semi")
    pairs = []
    for image_rel, _ in meta.train_semi_names(subset):
        path, found = source.train_file(*train_semi_source(image_rel))
        if found:
            pairs.append((path, os.path.join(out, "train-semi", image_rel)))
        else:
            plan.missing.append(path)
    return _copies(plan, dest, pairs, os.path.join(out, "train-semi"))


def plan_images(step: str, subset: Subset, meta, source: ImageNetSource, out: str, copy: bool,
                dest: DestIndex) -> Plan:
    """The plan of one image step."""
    if step == "train":
        return plan_train(subset, meta, source, out, copy, dest)
    if step == "train-semi":
        return plan_train_semi(subset, meta, source, out, dest)
    return plan_mapped(subset, step, meta, source, out, dest)
