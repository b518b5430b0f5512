"""Fake ImageNet-1k trees and ImageNet-S annotation archives, with the real file names, for tests and demos.

Every image is a tiny valid JPEG whose comment segment names its file, so a copy in the wrong place shows.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

import numpy as np
from PIL import Image

from imagenets.codec import encode
from imagenets.fileio import PathLike, atomic_path
from imagenets.metadata import train_semi_source
from imagenets.subsets import IGNORE, MASK_FOLDERS, OTHER, SPLITS, Subset, get_subset

#: ImageNet classes in no ImageNet-S subset do exist; fake ones stand for them (outside every list).
OUTSIDE_WNIDS = ("n99999901", "n99999902")
_VARIANTS = 4


@dataclass
class FakeImageNet:
    """What :func:`build_fake_imagenet` wrote."""

    root: Path
    val_layout: str
    #: wnid -> names of the files written in ``train/<wnid>/``.
    train: Dict[str, List[str]] = field(default_factory=dict)
    #: relative paths under ``val/`` (as the mapping lists name them, i.e. ``wnid/name``).
    val: List[str] = field(default_factory=list)

    @property
    def num_files(self) -> int:
        return sum(len(v) for v in self.train.values()) + len(self.val)


def _base_jpegs(size: Tuple[int, int]) -> List[bytes]:
    """A few tiny JPEGs of different colours, encoded once."""
    out = []
    for i in range(_VARIANTS):
        img = Image.new("RGB", size, (40 + 50 * i, 200 - 40 * i, 90))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=50)
        out.append(buf.getvalue())
    return out


def jpeg_with_comment(base: bytes, comment: str) -> bytes:
    """``base`` with a COM segment holding ``comment`` right after SOI (still a valid JPEG)."""
    text = comment.encode("utf-8")[:65000]
    return base[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + base[2:]


def jpeg_comment(data: bytes) -> Optional[str]:
    """The comment :func:`jpeg_with_comment` put into ``data``, or None."""
    if data[2:4] != b"\xff\xfe":
        return None
    length = struct.unpack(">H", data[4:6])[0]
    return data[6:4 + length].decode("utf-8")


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as out:
        out.write(data)


def build_fake_imagenet(root: PathLike, meta, subsets: Iterable[Union[int, str, Subset]] = (50,),
                        val_layout: str = "class", image_size: Tuple[int, int] = (8, 8),
                        train_per_class: int = 3, splits: Sequence[str] = SPLITS,
                        train_counts: Optional[Dict[str, int]] = None,
                        outside_classes: bool = True) -> FakeImageNet:
    """Write ``root/train/<wnid>/<wnid>_<n>.JPEG`` and ``root/val/...`` for the given subsets.

    ``train`` holds ``train_per_class`` images per class (``train_counts`` overrides per wnid),
    merged wnids included, plus every image the train-semi lists name; ``val`` holds every source
    of the validation and test mappings, in class folders (``val_layout="class"``) or flat.
    ``splits`` limits what is written (e.g. ``("train",)`` for a quick 919 check).
    """
    if val_layout not in ("class", "flat"):
        raise ValueError("val_layout must be 'class' or 'flat'")
    root = Path(root)
    bases = _base_jpegs(image_size)
    result = FakeImageNet(root=root, val_layout=val_layout)
    train: Dict[str, Set[str]] = {}
    val: Set[str] = set()
    for item in subsets:
        subset = get_subset(item)
        if "train" in splits:
            wnids = list(meta.categories(subset)) + list(subset.merged)
            if outside_classes:
                wnids += OUTSIDE_WNIDS
            for wnid in wnids:
                count = (train_counts or {}).get(wnid, train_per_class)
                train.setdefault(wnid, set()).update(f"{wnid}_{n}.JPEG" for n in range(1, count + 1))
        if "train-semi" in splits:
            for image_rel, _ in meta.train_semi_names(subset):
                wnid, name = train_semi_source(image_rel)
                train.setdefault(wnid, set()).add(name)
        for split in ("validation", "test"):
            if split in splits:
                val.update(src for src, _ in meta.mapping(subset, split))
    for wnid, names in sorted(train.items()):
        folder = root / "train" / wnid
        folder.mkdir(parents=True, exist_ok=True)
        ordered = sorted(names)
        for i, name in enumerate(ordered):
            _write(str(folder / name), jpeg_with_comment(bases[i % _VARIANTS], f"train/{wnid}/{name}"))
        result.train[wnid] = ordered
    made: Set[Path] = set()
    for i, rel in enumerate(sorted(val)):
        target = root / "val" / (rel if val_layout == "class" else rel.rsplit("/", 1)[-1])
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        _write(str(target), jpeg_with_comment(bases[i % _VARIANTS], f"val/{rel}"))
    result.val = sorted(val)
    return result


def fake_mask(class_id: int, size: Tuple[int, int] = (8, 8)) -> np.ndarray:
    """A small id map: ``class_id`` in the middle, OTHER around it, one IGNORE pixel."""
    h, w = size
    ids = np.full((h, w), OTHER, dtype=np.int32)
    ids[h // 4: h - h // 4, w // 4: w - w // 4] = class_id
    ids[0, 0] = IGNORE
    return ids


def _png(ids: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(encode(ids), "RGB").save(buf, format="PNG")
    return buf.getvalue()


def annotation_entries(meta, subset: Union[int, str, Subset],
                       size: Tuple[int, int] = (8, 8)) -> Dict[str, bytes]:
    """Archive entry name -> PNG bytes for every validation and train-semi mask of ``subset``."""
    subset = get_subset(subset)
    class_ids = {wnid: i + 1 for i, wnid in enumerate(meta.categories(subset))}
    cache: Dict[int, bytes] = {}
    entries: Dict[str, bytes] = {}
    for folder, pairs in ((MASK_FOLDERS["validation"], meta.validation_names(subset)),
                          (MASK_FOLDERS["train-semi"], meta.train_semi_names(subset))):
        for _, mask_rel in pairs:
            class_id = class_ids.get(mask_rel.split("/", 1)[0], OTHER)
            if class_id not in cache:
                cache[class_id] = _png(fake_mask(class_id, size))
            entries[f"{subset.name}/{folder}/{mask_rel}"] = cache[class_id]
    return entries


def build_annotation_zip(path: PathLike, meta, subset: Union[int, str, Subset],
                         size: Tuple[int, int] = (8, 8),
                         extra_entries: Optional[Dict[str, bytes]] = None,
                         skip: int = 0) -> Dict[str, bytes]:
    """Write an archive shaped like the official ``ImageNetS{K}-<hex>.zip``; return its entries.

    PNGs are stored uncompressed (as they gain nothing); ``extra_entries`` adds raw entries
    (e.g. unsafe names for tests); ``skip`` leaves out the last ``skip`` masks.
    """
    entries = annotation_entries(meta, subset, size)
    if skip:
        for name in list(entries)[-skip:]:
            del entries[name]
    entries.update(extra_entries or {})
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            for name, data in entries.items():
                archive.writestr(name, data)
    return entries


def tree_snapshot(root: PathLike) -> Dict[str, Tuple[str, int, int]]:
    """relative path -> (kind, inode, mtime_ns) of everything under ``root``: compares runs."""
    root = str(root)
    out: Dict[str, Tuple[str, int, int]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(folder, name)
            st = os.lstat(full)
            kind = "link:" + os.readlink(full) if os.path.islink(full) else (
                "dir" if name in dirs else "file")
            out[os.path.relpath(full, root)] = (kind, st.st_ino, st.st_mtime_ns)
    return out
