"""The Python API: ``imagenets.evaluate`` and ``imagenets.match``, the commands' numbers as small objects.

    import imagenets
    found = imagenets.match("P", "DEST/ImageNetS50/validation-segmentation", 50)
    result = imagenets.evaluate("P", "DEST/ImageNetS50/validation-segmentation", 50, match=found)
    result.mIoU, result.ious[1], result.as_dict()
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from imagenets.fileio import PathLike, write_json_atomic
from imagenets.metadata import Metadata, load_metadata
from imagenets.subsets import Subset, get_subset

from .engine.evaluation import evaluate_predictions
from .engine.matchfile import Match, load_match, match_to_json, parse_match, save_match
from .engine.matching import compute_match
from .engine.metrics import SUMMARY_KEYS, SegmentationMetrics
from .engine.report import json_ready

__all__ = ["evaluate", "match", "EvaluationResult", "MatchResult", "SegmentationMetrics"]

#: What ``EvaluationResult.match`` says when the match was given as an object, not a file.
IN_MEMORY = "<in-memory match>"


def _split(result: Mapping[str, Any], cls: type, renames: Mapping[str, str]) -> Dict[str, Any]:
    """Constructor arguments of ``cls`` from a command's result dict; keys it has no field for go to ``extra``."""
    names = {f.name for f in fields(cls)} - {"extra"}
    kwargs: Dict[str, Any] = {"extra": {}}
    for key, value in result.items():
        name = renames.get(key, key)
        if name in names:
            kwargs[name] = value
        else:
            kwargs["extra"][key] = value
    return kwargs


@dataclass(frozen=True)
class EvaluationResult:
    """What ``imagenets evaluate`` reports: the summary metrics (percent, full precision) as attributes,
    ``ious`` per class (index 0 = other, then class ids 1..K) and the run's context."""

    subset: str
    mode: int
    images: int
    mIoU: float
    mBIoU: float
    S: float
    MS: float
    ML: float
    L: float
    BS: float
    BMS: float
    BML: float
    BL: float
    Acc: float
    FMeasure: float
    ious: List[float] = field(repr=False)
    predict_dir: str = ""
    gt_dir: str = ""
    match: Optional[str] = None
    out_of_range_pixels: int = 0
    #: Further keys of the evaluation's result, kept as they came.
    extra: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, result: Mapping[str, Any]) -> "EvaluationResult":
        return cls(**_split(result, cls, {"IoUs": "ious"}))

    def summary(self) -> Dict[str, float]:
        """The twelve summary metrics, in the command's order (NaN: a size bucket with no objects)."""
        return {key: getattr(self, key) for key in SUMMARY_KEYS}

    def as_dict(self) -> Dict[str, Any]:
        """The result as ``evaluate_predictions`` gives it (``IoUs`` for ``ious``)."""
        return {"subset": self.subset, "mode": self.mode, "images": self.images,
                "predict_dir": self.predict_dir, "gt_dir": self.gt_dir, "match": self.match,
                "out_of_range_pixels": self.out_of_range_pixels, **self.summary(), "IoUs": list(self.ious),
                **self.extra}

    def save(self, path: PathLike) -> Path:
        """Write what ``--output FILE.json`` writes (NaN as null), atomically; returns the path."""
        write_json_atomic(path, json_ready(self.as_dict()))
        return Path(path)


@dataclass(frozen=True)
class MatchResult:
    """What ``imagenets match`` finds: ``mapping`` from prediction (cluster) id to class id (0 -> 0
    included), the objective (co-occurrences the match attains) and the run's context."""

    subset: str
    mode: int
    images: int
    method: str
    objective: int
    mapping: Dict[int, int] = field(repr=False)
    extra: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, result: Mapping[str, Any]) -> "MatchResult":
        kwargs = _split(result, cls, {})
        assignment = kwargs["extra"].pop("assignment")
        kwargs["mapping"] = {int(key): value for key, value in match_to_json(assignment).items()}
        return cls(**kwargs)

    def to_json(self) -> Dict[str, int]:
        """The match file's object: ``{"1": class, ..., "0": 0}``."""
        return match_to_json(self.mapping)

    def as_dict(self) -> Dict[str, Any]:
        """The run's context and the match (as ``match --output`` writes it, less the file name)."""
        return {"subset": self.subset, "mode": self.mode, "images": self.images, "method": self.method,
                "objective": self.objective, "match": self.to_json(), **self.extra}

    def save(self, path: PathLike) -> Path:
        """Write the match file ``match.py`` writes (evaluate reads it with ``--match``) and its tie report
        beside it (``NAME.ties.json``), atomically."""
        return save_match(path, self.mapping, ties=self.extra.get("ties"))


MatchLike = Union[None, str, "os.PathLike[str]", MatchResult, Mapping[int, int]]


def _metadata(meta: Optional[Metadata], meta_dir: Optional[PathLike], quiet: bool) -> Metadata:
    return meta if meta is not None else load_metadata(meta_dir, quiet=quiet)


def _loaded_match(match: MatchLike, subset: Subset) -> Optional[Match]:
    """The match to apply: a file read and checked, or an in-memory match checked as a file would be."""
    if match is None:
        return None
    if isinstance(match, (str, os.PathLike)):
        return load_match(match, subset.num_classes)
    mapping = match.mapping if isinstance(match, MatchResult) else match
    if not isinstance(mapping, Mapping):
        raise TypeError(f"match is a {type(match).__name__}: pass a match file, a MatchResult or a "
                        "{prediction id: class id} mapping")
    return parse_match(match_to_json(dict(mapping)), subset.num_classes, source="the match given", path=IN_MEMORY)


def evaluate(predict_dir: PathLike, gt_dir: PathLike, mode: Union[int, str, Subset], match: MatchLike = None,
             workers: int = 2, meta_dir: Optional[PathLike] = None, quiet: bool = True, device: str = "auto",
             meta: Optional[Metadata] = None, names: Optional[Sequence[str]] = None) -> EvaluationResult:
    """The numbers of ``imagenets evaluate`` over the official validation list (or the mask paths ``names``).

    ``match``: a match file, a :class:`MatchResult` or a ``{prediction id: class id}`` mapping. The lists
    come from ``meta`` / ``meta_dir`` / ``$IMAGENETS_META_DIR`` / the cache, as for the command.
    """
    subset = get_subset(mode)
    lists = _metadata(meta, meta_dir, quiet)
    result = evaluate_predictions(Path(predict_dir), Path(gt_dir), subset, lists, match=_loaded_match(match, subset),
                                  workers=workers, device=device, quiet=quiet,
                                  names=None if names is None else list(names))
    return EvaluationResult.from_dict(result)


def match(predict_dir: PathLike, gt_dir: PathLike, mode: Union[int, str, Subset], method: str = "image",
          workers: int = 2, meta_dir: Optional[PathLike] = None, quiet: bool = True, device: str = "auto",
          meta: Optional[Metadata] = None) -> MatchResult:
    """The match ``imagenets match`` finds (``method`` "image", the benchmark's, or "pixel")."""
    return MatchResult.from_dict(compute_match(Path(predict_dir), Path(gt_dir), get_subset(mode),
                                               _metadata(meta, meta_dir, quiet), method=method,
                                               workers=workers, device=device, quiet=quiet))
