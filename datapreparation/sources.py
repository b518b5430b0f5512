"""Where an ImageNet-1k copy keeps its images: ``train/``, ``val/`` and val's two layouts."""

from __future__ import annotations

import os
import re
from typing import Dict, FrozenSet, List, Optional, Tuple

from imagenets.errors import UserError
# One definition of where a train-semi image comes from, shared with the fake-tree builder.

WNID = re.compile(r"^n\d{8}$")
VAL_IMAGE = re.compile(r"^ILSVRC2012_val_\d+\.JPEG$", re.IGNORECASE)
#: Folders that hold train/ and val/ in the common ImageNet distributions (the Kaggle one nests them).
ROOT_CANDIDATES = ("", os.path.join("ILSVRC", "Data", "CLS-LOC"), os.path.join("Data", "CLS-LOC"))

LAYOUT_TEXT = {
    "class": "class folders (val/<wnid>/ILSVRC2012_val_*.JPEG)",
    "flat": "flat (val/ILSVRC2012_val_*.JPEG)",
    "mixed": "mixed: class folders and flat files (each image is taken from its class folder, "
             "else from val/ itself)",
    "empty": "empty (no ILSVRC2012_val_*.JPEG found)",
}


class FileIndex:
    """Which regular files each folder holds, one ``scandir`` per folder (cheaper than a stat per file)."""

    def __init__(self) -> None:
        self._cache: Dict[str, FrozenSet[str]] = {}

    def files(self, folder: str) -> FrozenSet[str]:
        """Names of the non-hidden regular files (links followed) in ``folder``; empty if absent."""
        found = self._cache.get(folder)
        if found is None:
            try:
                with os.scandir(folder) as entries:
                    found = frozenset(e.name for e in entries
                                      if not e.name.startswith(".") and e.is_file())
            except (FileNotFoundError, NotADirectoryError):
                found = frozenset()
            self._cache[folder] = found
        return found

    def exists(self, path: str) -> bool:
        folder, name = os.path.split(path)
        return name in self.files(folder)


class ImageNetSource:
    """An ImageNet-1k copy: absolute ``train`` and ``val`` folders, and how val is laid out."""

    def __init__(self, imagenet_dir: str) -> None:
        root = os.path.abspath(os.path.expanduser(imagenet_dir))
        if not os.path.isdir(root):
            raise UserError(f"--imagenet-dir {imagenet_dir}: no such folder; point it at the "
                            "ImageNet-1k folder that holds train/ and val/")
        base = root
        for candidate in ROOT_CANDIDATES:
            path = os.path.join(root, candidate) if candidate else root
            if os.path.isdir(os.path.join(path, "train")) or os.path.isdir(os.path.join(path, "val")):
                base = path
                break
        self.root = root
        self.train = os.path.join(base, "train")
        self.val = os.path.join(base, "val")
        self.index = FileIndex()
        self._layout: Optional[str] = None

    def require(self, folder: str, step: str) -> None:
        """UserError unless ``train``/``val`` exists (``folder`` is one of the two names)."""
        path = getattr(self, folder)
        if not os.path.isdir(path):
            raise UserError(f"--imagenet-dir {self.root}: {path} not found, the {step} step needs it; "
                            "point --imagenet-dir at the ImageNet-1k folder that holds train/ and val/")

    @property
    def val_layout(self) -> str:
        """``class``, ``flat``, ``mixed`` or ``empty``, judged from what ``val/`` holds."""
        if self._layout is None:
            folders = flat = 0
            try:
                with os.scandir(self.val) as entries:
                    for entry in entries:
                        if WNID.match(entry.name) and entry.is_dir():
                            folders += 1
                        elif VAL_IMAGE.match(entry.name):
                            flat += 1
            except (FileNotFoundError, NotADirectoryError):
                pass
            self._layout = ("mixed" if folders and flat else "class" if folders
                            else "flat" if flat else "empty")
        return self._layout

    def val_file(self, src_rel: str) -> Optional[str]:
        """Absolute path of a mapping ``src`` (``wnid/ILSVRC2012_val_*.JPEG``), or None if absent."""
        wnid, _, name = src_rel.rpartition("/")
        candidates: List[str] = []
        if self.val_layout in ("class", "mixed") and wnid:
            candidates.append(os.path.join(self.val, wnid, name))
        if self.val_layout in ("flat", "mixed", "empty"):
            candidates.append(os.path.join(self.val, name))
        for path in candidates:
            if self.index.exists(path):
                return path
        return None

    def train_class(self, wnid: str) -> str:
        return os.path.join(self.train, wnid)

    def train_file(self, wnid: str, name: str) -> Tuple[str, bool]:
        """(path, exists) of ``train/<wnid>/<name>``."""
        path = os.path.join(self.train, wnid, name)
        return path, self.index.exists(path)
