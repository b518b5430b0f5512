"""The ImageNet-S metrics as a small accumulator: ``update(gt, pred)`` per image, ``compute()`` at the end.

Semantics follow ``spec/evaluation.md`` exactly; counts are int64, ratios float64.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

import numpy as np

from imagenets.idmaps import id_map_pairs
from imagenets.subsets import IGNORE

from .kernel import JointTable, joint_table

SCOPES = ("all", "S", "MS", "ML", "L")          # all pixels, then the four object-size buckets
STATS = ("I", "P", "G", "BI", "BP", "BG")        # intersections, prediction and GT counts; B* = boundary
SUMMARY_KEYS = ("mIoU", "mBIoU", "S", "MS", "ML", "L", "BS", "BMS", "BML", "BL", "Acc", "FMeasure")
_I, _P, _G, _BI, _BP, _BG = range(6)


class InvalidGroundTruth(ValueError):
    """A GT id outside 0..K and other than the ignore id."""


def size_bucket(pixels: np.ndarray, kept: int) -> np.ndarray:
    """Bucket index (0=S, 1=MS, 2=ML, 3=L) of classes with ``pixels`` of ``kept`` pixels.

    ``s = ceil(100 * n / N)`` in exact integer arithmetic.
    """
    s = (100 * pixels + kept - 1) // kept
    return np.searchsorted(np.array([5, 25, 50]), s, side="left")


def iou(i: np.ndarray, p: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``100 * I / (G + P - I)``, 0 where the denominator is 0."""
    denom = (g + p - i).astype(np.float64)
    out = np.zeros(denom.shape, dtype=np.float64)
    np.divide(100.0 * i, denom, out=out, where=denom > 0)
    return out


def f_measure(tp: int, t: int, p: int) -> float:
    """The spec's foreground F-measure of one image (beta^2 = 0.3)."""
    recall = tp / (t + 1e-20)
    precision = tp / (p + 1e-20)
    return 1.3 * precision * recall / (0.3 * precision + recall + 1e-20)


class SegmentationMetrics:
    """Accumulates counts over images; ``compute()`` gives mIoU and its companions."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.counts = np.zeros((len(SCOPES), len(STATS), num_classes + 1), dtype=np.int64)
        self.images = 0
        self.correct = 0
        self.f_sum = 0.0
        self.out_of_range_pixels = 0
        self.out_of_range_images = 0

    # -- accumulation ------------------------------------------------------------------
    def update(self, gt: Any, pred: Any, pred_lut: Optional[np.ndarray] = None) -> None:
        """Add one image (HxW int ids; match applied, or a one-to-one match given as ``pred_lut``), or a
        batch (NxHxW each: N images); numpy arrays or torch tensors on any device (e.g. in a training loop)."""
        for gt_ids, pred_ids in id_map_pairs(gt, pred):
            self.update_table(joint_table(gt_ids, pred_ids, self.num_classes, pred_lut=pred_lut))

    def update_table(self, table: JointTable) -> None:
        """Add one image from its joint table."""
        k = self.num_classes
        keep = table.gt_ids != IGNORE
        gt_ids = table.gt_ids[keep]
        if gt_ids.size and gt_ids[-1] > k:
            raise InvalidGroundTruth(int(gt_ids[-1]))
        t = table.counts[keep]
        pred_ids = table.pred_ids
        self.images += 1
        if table.out_of_range:
            self.out_of_range_pixels += table.out_of_range
            self.out_of_range_images += 1
        if not gt_ids.size:
            return  # nothing left after dropping ignore: counts nowhere, F and Acc count 0

        by_cell = t.sum(axis=(2, 3))                     # (nG, nQ)
        gt_pixels = by_cell.sum(axis=1)                  # Gc per GT row
        gt_border = (t[:, :, 1, 0] + t[:, :, 1, 1]).sum(axis=1)   # BGc per GT row
        pred_border = t[:, :, 0, 1] + t[:, :, 1, 1]                # BPc per (row, col)
        kept = int(gt_pixels.sum())

        # Scope membership of each GT row: "all" always; a class row its bucket; the
        # background row every bucket that has a class in this image.
        member = np.zeros((len(SCOPES), gt_ids.size), dtype=np.int64)
        member[0] = 1
        is_class = gt_ids > 0
        buckets = size_bucket(gt_pixels[is_class], kept)
        member[1 + buckets, np.flatnonzero(is_class)] = 1
        if not is_class[0]:  # row 0 is the background (ids are sorted)
            present = np.zeros(len(SCOPES), dtype=np.int64)
            present[1 + buckets] = 1
            member[1:, 0] = present[1:]

        c = self.counts
        c[:, _G, gt_ids] += member * gt_pixels
        c[:, _BG, gt_ids] += member * gt_border
        n_pred = pred_ids.size
        c[:, _P, pred_ids] += member @ by_cell[:, :n_pred]
        c[:, _BP, pred_ids] += member @ pred_border[:, :n_pred]
        # GT rows whose id is also a prediction column (both id lists are sorted).
        cols = np.minimum(np.searchsorted(pred_ids, gt_ids), max(n_pred - 1, 0))
        rows = np.flatnonzero(pred_ids[cols] == gt_ids) if n_pred else cols[:0]
        if rows.size:
            cols = cols[rows]
            common = gt_ids[rows]
            c[:, _I, common] += member[:, rows] * by_cell[rows, cols]
            c[:, _BI, common] += member[:, rows] * t[rows, cols, 1, 1]

        # Image-level accuracy: the most predicted class in 1..K (ties: smallest id; none: 1).
        pred_pixels = by_cell.sum(axis=0)[:n_pred]
        # With no class predicted c* = 1 and Pc[c*] = 0, so the image is simply not correct.
        cand = pred_ids >= 1
        if cand.any():
            cand_pixels = pred_pixels[cand]
            j = int(np.argmax(cand_pixels))
            if cand_pixels[j] > 0 and pred_ids[cand][j] in gt_ids[is_class]:
                self.correct += 1

        # Foreground F-measure: any non-zero id is foreground (out-of-range ones included).
        # Column 0 holds the prediction 0 when present (ids are sorted); every other column is foreground.
        t_fg = int(gt_pixels[is_class].sum())
        p_fg, tp = kept, t_fg
        if n_pred and pred_ids[0] == 0:
            p_fg -= int(by_cell[:, 0].sum())
            tp -= int(by_cell[is_class, 0].sum())
        self.f_sum += f_measure(tp, t_fg, p_fg)

    def merge(self, other: "SegmentationMetrics") -> "SegmentationMetrics":
        """Add another accumulator's counts (e.g. from a worker)."""
        self.counts += other.counts
        self.images += other.images
        self.correct += other.correct
        self.f_sum += other.f_sum
        self.out_of_range_pixels += other.out_of_range_pixels
        self.out_of_range_images += other.out_of_range_images
        return self

    # -- results -----------------------------------------------------------------------
    def ious(self, scope: int = 0, boundary: bool = False) -> np.ndarray:
        c = self.counts[scope]
        if boundary:
            return iou(c[_BI], c[_BP], c[_BG])
        return iou(c[_I], c[_P], c[_G])

    def compute(self) -> Dict[str, object]:
        """The summary metrics (percent, full precision) and ``IoUs`` (index 0 = other)."""
        result: Dict[str, object] = {
            "mIoU": float(self.ious().mean()),
            "mBIoU": float(self.ious(boundary=True).mean()),
        }
        for boundary in (False, True):
            for scope in range(1, len(SCOPES)):
                present = self.counts[scope, _BG if boundary else _G] > 0
                values = self.ious(scope, boundary)[present]
                key = ("B" if boundary else "") + SCOPES[scope]
                result[key] = float(values.mean()) if values.size else math.nan
        n = max(self.images, 1)
        result["Acc"] = 100.0 * self.correct / n
        result["FMeasure"] = 100.0 * self.f_sum / n
        result["IoUs"] = [float(v) for v in self.ious()]
        return result


def summary_only(result: Dict[str, object]) -> List[float]:
    return [result[k] for k in SUMMARY_KEYS]  # type: ignore[misc]


def nan_to_none(value: Optional[float]) -> Optional[float]:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
