"""``evaluate --save-counts FILE.npz``: every image's own counts and name, for ``imagenets compare``.

A counts file also records what it was computed on (subset, image names, a fingerprint of the GT
counts, the match's digest), so that ``compare`` can refuse runs that cannot be paired. Reading one
trusts nothing: every array's header is checked against the zip member's size before anything is
allocated, then dtypes, shapes, index structure and value ranges.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from imagenets.errors import UserError
from imagenets.fileio import PathLike
from imagenets.subsets import SUBSETS
from imagenets.zipsafe import READ_ERRORS, open_zip, vet_entries

from .exports import write_npz
from .metrics import SCOPES, STATS, ImageCounts

FORMAT = "imagenets-image-counts/2"
HINT = "write it with `imagenets evaluate ... --save-counts FILE.npz`"
_ARRAYS = ("indptr", "keys", "values", "correct", "f")
#: Every member: (dtype kinds allowed, number of dimensions).
_LAYOUT = {"format": ("U", 0), "num_classes": ("iu", 0), "names": ("U", 1), "context_keys": ("U", 1),
           "context_values": ("U", 1), "indptr": ("iu", 1), "keys": ("iu", 1), "values": ("iu", 1),
           "correct": ("biu", 1), "f": ("f", 1)}
#: Context fields a counts file must carry (provenance); ``match_digest`` is empty for a run without a match.
PROVENANCE = ("subset", "gt_fingerprint", "match_digest")
#: Deflate expands at most ~1032:1: a member claiming more than this many bytes per stored byte lies.
_MAX_RATIO = 1100
_GT_STATS = (STATS.index("G"), STATS.index("BG"))


@dataclass
class SavedCounts:
    """A run's per-image counts, its image names (same order) and context (subset, folders, match, provenance)."""

    counts: ImageCounts
    names: List[str]
    context: Dict[str, str]


def match_digest(mapping: Optional[Mapping[int, int]]) -> str:
    """SHA-256 of a match's mapping (sorted ``id: class`` pairs), "" for no match."""
    if mapping is None:
        return ""
    text = json.dumps(sorted((int(k), int(v)) for k, v in mapping.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def gt_fingerprint(counts: ImageCounts, names: Sequence[str]) -> str:
    """SHA-256 of the images' names and GT counts (every scope's G and BG), in name order: equal for two
    runs over the same GT masks, whatever the predictions, different for other masks (another --gt-dir)."""
    order = np.argsort(np.array(names, dtype=str), kind="stable")
    c = counts.reordered(order)
    image = np.repeat(np.arange(c.images, dtype=np.int64), np.diff(c.indptr))
    gt_only = np.isin(c.keys // (c.num_classes + 1) % len(STATS), _GT_STATS)
    digest = hashlib.sha256("\n".join(np.array(names, dtype=str)[order]).encode())
    for array in (image[gt_only], c.keys[gt_only], c.values[gt_only]):
        digest.update(np.ascontiguousarray(array, dtype="<i8").tobytes())
    return digest.hexdigest()


def save_counts(path: PathLike, counts: ImageCounts, names: Sequence[str], context: Dict[str, object]) -> None:
    """Write a counts file; ``context`` must name the ``subset`` and may give ``match_digest``."""
    if len(names) != counts.images:
        raise ValueError(f"{len(names)} names for {counts.images} images")
    context = {**context, "gt_fingerprint": gt_fingerprint(counts, names),
               "match_digest": context.get("match_digest") or ""}
    write_npz(path, format=np.array(FORMAT), num_classes=np.array(counts.num_classes),
              names=np.array(list(names), dtype=str),
              context_keys=np.array(list(context), dtype=str),
              context_values=np.array(["" if v is None else str(v) for v in context.values()], dtype=str),
              **{name: getattr(counts, name) for name in _ARRAYS})


def _problem(path: Path, what: str) -> UserError:
    return UserError(f"{path} is not a valid counts file: {what}; {HINT}")


def _read_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Tuple[Tuple[int, ...], np.dtype, int]:
    """(shape, dtype, header bytes) of one ``.npy`` member, reading its header only."""
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unknown .npy version {version}")
        return tuple(int(n) for n in shape), dtype, f.tell()


def _check_members(path: Path) -> None:
    """Every member present, of the expected kind and shape, and exactly as large as its header says
    (so that no header makes the reader allocate more than the file really holds)."""
    archive = open_zip(path, HINT)
    with archive:
        entries = {e.name: e.info for e in vet_entries(archive.infolist(), path, fix=HINT)}
        on_disk = path.stat().st_size
        for name, (kinds, ndim) in _LAYOUT.items():
            info = entries.get(f"{name}.npy")
            if info is None:
                if name == "format":
                    raise UserError(f"{path} is not an imagenets counts file ({FORMAT}): {HINT}")
                raise _problem(path, f"it has no {name!r} array")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.compress_size > on_disk \
                    or info.file_size > _MAX_RATIO * info.compress_size + 4096:
                raise _problem(path, f"its {name!r} member claims {info.file_size} bytes from "
                                     f"{info.compress_size} stored ones")
            try:
                shape, dtype, header = _read_header(archive, info)
            except (*READ_ERRORS, SyntaxError) as exc:
                raise _problem(path, f"its {name!r} array has an unreadable header ({exc})") from None
            if dtype.hasobject or dtype.kind not in kinds or len(shape) != ndim:
                raise _problem(path, f"{name!r} is a {len(shape)}-D {dtype} array, expected a "
                                     f"{'scalar' if ndim == 0 else f'{ndim}-D array'} of kind {kinds!r}")
            if header + math.prod(shape) * dtype.itemsize != info.file_size:
                raise _problem(path, f"the header of {name!r} claims {math.prod(shape)} values of {dtype.itemsize} "
                                     f"bytes, but the member holds {info.file_size - header} bytes")


def _load_arrays(path: Path) -> Dict[str, np.ndarray]:
    _check_members(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in _LAYOUT}
    except (*READ_ERRORS, KeyError) as exc:
        raise _problem(path, f"an array cannot be read ({exc})") from None


def _text(value: np.ndarray) -> str:
    return str(value[()])


def load_counts(path: PathLike) -> SavedCounts:
    """Read and check a ``--save-counts`` file; a UserError naming it if it is not one, or not a sound one."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a counts file: {HINT}")
    arrays = _load_arrays(path)
    if _text(arrays["format"]) != FORMAT:
        older = _text(arrays["format"]).startswith("imagenets-image-counts/")
        raise UserError(f"{path} is {'an older' if older else 'not an'} imagenets counts file "
                        f"({_text(arrays['format'])!r}, not {FORMAT!r}): {HINT}")
    k = int(arrays["num_classes"])
    if k not in SUBSETS:
        raise _problem(path, f"num_classes is {k}, not one of {', '.join(map(str, SUBSETS))}")
    names = [str(n) for n in arrays["names"]]
    context_keys = [str(c) for c in arrays["context_keys"]]
    if len(context_keys) != arrays["context_values"].size or len(set(context_keys)) != len(context_keys):
        raise _problem(path, "its context keys and values do not pair up")
    context = dict(zip(context_keys, (str(v) for v in arrays["context_values"])))
    counts = ImageCounts(k, *(arrays[name].astype(np.int64) for name in ("indptr", "keys", "values")),
                         arrays["correct"], arrays["f"].astype(np.float64))
    _check_counts(path, counts, names)
    counts.correct = counts.correct.astype(bool)
    _check_provenance(path, counts, names, context)
    return SavedCounts(counts, names, context)


def _check_counts(path: Path, c: ImageCounts, names: List[str]) -> None:
    """Lengths, index structure and value ranges of the per-image counts."""
    n = len(names)
    if len(set(names)) != n:
        raise _problem(path, "an image name appears twice")
    if c.indptr.size != n + 1 or c.correct.size != n or c.f.size != n or c.keys.size != c.values.size:
        raise _problem(path, f"its arrays disagree in length ({n} names, {c.indptr.size} indptr, "
                             f"{c.correct.size} correct, {c.f.size} f, {c.keys.size} keys, {c.values.size} values)")
    if c.indptr[0] != 0 or c.indptr[-1] != c.keys.size or (np.diff(c.indptr) < 0).any():
        raise _problem(path, "indptr is not a monotone index from 0 to the number of keys")
    width = len(SCOPES) * len(STATS) * (c.num_classes + 1)
    if c.keys.size and (c.keys.min() < 0 or c.keys.max() >= width):
        raise _problem(path, f"a key lies outside 0..{width - 1} (ImageNet-S{c.num_classes})")
    # Within an image the keys increase strictly (sorted, unique); they restart at each image's first.
    falls = np.flatnonzero(np.diff(c.keys) <= 0) + 1
    if falls.size and not np.isin(falls, c.indptr).all():
        raise _problem(path, "an image's keys are repeated or out of order")
    if c.values.size and c.values.min() < 0:
        raise _problem(path, f"a pixel count is negative ({int(c.values.min())})")
    if c.correct.dtype != bool and c.correct.size and not np.isin(c.correct, (0, 1)).all():
        raise _problem(path, f"an Acc correctness is {int(c.correct[~np.isin(c.correct, (0, 1))][0])}, not 0 or 1")
    if c.f.size and not (np.isfinite(c.f).all() and c.f.min() >= 0 and c.f.max() <= 1):
        bad = c.f[~(np.isfinite(c.f) & (c.f >= 0) & (c.f <= 1))][0]
        raise _problem(path, f"an F-measure is {float(bad)!r}, not in [0, 1]")
    _check_intersections(path, c)


def _check_intersections(path: Path, c: ImageCounts) -> None:
    """Per image, scope and class: I <= P and I <= G (boundary alike), so that no IoU exceeds 100%."""
    k1 = c.num_classes + 1
    image = np.repeat(np.arange(c.images, dtype=np.int64), np.diff(c.indptr))
    flat = image * (len(SCOPES) * len(STATS) * k1) + c.keys     # sorted: images in order, keys increasing
    stat = c.keys // k1 % len(STATS)
    for inter, others in ((STATS.index("I"), ("P", "G")), (STATS.index("BI"), ("BP", "BG"))):
        at = np.flatnonzero(stat == inter)
        for other in others:
            where = flat[at] + (STATS.index(other) - inter) * k1
            found = np.minimum(np.searchsorted(flat, where), flat.size - 1)
            bound = np.where(flat[found] == where, c.values[found], 0)
            if (c.values[at] > bound).any():
                raise _problem(path, f"an image has more {STATS[inter]} than {other} pixels in some class")


def _check_provenance(path: Path, c: ImageCounts, names: List[str], context: Dict[str, str]) -> None:
    missing = [key for key in PROVENANCE if key not in context]
    if missing:
        raise _problem(path, f"it does not record its {', '.join(missing)}")
    if context["subset"] != SUBSETS[c.num_classes].name:
        raise _problem(path, f"it says subset {context['subset']!r} but holds ImageNet-S{c.num_classes} counts")
    if context["gt_fingerprint"] != gt_fingerprint(c, names):
        raise _problem(path, "its GT counts do not match its recorded GT fingerprint (edited or damaged)")
