"""The threshold curve of a prediction folder (library half of ``threshold_curve.py``): cheap checks,
one counting pass for every threshold, then the normal evaluation at the best threshold."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from imagenets.errors import UserError, warn
from imagenets.metadata import Metadata
from imagenets.subsets import Subset

from .inputs import Pair, invalid_gt_error, prepare_pairs, read_pair
from .kernel import joint_table
from .matchfile import Match, load_match, match_to_json
from .metrics import SUMMARY_KEYS, InvalidGroundTruth, SegmentationMetrics
from .parallel import map_reduce
from .rematch import RematchCounts
from .score_bins import ScoreBins
from .scores import below, check_scores, read_scores
from .thresholds import CurveCounts, score_table

Item = Tuple[Pair, Path]  # an evaluated image and its score file
CURVE_KEYS = ("mIoU", "Acc", "FMeasure")


class _CurveChunk:
    """Worker job: per-threshold counts of a chunk of images (picklable)."""

    def __init__(self, num_classes: int, bins: ScoreBins, lut: Optional[np.ndarray], rematch: bool):
        self.num_classes, self.bins, self.lut, self.rematch = num_classes, bins, lut, rematch

    def __call__(self, items: Sequence[Item]):
        k = self.num_classes
        counts = (RematchCounts if self.rematch else CurveCounts)(k, self.bins.count)
        for pair, score_file in items:
            gt, pred = read_pair(pair)
            bins = self.bins(read_scores(score_file, pred.shape))
            try:
                counts.update(score_table(gt, pred, bins, k, self.bins.count, self.lut))
            except InvalidGroundTruth as exc:
                raise invalid_gt_error(pair, exc.args[0], k) from None
        return counts


class _ThresholdedChunk:
    """Worker job: the normal evaluation (boundaries included) of predictions thresholded at one t.

    Applies the match as ``evaluate`` does: in the kernel, after the raw ids' boundaries.
    """

    def __init__(self, num_classes: int, threshold: float, lut: Optional[np.ndarray]):
        self.num_classes, self.threshold, self.lut = num_classes, threshold, lut

    def __call__(self, items: Sequence[Item]) -> SegmentationMetrics:
        metrics = SegmentationMetrics(self.num_classes, sync_on_compute=False)
        tables = []
        for pair, score_file in items:
            gt, pred = read_pair(pair)
            pred[below(read_scores(score_file, pred.shape), self.threshold)] = 0
            tables.append(joint_table(gt, pred, self.num_classes, pred_lut=self.lut))
        try:
            metrics.update_tables(tables)  # the chunk at once, as evaluate counts it
        except InvalidGroundTruth as exc:
            raise invalid_gt_error(items[exc.index][0], exc.args[0], self.num_classes) from None
        return metrics


def check_inputs(predict_dir: Path, scores_dir: Path, gt_dir: Path, names: Sequence[str],
                 quiet: bool = False) -> List[Item]:
    """Every check that needs no decoding: PNG pairs, then score files (presence, format, size)."""
    pairs = prepare_pairs(names, Path(gt_dir), Path(predict_dir), quiet=quiet)
    return list(zip(pairs, check_scores(pairs, Path(scores_dir), quiet=quiet)))


def count_curve(items: Sequence[Item], num_classes: int, thresholds: np.ndarray,
                match: Optional[Match], rematch: bool, workers: int = 2, quiet: bool = False):
    """The one pass: per-threshold counts of every image (CurveCounts, or RematchCounts)."""
    bins = ScoreBins(thresholds)
    lut = match.lut if match is not None else None
    counts = (RematchCounts if rematch else CurveCounts)(num_classes, bins.count)
    map_reduce(items, _CurveChunk(num_classes, bins, lut, rematch), counts.merge, workers=workers, quiet=quiet,
               desc="threshold curve")
    return counts


def evaluate_thresholded(items: Sequence[Item], num_classes: int, threshold: float,
                         match: Optional[Match], workers: int = 2,
                         quiet: bool = False) -> SegmentationMetrics:
    """The full metrics of the predictions with every pixel scored below ``threshold`` set to 0."""
    threshold = float(threshold)
    job = _ThresholdedChunk(num_classes, threshold, match.lut if match is not None else None)
    total = SegmentationMetrics(num_classes, sync_on_compute=False)
    map_reduce(items, job, total.merge, workers=workers, quiet=quiet, desc=f"evaluating at t={threshold!r}")
    return total


def _warn_out_of_range(counts, matched: bool, k: int) -> None:
    if counts.out_of_range_pixels:
        what = "prediction ids the match does not cover" if matched else f"prediction ids outside 0..{k}"
        warn(f"{counts.out_of_range_pixels} pixels in {counts.out_of_range_images} images have {what}: "
             "they count nowhere in IoU and, where kept, as foreground in FMeasure")


def threshold_curve(predict_dir: Path, scores_dir: Path, gt_dir: Path, subset: Subset, meta: Metadata,
                    thresholds: np.ndarray, match_file: Optional[Path] = None, rematch: bool = False,
                    workers: int = 2, quiet: bool = False, names: Optional[List[str]] = None,
                    on_best: Optional[Callable[[SegmentationMetrics], None]] = None) -> Dict[str, object]:
    """mIoU, Acc and FMeasure at every threshold, the best one (by mIoU) and its full evaluation
    (``on_best`` gets its accumulator: the per-class numbers of ``threshold-curve --report``)."""
    k = subset.num_classes
    if match_file is not None and rematch:
        raise UserError("--match and --rematch exclude each other: give a fixed match, or rematch at every threshold")
    match = load_match(match_file, k) if match_file else None
    if match is not None and match.mapping.get(0, 0) != 0:
        # Pixels below t become 0 before the match (PASS's rule): the match must keep 0 at "other".
        raise UserError(f"--match {match_file} maps id 0 to class {match.mapping[0]}: the curve turns "
                        "low-confidence pixels into 0 ('other'), which this match would make that class; use a "
                        "match that keeps \"0\": 0")
    if names is None:
        names = [mask for _image, mask in meta.validation_names(subset)]
    items = check_inputs(predict_dir, scores_dir, gt_dir, names, quiet=quiet)
    counts = count_curve(items, k, thresholds, match, rematch, workers=workers, quiet=quiet)
    _warn_out_of_range(counts, match is not None, k)
    objectives = None
    if rematch:
        assignments, objectives = counts.matches()
        rows = counts.compute(assignments)
    else:
        rows = counts.compute()
    best = int(np.argmax([row["mIoU"] for row in rows]))  # first maximum: the smallest such threshold
    if rematch:
        match = Match.from_mapping({0: 0, **{p: int(g) for p, g in enumerate(assignments[best], 1)}})
    metrics = evaluate_thresholded(items, k, thresholds[best], match, workers=workers, quiet=quiet)
    full = metrics.compute()
    _same_as_curve(full, rows[best], thresholds[best])
    if on_best is not None:
        on_best(metrics)
    curve = [{"threshold": float(t), **row} for t, row in zip(thresholds, rows)]
    if objectives is not None:
        for row, objective in zip(curve, objectives):
            row["objective"] = int(objective)
    result: Dict[str, object] = {
        "subset": subset.name, "mode": k, "images": counts.images, "predict_dir": str(predict_dir),
        "scores_dir": str(scores_dir), "gt_dir": str(gt_dir),
        "match": str(match_file) if match_file else None, "rematch": rematch,
        "out_of_range_pixels": counts.out_of_range_pixels,
        "thresholds": [float(t) for t in thresholds], "curve": curve,
        "best_threshold": float(thresholds[best]),
        "best": {"threshold": float(thresholds[best]), "images": metrics.images,
                 "out_of_range_pixels": metrics.out_of_range_pixels,
                 **{key: full[key] for key in SUMMARY_KEYS}, "IoUs": full["IoUs"]},
    }
    if rematch:
        result["best_match"] = match_to_json(assignments[best])
    return result


def _same_as_curve(full: Dict[str, object], row: Dict[str, float], threshold: float) -> None:
    """The one-pass counts and the real thresholded evaluation must agree: never print a wrong curve."""
    for key in CURVE_KEYS:
        if not abs(float(full[key]) - row[key]) <= 1e-9 * max(1.0, abs(row[key])):  # type: ignore[arg-type]
            raise RuntimeError(f"internal error: {key} at t={threshold!r} is {row[key]} from the curve but "
                               f"{full[key]} from the thresholded evaluation; please report this")
