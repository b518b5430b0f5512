"""Match files: JSON objects mapping prediction (cluster) ids to GT class ids (spec: "Image-level matching")."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np

from imagenets.codec import MAX_ID
from imagenets.errors import UserError
from imagenets.fileio import PathLike, read_json, write_json_atomic

#: Value given to prediction ids a match does not cover: out of range for every subset.
UNCOVERED = MAX_ID

FORMAT_HINT = ('a match file is a JSON object from prediction id (string key) to GT class id, '
               'e.g. {"1": 19, "2": 50, ..., "0": 0}, as written by match.py')


def parse_match(obj: object, num_classes: int, source: str = "match") -> Dict[int, int]:
    """Validate a decoded match object; returns {prediction id: class id} (0 -> 0 always included)."""
    if not isinstance(obj, dict) or not obj:
        raise UserError(f"{source} is not a match: {FORMAT_HINT}")
    mapping: Dict[int, int] = {0: 0}
    for key, value in obj.items():
        try:
            src = int(key)
        except (TypeError, ValueError):
            raise UserError(f"{source}: key {key!r} is not an integer id: {FORMAT_HINT}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{source}: value {value!r} for key {key!r} is not an integer class id: "
                            f"{FORMAT_HINT}")
        if not 0 <= src <= MAX_ID:
            raise UserError(f"{source}: key {key!r} is outside the mask id range 0..{MAX_ID}")
        if src == 0:
            if value != 0:
                raise UserError(f"{source}: \"0\" (other) must map to 0, not {value}")
            continue
        if not 1 <= value <= num_classes:
            raise UserError(f"{source}: \"{key}\" maps to {value}, outside the classes 1..{num_classes}: "
                            f"is --mode right, and was the match computed for this subset?")
        mapping[src] = value
    return mapping


def load_match(path: PathLike, num_classes: int) -> Dict[int, int]:
    """Read and validate a match file (UserError naming the file on any problem)."""
    return parse_match(read_json(path, "match file"), num_classes, source=f"match file {path}")


def is_one_to_one(mapping: Dict[int, int]) -> bool:
    """True when no two prediction ids map to the same class (as match.py writes them)."""
    classes = [v for k, v in mapping.items() if k != 0]
    return len(set(classes)) == len(classes)


def match_lut(mapping: Dict[int, int]) -> np.ndarray:
    """Lookup table over every mask id: covered ids -> their class, the rest -> UNCOVERED."""
    lut = np.full(MAX_ID + 1, UNCOVERED, dtype=np.int32)
    keys = np.fromiter(mapping.keys(), dtype=np.int64, count=len(mapping))
    values = np.fromiter(mapping.values(), dtype=np.int64, count=len(mapping))
    lut[keys] = values
    return lut


def match_to_json(assignment: Union[np.ndarray, Dict[int, int]]) -> Dict[str, int]:
    """The spec's JSON object: "1".."K" in order, then "0": 0."""
    if isinstance(assignment, dict):
        items = sorted((int(k), int(v)) for k, v in assignment.items() if int(k) != 0)
    else:  # array: assignment[p - 1] = class of cluster p
        items = [(p + 1, int(g)) for p, g in enumerate(assignment)]
    obj = {str(p): g for p, g in items}
    obj["0"] = 0
    return obj


def save_match(path: PathLike, assignment: Union[np.ndarray, Dict[int, int]]) -> Path:
    """Write a match file atomically; returns its path."""
    write_json_atomic(path, match_to_json(assignment))
    return Path(path)


def optional_match(path: Optional[PathLike], num_classes: int) -> Optional[Dict[int, int]]:
    return None if path is None else load_match(path, num_classes)
