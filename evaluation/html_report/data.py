"""What the report page shows, gathered from one evaluation's tally: per class, per size bucket, per image."""

from __future__ import annotations

import datetime
import math
import platform
from dataclasses import dataclass, field
from importlib import metadata as distributions
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from imagenets import __version__
from imagenets.errors import UserError
from imagenets.fileio import read_json
from imagenets.metadata import Metadata
from imagenets.subsets import OTHER, Subset

from ..engine.matchfile import Match, ties_belong, ties_path
from ..engine.report import OFFICIAL_LISTS
from ..engine.metrics import SCOPES, STATS, ImageCounts, SegmentationMetrics, iou

I, P, G = STATS.index("I"), STATS.index("P"), STATS.index("G")
BUCKETS = SCOPES[1:]  # S, MS, ML, L
#: Most confused classes shown per class.
CONFUSED = 3


@dataclass
class ClassRow:
    """One id 0..K of the class table (percentages; None where a value does not exist)."""

    id: int
    wnid: str
    name: str
    iou: float
    biou: float
    gt_share: float                      # % of all scored pixels that are this class in GT
    pred_share: float                    # % of all scored pixels predicted as this class
    buckets: List[Optional[float]]       # IoU of this class's objects in S, MS, ML, L (None: no object there)
    images: Optional[int] = None         # images whose GT holds the class
    confused: List[Tuple[int, float]] = field(default_factory=list)  # (predicted id, % of its GT pixels)
    clusters: Optional[List[Tuple[int, Optional[float]]]] = None     # (cluster id, purity %) under a match


@dataclass
class ImageScore:
    """One validation image's own scores (per-image IoU as in ``visualize``; NaN when nothing is scored)."""

    index: int
    mask: str
    image: str
    iou: float
    fmeasure: float
    correct: bool


@dataclass
class ReportData:
    """Everything the page shows. ``result`` is the command's JSON-ready result (summary, ci95, context)."""

    result: Dict[str, object]
    classes: List[ClassRow]
    buckets: Dict[str, Dict[str, Optional[float]]]   # S/MS/ML/L -> iou, biou, objects, classes
    images: Optional[List[ImageScore]] = None
    confusions: List[Tuple[int, int, int, float]] = field(default_factory=list)  # (GT, pred, pixels, %)
    context: Dict[str, object] = field(default_factory=dict)
    curve: Optional[Dict[str, object]] = None        # a threshold-curve run's result
    notes: List[str] = field(default_factory=list)   # what this page cannot show, and why


def class_rows(metrics: SegmentationMetrics, meta: Metadata, subset: Subset) -> List[ClassRow]:
    """Per id 0..K: IoU, boundary IoU, pixel shares and the IoU of its objects in each size bucket."""
    counts = metrics.counts
    k = metrics.num_classes
    ious, bious = metrics.ious(0), metrics.ious(0, boundary=True)
    total = max(int(counts[0, G].sum()), 1)
    gt_share = 100.0 * counts[0, G] / total
    pred_share = 100.0 * counts[0, P] / total
    per_bucket = [(iou(counts[s, I], counts[s, P], counts[s, G]), counts[s, G] > 0) for s in range(1, len(SCOPES))]
    wnids = ["-"] + list(meta.categories(subset))
    names = ["other (background)"] + list(meta.class_names(subset))
    return [ClassRow(c, wnids[c], names[c], float(ious[c]), float(bious[c]), float(gt_share[c]),
                     float(pred_share[c]), [float(v[c]) if present[c] else None for v, present in per_bucket])
            for c in range(k + 1)]


def bucket_table(metrics: SegmentationMetrics, result: Dict[str, object],
                 counts: Optional[ImageCounts]) -> Dict[str, Dict[str, Optional[float]]]:
    """Per size bucket: its mIoU and boundary mIoU (the summary's), classes with objects there and, with
    per-image counts, the number of objects (image x class) in it."""
    k1 = metrics.num_classes + 1
    objects: Dict[str, Optional[int]] = {b: None for b in BUCKETS}
    if counts is not None:
        scope, stat, cls = counts.keys // (len(STATS) * k1), (counts.keys // k1) % len(STATS), counts.keys % k1
        gt_objects = (stat == G) & (cls > 0) & (counts.values > 0)
        found = np.bincount(scope[gt_objects], minlength=len(SCOPES))
        objects = {b: int(found[s]) for s, b in enumerate(BUCKETS, 1)}
    return {b: {"iou": _nan_none(result.get(b)), "biou": _nan_none(result.get("B" + b)),
                "classes": int((metrics.counts[s, G, 1:] > 0).sum()), "objects": objects[b]}
            for s, b in enumerate(BUCKETS, 1)}


def _nan_none(value) -> Optional[float]:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def image_scores(counts: ImageCounts, names: Sequence[str], images: Dict[str, str]) -> List[ImageScore]:
    """Every image's IoU (mean over the ids 0..K in its GT or prediction, ignore dropped), F-measure and
    Acc, from its own counts: the numbers ``visualize`` and ``--per-image`` give, without a second read."""
    k1 = counts.num_classes + 1
    n = counts.images
    row = np.repeat(np.arange(n, dtype=np.int64), np.diff(counts.indptr))
    keys = counts.keys
    all_scope = keys < len(STATS) * k1                   # scope "all" comes first
    stat, cls, row = keys[all_scope] // k1, keys[all_scope] % k1, row[all_scope]
    values = counts.values[all_scope].astype(np.float64)
    cell, at = np.unique(row * k1 + cls, return_inverse=True)
    sums = {s: np.bincount(at, weights=np.where(stat == s, values, 0.0), minlength=cell.size) for s in (I, P, G)}
    union = sums[G] + sums[P] - sums[I]
    present = union > 0
    owner = cell // k1
    per_cell = np.divide(100.0 * sums[I], union, out=np.zeros_like(union), where=present)
    total = np.bincount(owner[present], weights=per_cell[present], minlength=n)
    ids = np.bincount(owner[present], minlength=n)
    mean = np.divide(total, ids, out=np.full(n, math.nan), where=ids > 0)
    return [ImageScore(i, name, images.get(name, str(Path(name).with_suffix(".JPEG"))), float(mean[i]),
                       100.0 * float(counts.f[i]), bool(counts.correct[i]))
            for i, name in enumerate(names)]


def classes_per_image(counts: ImageCounts) -> np.ndarray:
    """Per class 0..K: the images whose GT holds it."""
    k1 = counts.num_classes + 1
    gt = (counts.keys // k1 == G) & (counts.values > 0)   # scope "all", stat G
    return np.bincount(counts.keys[gt] % k1, minlength=k1)


def add_confusions(rows: List[ClassRow], confusion: np.ndarray, top: int = 20) -> List[Tuple[int, int, int, float]]:
    """Fill each class's most confused predictions from the [GT, prediction] pixel matrix (last column: ids
    outside 0..K or not matched); returns the largest class-to-class confusions overall."""
    k = confusion.shape[0] - 1
    off = confusion.astype(np.int64).copy()
    np.fill_diagonal(off[:, :k + 1], 0)
    gt_pixels = np.maximum(confusion.sum(axis=1), 1)
    order = np.argsort(-off, axis=1, kind="stable")[:, :CONFUSED]
    for c, row in enumerate(rows):
        row.confused = [(int(p), 100.0 * off[c, p] / gt_pixels[c]) for p in order[c] if off[c, p] > 0]
    between = off[1:, 1:k + 1]  # class to class: "other" and unmatched ids are in the table already
    flat = np.argsort(-between, axis=None, kind="stable")[:top]
    found = []
    for f in flat:
        g, p = np.unravel_index(f, between.shape)
        if between[g, p] > 0:
            found.append((int(g) + 1, int(p) + 1, int(between[g, p]), 100.0 * between[g, p] / gt_pixels[g + 1]))
    return found


def add_clusters(rows: List[ClassRow], match: Match, confusion: Optional[np.ndarray],
                 cluster_pixels: Optional[np.ndarray]) -> None:
    """Each class's clusters and their purity: the share of a cluster's scored pixels whose GT is its class
    (from the raw cluster counts under a many-to-one match, else from the matched confusion's column)."""
    received: Dict[int, List[int]] = {row.id: [] for row in rows}
    for cluster, cls in sorted(match.mapping.items()):
        if cluster != OTHER and cls in received:
            received[cls].append(cluster)
    for row in rows:
        shares: List[Tuple[int, Optional[float]]] = []
        for cluster in received[row.id]:
            share = None
            if cluster_pixels is not None:
                if cluster < cluster_pixels.shape[0] and cluster_pixels[cluster].sum():
                    share = 100.0 * cluster_pixels[cluster, row.id] / cluster_pixels[cluster].sum()
            elif confusion is not None and row.id != OTHER and confusion[:, row.id].sum():
                share = 100.0 * confusion[row.id, row.id] / confusion[:, row.id].sum()
            shares.append((cluster, share))
        row.clusters = shares


def validation_images(meta: Metadata, subset: Subset) -> Dict[str, str]:
    """Mask path -> image path of the validation list."""
    return {mask: image for image, mask in meta.validation_names(subset)}


def tie_report(match_path: Optional[str]) -> Optional[Dict[str, object]]:
    """The match's tie report, when one lies beside its mapping (``match`` writes it; older runs have none).

    Read tolerantly: any JSON object; None when there is none or it cannot be read.
    """
    if not match_path:
        return None
    candidate = ties_path(match_path)
    if not candidate.is_file():
        return None
    try:
        found = read_json(candidate, "tie report")
    except UserError:  # a report never fails over an unreadable side file
        return None
    if not isinstance(found, dict):
        return None
    if not ties_belong(found, match_path):  # the mapping was replaced since (copied over, edited...)
        return {"file": str(candidate), "not shown": "it was written for another content of the match file"}
    return {"file": str(candidate), **found}


def run_context(result: Dict[str, object], meta: Metadata) -> Dict[str, object]:
    """Where the numbers come from: lists, match and its tie report, versions, date."""
    def version(name: str) -> str:
        try:
            return distributions.version(name)
        except distributions.PackageNotFoundError:
            return "not installed"

    return {OFFICIAL_LISTS: meta.official, "metadata": f"{meta.root} ({meta.source})",
            "match": result.get("match"), "ties": tie_report(result.get("match")),  # type: ignore[arg-type]
            "versions": {"imagenets": __version__, "python": platform.python_version(),
                         "numpy": np.__version__, "pillow": version("pillow"), "torch": version("torch")},
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
