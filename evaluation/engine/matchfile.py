"""Match files: JSON objects mapping prediction (cluster) ids to GT class ids (spec: "Image-level matching").

A match file is read once into a :class:`Match`; every user takes what it needs from that object.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional, Union

import numpy as np

from imagenets.codec import MAX_ID
from imagenets.errors import UserError, warn
from imagenets.fileio import JSON_MAX_BYTES, PathLike, read_at_most, read_json, write_json_atomic, write_text_atomic

#: Value given to prediction ids a match does not cover: out of range for every subset.
UNCOVERED = MAX_ID

FORMAT_HINT = ('a match file is a JSON object from prediction id (string key) to GT class id 0..K, '
               'e.g. {"1": 19, "2": 50, ..., "0": 0}, as written by match.py')


@dataclass(frozen=True, eq=False)
class Match:
    """A validated match: ``mapping`` {prediction id: class id} and its lookup table over every mask id.

    How it is applied to metrics is decided in one place: the counting kernel takes ``lut`` and maps
    each run after the boundaries were taken on the raw ids (spec, steps 2-3). :meth:`relabel` is for
    pictures and rewritten files only.
    """

    mapping: Dict[int, int]
    lut: np.ndarray            # (MAX_ID + 1,) int32: covered ids -> their class, the rest -> UNCOVERED
    path: Optional[str] = None  # the file it was read from, for reports

    @classmethod
    def from_mapping(cls, mapping: Dict[int, int], path: Optional[str] = None) -> "Match":
        lut = np.full(MAX_ID + 1, UNCOVERED, dtype=np.int32)
        keys = np.fromiter(mapping.keys(), dtype=np.int64, count=len(mapping))
        lut[keys] = np.fromiter(mapping.values(), dtype=np.int64, count=len(mapping))
        return cls(dict(mapping), lut, path)

    @property
    def one_to_one(self) -> bool:
        """True when no two prediction ids map to the same class (as match.py writes them by default)."""
        classes = [v for k, v in self.mapping.items() if k != 0]
        return len(set(classes)) == len(classes)

    @property
    def covered(self) -> np.ndarray:
        """Boolean table over every mask id: True for the ids the match maps."""
        return self.lut != UNCOVERED

    def relabel(self, ids: np.ndarray) -> np.ndarray:
        """Every pixel's class (uncovered ids -> UNCOVERED); not for metrics, which need the raw ids' boundaries."""
        return self.lut.take(ids)  # take: ~2x faster than fancy indexing


def parse_match(obj: object, num_classes: int, source: str = "match", path: Optional[str] = None) -> Match:
    """Validate a decoded match object (spec: any non-negative integer keys, values 0..K).

    Many-to-one, more clusters than classes and clusters mapped to 0 are valid; "0" maps to 0 unless
    the file says otherwise. Keys above the largest mask id cannot occur in a PNG: dropped with a warning.
    """
    if not isinstance(obj, dict) or not obj:
        raise UserError(f"{source} is not a match: {FORMAT_HINT}")
    mapping: Dict[int, int] = {0: 0}
    unreachable = []
    for key, value in obj.items():
        try:
            src = int(key)
        except (TypeError, ValueError):
            raise UserError(f"{source}: key {key!r} is not an integer id: {FORMAT_HINT}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{source}: value {value!r} for key {key!r} is not an integer class id: "
                            f"{FORMAT_HINT}")
        if src < 0:
            raise UserError(f"{source}: key {key!r} is negative: prediction ids are 0..{MAX_ID}")
        if not 0 <= value <= num_classes:
            raise UserError(f"{source}: \"{key}\" maps to {value}, outside the GT ids 0..{num_classes}: "
                            f"is --mode right, and was the match computed for this subset?")
        if src > MAX_ID:
            unreachable.append(src)
            continue
        mapping[src] = value
    if unreachable:
        warn(f"{source}: {len(unreachable)} keys above {MAX_ID} (first: {min(unreachable)}) cannot occur in a "
             "mask (id = R + 256*G): ignored")
    return Match.from_mapping(mapping, path)


def load_match(path: PathLike, num_classes: int) -> Match:
    """Read and validate a match file (UserError naming the file on any problem)."""
    return parse_match(read_json(path, "match file"), num_classes, source=f"match file {path}", path=str(path))


def match_to_json(assignment: Union[np.ndarray, Dict[int, int], Match]) -> Dict[str, int]:
    """The spec's JSON object: "1".."N" in order, then "0"."""
    if isinstance(assignment, Match):
        assignment = assignment.mapping
    if isinstance(assignment, dict):
        items = sorted((int(k), int(v)) for k, v in assignment.items() if int(k) != 0)
        other = int(assignment.get(0, 0))
    else:  # array: assignment[p - 1] = class of cluster p
        items = [(p + 1, int(g)) for p, g in enumerate(assignment)]
        other = 0
    obj = {str(p): g for p, g in items}
    obj["0"] = other
    return obj


def ties_path(match_path: PathLike) -> Path:
    """Where a match's tie report lies: beside the mapping, ``NAME.ties.json`` for ``NAME.json``."""
    return Path(match_path).with_suffix(".ties.json")


def save_match(path: PathLike, assignment: Union[np.ndarray, Dict[int, int]],
               ties: Optional[Dict[str, object]] = None) -> Path:
    """Write a match file atomically, byte for byte as the original match.py writes it (one space of
    indent, no final newline), and its tie report beside it when given (with the SHA-256 of the mapping's
    bytes, so that a report beside a mapping replaced since is known for another's); returns its path."""
    text = json.dumps(match_to_json(assignment), indent=1)
    write_text_atomic(path, text)
    if ties is not None:
        write_json_atomic(ties_path(path), {**ties, TIES_OF: hashlib.sha256(text.encode("utf-8")).hexdigest()})
    return Path(path)


#: The tie report's field naming the mapping it was written for (SHA-256 of the match file's bytes).
TIES_OF = "match_sha256"


def ties_belong(ties: Mapping[str, object], match_path: PathLike) -> bool:
    """False when the tie report ``ties`` was written for another content of ``match_path`` (older reports,
    without the field, are taken as they are)."""
    recorded = ties.get(TIES_OF)
    if recorded is None:
        return True
    try:
        data = read_at_most(match_path, JSON_MAX_BYTES)
    except OSError:
        return False
    return data is not None and hashlib.sha256(data).hexdigest() == recorded
