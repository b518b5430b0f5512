"""``evaluate --save-counts FILE.npz``: every image's own counts and name, for ``imagenets compare``."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from imagenets.errors import UserError
from imagenets.fileio import PathLike

from .exports import write_npz
from .metrics import ImageCounts

FORMAT = "imagenets-image-counts/1"
_ARRAYS = ("indptr", "keys", "values", "correct", "f")


@dataclass
class SavedCounts:
    """A run's per-image counts, its image names (same order) and context (subset, folders, match)."""

    counts: ImageCounts
    names: List[str]
    context: Dict[str, str]


def save_counts(path: PathLike, counts: ImageCounts, names: Sequence[str], context: Dict[str, object]) -> None:
    if len(names) != counts.images:
        raise ValueError(f"{len(names)} names for {counts.images} images")
    write_npz(path, format=np.array(FORMAT), num_classes=np.array(counts.num_classes),
              names=np.array(list(names), dtype=str),
              context_keys=np.array(list(context), dtype=str),
              context_values=np.array(["" if v is None else str(v) for v in context.values()], dtype=str),
              **{name: getattr(counts, name) for name in _ARRAYS})


def load_counts(path: PathLike) -> SavedCounts:
    """Read a ``--save-counts`` file; UserError naming it if it is not one."""
    path = Path(path)
    hint = "write it with `imagenets evaluate ... --save-counts FILE.npz`"
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"{path} not found: check the path ({hint})") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc} ({hint})") from None
    except (ValueError, zipfile.BadZipFile, EOFError):
        raise UserError(f"{path} is not an .npz counts file: {hint}") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise UserError(f"{path} is a single .npy array, not an .npz counts file: {hint}")
    with data:
        if "format" not in data.files or str(data["format"]) != FORMAT:
            raise UserError(f"{path} is not an imagenets counts file ({FORMAT}): {hint}")
        try:
            arrays = {name: data[name] for name in _ARRAYS}
            names = [str(n) for n in data["names"]]
            context = dict(zip((str(k) for k in data["context_keys"]), (str(v) for v in data["context_values"])))
            num_classes = int(data["num_classes"])
        except (KeyError, ValueError, zipfile.BadZipFile, OSError) as exc:
            raise UserError(f"{path} is a damaged counts file ({exc}): {hint}") from None
    counts = ImageCounts(num_classes, **arrays)
    if counts.indptr.size != len(names) + 1 or counts.f.size != len(names):
        raise UserError(f"{path} is inconsistent ({len(names)} names, {counts.f.size} images): {hint}")
    return SavedCounts(counts, names, context)
