"""Evaluate a folder of predictions over a split: checks, parallel counting, the summary (the library half of ``evaluator.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from imagenets.errors import warn
from imagenets.metadata import Metadata
from imagenets.subsets import Subset

from . import distributed
from .clusters import ClusterPixels
from .confusion import PixelConfusion, best_relabelled_miou, looks_like_clusters
from .inputs import Pair, invalid_gt_error, prepare_pairs, read_pair
from .kernel import joint_table
from .matchfile import UNCOVERED, Match, load_match
from .metrics import SUMMARY_KEYS, InvalidGroundTruth, SegmentationMetrics
from .parallel import counting_device, map_reduce


@dataclass(frozen=True)
class Keep:
    """What an evaluation keeps beyond the benchmark's accumulators (all off: the plain benchmark)."""

    image_counts: bool = False   # every image's own counts (bootstrap, --save-counts, --per-image)
    per_image: bool = False      # size, GT classes and per-image IoU of every image (--per-image)
    confusion: bool = False      # the pixel confusion matrix (--confusion; always without a match: the hint)
    clusters: bool = False       # raw cluster x class pixels, under a many-to-one match (--report's purity)


@dataclass
class Tally:
    """Everything one evaluation accumulated; ``merge`` adds a worker's part (images stay in order)."""

    metrics: SegmentationMetrics
    confusion: Optional[PixelConfusion] = None
    images: Optional[List[Dict[str, object]]] = None   # per image: width, height, gt_classes, iou
    names: List[str] = field(default_factory=list)
    context: Dict[str, object] = field(default_factory=dict)
    clusters: Optional[ClusterPixels] = None
    match: Optional[Match] = None                      # the match the counts went through, as read once

    def merge(self, other: "Tally") -> "Tally":
        self.metrics.merge(other.metrics)
        if self.confusion is not None:
            self.confusion.merge(other.confusion)
        if self.clusters is not None:
            self.clusters.merge(other.clusters)
        if self.images is not None:
            self.images += other.images
        return self

    def over_ranks(self) -> "Tally":
        """Every rank's tally added up, in rank order (the images' order: shards are contiguous); as it is
        outside a sharded command. Counts are summed by torch.distributed, per-image parts gathered."""
        if not distributed.sharding():
            return self
        # The rest travels whole and is merged as workers' tallies are (whatever a Tally holds).
        rest = replace(self, metrics=SegmentationMetrics(self.metrics.num_classes, sync_on_compute=False))
        parts = distributed.gather_over_ranks(rest)
        total = parts[0]
        for part in parts[1:]:
            total.merge(part)
        total.metrics = self.metrics.sync()
        return total


class _EvaluateChunk:
    """Worker job: accumulate the metrics of a chunk of pairs (picklable)."""

    def __init__(self, num_classes: int, lut: Optional[np.ndarray], keep: Keep = Keep()):
        self.num_classes = num_classes
        self.lut = lut  # the match, applied inside the kernel (boundaries on the raw ids first)
        self.keep = keep

    def empty(self) -> Tally:
        k, keep = self.num_classes, self.keep
        clusters = ClusterPixels(k, int(np.flatnonzero(self.lut != UNCOVERED).max())) if keep.clusters else None
        return Tally(SegmentationMetrics(k, keep_images=keep.image_counts, sync_on_compute=False),
                     PixelConfusion(k) if keep.confusion else None, [] if keep.per_image else None,
                     clusters=clusters)

    def __call__(self, pairs: Sequence[Pair]) -> Tally:
        tally = self.empty()
        tables = []
        for pair in pairs:
            gt, pred = read_pair(pair)
            tables.append(joint_table(gt, pred, self.num_classes, pred_lut=self.lut))
            if tally.images is not None:
                tally.images.append(self._image_row(gt, pred))
            if tally.clusters is not None:
                tally.clusters.update(gt, pred)
        try:
            cells = tally.metrics.update_tables(tables)  # the chunk at once: per-image calls cost more
        except InvalidGroundTruth as exc:
            raise invalid_gt_error(pairs[exc.index], exc.args[0], self.num_classes) from None
        if tally.confusion is not None:
            tally.confusion.add_cells(cells)
        return tally

    def _image_row(self, gt: np.ndarray, pred: np.ndarray) -> Dict[str, object]:
        from imagenets.evaluation.visualize import image_iou  # the gallery's per-image IoU, loaded when asked for

        matched = self.lut.take(pred) if self.lut is not None else pred
        score, gt_ids, _pred_ids = image_iou(gt, matched, self.num_classes)
        return {"width": gt.shape[1], "height": gt.shape[0], "iou": score,
                "gt_classes": " ".join(str(c) for c in gt_ids if c > 0)}


def count_predictions(predict_dir: Path, gt_dir: Path, subset: Subset, meta: Metadata,
                      match_file: Optional[Path] = None, workers: int = 2, device: str = "auto",
                      quiet: bool = False, names: Optional[List[str]] = None, keep: Keep = Keep(),
                      match: Optional[Match] = None) -> Tally:
    """Accumulate the counts of a prediction folder over the subset's validation list (or the mask paths ``names``).

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
    # Without a match the confusion is kept anyway: it tells whether the ids look like clusters.
    keep = replace(keep, confusion=keep.confusion or match is None,
                   clusters=keep.clusters and match is not None and not match.one_to_one)
    job = _EvaluateChunk(k, lut, keep)
    total = job.empty()
    # Under torchrun each rank counts its share; the ranks' counts are then summed.
    with distributed.share_failure():
        map_reduce(distributed.shard(pairs), job, total.merge, workers=workers, quiet=quiet, desc="evaluating")
    total = total.over_ranks()
    total.names, total.match = [pair.name for pair in pairs], match
    total.context = {"subset": subset.name, "mode": k, "predict_dir": str(predict_dir), "gt_dir": str(gt_dir),
                     "match": match.path if match is not None else None, "match_digest": ""}
    if match is not None:
        from .countsfile import match_digest  # what --save-counts records: which match the counts went through

        total.context["match_digest"] = match_digest(match.mapping)
    metrics = total.metrics
    if metrics.out_of_range_pixels:
        what = ("prediction ids the match does not cover" if lut is not None
                else f"prediction ids outside 0..{k}")
        warn(f"{metrics.out_of_range_pixels} pixels in {metrics.out_of_range_images} images have {what}: "
             "they count nowhere in IoU and as foreground in FMeasure")
    return total


def summarize_tally(tally: Tally) -> Dict[str, object]:
    """The benchmark's result of a tally (run context, summary keys, IoUs); hints when ids look like clusters."""
    metrics = tally.metrics
    result = metrics.compute()
    context = tally.context
    if context["match"] is None and tally.confusion is not None:
        cluster_hint(tally.confusion.matrix(), result["mIoU"])
    return {"subset": context["subset"], "mode": context["mode"], "images": metrics.images,
            "predict_dir": context["predict_dir"], "gt_dir": context["gt_dir"], "match": context["match"],
            "out_of_range_pixels": metrics.out_of_range_pixels,
            **{key: result[key] for key in SUMMARY_KEYS}, "IoUs": result["IoUs"]}


def cluster_hint(confusion: np.ndarray, plain: float) -> None:
    """One warning when a one-to-one relabelling would give far more than the ids as they are."""
    if not plain < 50:  # a relabelled mIoU is at most 100: "more than twice" cannot hold
        return
    relabelled = best_relabelled_miou(confusion)
    if looks_like_clusters(plain, relabelled):
        warn(f"mIoU {plain:.2f}, but relabelling the prediction ids one-to-one would give about "
             f"{relabelled:.2f}: they look like cluster ids; map them to classes first with match.py "
             "(`imagenets match`) and pass its file as --match")


def evaluate_predictions(predict_dir: Path, gt_dir: Path, subset: Subset, meta: Metadata,
                         match_file: Optional[Path] = None, workers: int = 2, device: str = "auto",
                         quiet: bool = False, names: Optional[List[str]] = None,
                         match: Optional[Match] = None) -> Dict[str, object]:
    """Evaluate a prediction folder over the subset's validation list (or the mask paths ``names``)."""
    return summarize_tally(count_predictions(predict_dir, gt_dir, subset, meta, match_file, workers, device,
                                             quiet, names, match=match))
