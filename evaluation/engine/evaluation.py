"""Evaluate a folder of predictions over a split: checks, parallel counting, the summary (the library half of ``evaluator.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from imagenets.errors import warn
from imagenets.metadata import Metadata
from imagenets.subsets import Subset

from .inputs import Pair, invalid_gt_error, prepare_pairs, read_pair
from .matchfile import Match, load_match
from .metrics import SUMMARY_KEYS, InvalidGroundTruth, SegmentationMetrics
from .parallel import counting_device, map_reduce


class _EvaluateChunk:
    """Worker job: accumulate the metrics of a chunk of pairs (picklable)."""

    def __init__(self, num_classes: int, lut: Optional[np.ndarray]):
        self.num_classes = num_classes
        self.lut = lut  # the match, applied inside the kernel (boundaries on the raw ids first)

    def __call__(self, pairs: Sequence[Pair]) -> SegmentationMetrics:
        metrics = SegmentationMetrics(self.num_classes)
        for pair in pairs:
            gt, pred = read_pair(pair)
            try:
                metrics.update(gt, pred, pred_lut=self.lut)
            except InvalidGroundTruth as exc:
                raise invalid_gt_error(pair, exc.args[0], self.num_classes) from None
        return metrics


def evaluate_predictions(predict_dir: Path, gt_dir: Path, subset: Subset, meta: Metadata,
                         match_file: Optional[Path] = None, workers: int = 2, device: str = "auto",
                         quiet: bool = False, names: Optional[List[str]] = None,
                         match: Optional[Match] = None) -> Dict[str, object]:
    """Evaluate a prediction folder over the subset's validation list (or the mask paths ``names``).

    The match: ``match_file`` (read here), or ``match`` when the caller has read it already.
    """
    counting_device(device, quiet)
    k = subset.num_classes
    if match is None and match_file:
        match = load_match(match_file, k)
    lut = match.lut if match is not None else None
    if names is None:
        names = [mask for _image, mask in meta.validation_names(subset)]
    pairs = prepare_pairs(names, Path(gt_dir), Path(predict_dir), quiet=quiet)
    total = SegmentationMetrics(k)
    map_reduce(pairs, _EvaluateChunk(k, lut), total.merge, workers=workers, quiet=quiet, desc="evaluating")
    if total.out_of_range_pixels:
        what = ("prediction ids the match does not cover" if lut is not None
                else f"prediction ids outside 0..{k}")
        warn(f"{total.out_of_range_pixels} pixels in {total.out_of_range_images} images have {what}: "
             "they count nowhere in IoU and as foreground in FMeasure")
    result = total.compute()
    return {"subset": subset.name, "mode": k, "images": total.images,
            "predict_dir": str(predict_dir), "gt_dir": str(gt_dir),
            "match": match.path if match is not None else None,
            "out_of_range_pixels": total.out_of_range_pixels,
            **{key: result[key] for key in SUMMARY_KEYS}, "IoUs": result["IoUs"]}
