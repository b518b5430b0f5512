"""The ImageNet-S metrics as a small accumulator: ``update(preds=, target=)`` per image or batch,
``compute()`` at the end; ``reset()``, ``state_dict()`` and sums over torch.distributed ranks for training loops.

Semantics follow ``spec/evaluation.md`` exactly; counts are int64, ratios float64.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from imagenets.errors import warn
from imagenets.idmaps import check_has_values, id_map_pairs, is_tensor
from imagenets.subsets import IGNORE

from . import distributed
from .kernel import Cells, JointTable, joint_table, table_cells

SCOPES = ("all", "S", "MS", "ML", "L")          # all pixels, then the four object-size buckets
STATS = ("I", "P", "G", "BI", "BP", "BG")        # intersections, prediction and GT counts; B* = boundary
SUMMARY_KEYS = ("mIoU", "mBIoU", "S", "MS", "ML", "L", "BS", "BMS", "BML", "BL", "Acc", "FMeasure")
BOUNDARY_KEYS = ("mBIoU", "BS", "BMS", "BML", "BL")
_I, _P, _G, _BI, _BP, _BG = range(6)


class InvalidGroundTruth(ValueError):
    """A GT id outside 0..K and other than the ignore id (``args[0]``); ``index``: the image's position in
    a batch."""

    def __init__(self, value: int, index: int = 0):
        super().__init__(value)
        self.index = index

    def __str__(self) -> str:
        return f"ground-truth id {self.args[0]} is neither a class id nor {IGNORE} (ignore)"


#: F-measures are summed exactly, as integers in units of 2**-1074 (the smallest float64 step): the sum
#: then does not depend on the order images are added in (workers, torch.distributed ranks).
_F_UNIT_BITS = 1074
#: The exact sum as int64 limbs of 32 bits (state_dict, all_reduce): room for 2**78 images.
_LIMB_BITS, _LIMBS = 32, 36
#: Devices whose tensors are counted by the numpy kernel (no copy); the others count where they are.
HOST_DEVICES = ("cpu",)
#: The state's scalar counters, in the order sync packs them.
_SCALARS = ("images", "correct", "out_of_range_pixels", "out_of_range_images")


def _exact(f: float) -> int:
    numerator, denominator = f.as_integer_ratio()  # the denominator is a power of two
    return numerator << (_F_UNIT_BITS - denominator.bit_length() + 1)


def _limbs(total: int) -> np.ndarray:
    mask = (1 << _LIMB_BITS) - 1
    return np.array([(total >> (_LIMB_BITS * i)) & mask for i in range(_LIMBS)], dtype=np.int64)


def _from_limbs(limbs: Any) -> int:
    return sum(int(v) << (_LIMB_BITS * i) for i, v in enumerate(limbs))


#: The largest count a state may hold (int64).
_COUNT_MAX = np.iinfo(np.int64).max


def _integer(value: Any, what: str) -> int:
    """A count from a state dict: an int, or a 0-d (one-value) array or tensor, in 0..int64's largest."""
    check_has_values(value, f"state_dict {what!r}")
    if hasattr(value, "item"):
        if getattr(value, "ndim", 0) != 0:
            raise ValueError(f"state_dict {what!r} has shape {tuple(value.shape)}: one count was expected")
        value = value.item()
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or not 0 <= value <= _COUNT_MAX:
        raise ValueError(f"state_dict {what!r} is {value!r}: a count (an integer from 0 to {_COUNT_MAX}) "
                         "was expected")
    return int(value)


def _int64_array(value: Any, shape: tuple, what: str) -> np.ndarray:
    """An int64 array of ``shape`` from a state dict (numpy array or tensor), values 0..int64's largest."""
    check_has_values(value, f"state_dict {what!r}")
    array = value.detach().cpu().numpy() if is_tensor(value) else np.asarray(value)
    if array.shape != shape or array.dtype.kind not in "iu":
        raise ValueError(f"state_dict {what!r} is {array.dtype} {array.shape}: int64 {shape} was expected "
                         "(a state of another num_classes?)")
    if array.size and array.min() < 0:
        raise ValueError(f"state_dict {what!r} holds negative counts")
    if array.size and array.max() > _COUNT_MAX:  # before the cast: uint64 would wrap to negative
        raise ValueError(f"state_dict {what!r} holds counts above {_COUNT_MAX} (int64's largest)")
    return array.astype(np.int64)


def _state_problem(counts: np.ndarray, scalars: Dict[str, int], f_sum: float) -> str:
    """Why counts cannot come from images at all (an IoU or Acc above 100%, counts of no image...), as a
    phrase; "" when they can. What ``load_state_dict`` refuses rather than compute from."""
    images = scalars["images"]
    if images == 0 and (counts.any() or any(scalars.values()) or f_sum):
        return "counts but no image"
    if scalars["correct"] > images or scalars["out_of_range_images"] > images or f_sum > images:
        return f"more Acc-correct images, F-measure or out-of-range images than its {images} images"
    for part, whole in ((_I, _P), (_I, _G), (_BI, _BP), (_BI, _BG), (_BI, _I), (_BP, _P), (_BG, _G)):
        if (counts[:, part] > counts[:, whole]).any():
            return f"more {STATS[part]} than {STATS[whole]} pixels in some class"
    if (counts[1:] > counts[:1]).any():
        return "more pixels in a size bucket than in all"
    return ""


#: Upper ends (percent) of the S, MS and ML buckets; above the last: L.
BUCKET_EDGES = np.array([5, 25, 50], dtype=np.float32)


def size_bucket(pixels: np.ndarray, kept: int) -> np.ndarray:
    """Bucket index (0=S, 1=MS, 2=ML, 3=L) of classes with ``pixels`` of an image's ``kept`` pixels.

    ``s = ceil(100 * n / N)`` computed as the original computes it, in float32 with a rounding at each
    step: ``ceil(float32(float32(n) * 100) / float32(N))`` (spec, "Object size"). On large images this
    differs from the exact ceiling: a class of exactly half of 1,342,182 pixels lands in L, one of
    50.0000047% of 10,737,423 pixels in ML. The counts ``n`` themselves stay exact int64: the
    original's float32 histograms stop counting at 2**24 (16.7M) pixels of one class in one image,
    where it is wrong and we are not (on purpose: that is not reproduced).
    """
    share = np.asarray(pixels).astype(np.float32) * np.float32(100)
    s = np.ceil(share / np.float32(kept))
    return np.searchsorted(BUCKET_EDGES, s, side="left")


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


@dataclass
class ImageCounts:
    """Every image's own increments of the accumulators, as sparse rows (for resampling images).

    Row i holds image i's counts at flat positions of a ``(SCOPES, STATS, K+1)`` array
    (``keys[indptr[i]:indptr[i+1]]``), whether its Acc is correct and its F-measure (0..1).
    """

    num_classes: int
    indptr: np.ndarray   # (n + 1,) int64
    keys: np.ndarray     # int64 flat positions
    values: np.ndarray   # int64 pixel counts
    correct: np.ndarray  # (n,) bool
    f: np.ndarray        # (n,) float64

    @property
    def images(self) -> int:
        return int(self.correct.size)

    @property
    def shape(self):
        return len(SCOPES), len(STATS), self.num_classes + 1

    def reordered(self, order: np.ndarray) -> "ImageCounts":
        """The same images, row ``j`` being this one's row ``order[j]``."""
        starts, lengths = self.indptr[:-1][order], np.diff(self.indptr)[order]
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        take = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        return ImageCounts(self.num_classes, indptr, self.keys[take], self.values[take],
                           self.correct[order], self.f[order])


class SegmentationMetrics:
    """Accumulates counts over images; ``compute()`` gives mIoU and its companions.

    ``keep_images``: also keep every image's own increments (:meth:`image_counts`). ``boundaries=False``:
    mIoU, size buckets, Acc and FMeasure only (faster), the boundary keys NaN. ``sync_on_compute``: under
    torch.distributed, ``compute()`` sums the counts of every rank (each rank must call it).
    """

    def __init__(self, num_classes: int, keep_images: bool = False, boundaries: bool = True,
                 sync_on_compute: bool = True):
        if not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, bool):
            raise TypeError(f"num_classes is {num_classes!r}: pass the number of classes K, e.g. 50")
        if not 1 <= num_classes < IGNORE:
            raise ValueError(f"num_classes {num_classes}: K is 1..{IGNORE - 1} (50, 300 or 919 for "
                             f"ImageNet-S; id {IGNORE} is the ignore id)")
        self.num_classes = num_classes = int(num_classes)
        self.boundaries = bool(boundaries)
        self.sync_on_compute = bool(sync_on_compute)
        self._keep_images = bool(keep_images)
        self.reset()

    def reset(self) -> None:
        """Forget every image added (e.g. at the start of each validation epoch)."""
        self.counts = np.zeros((len(SCOPES), len(STATS), self.num_classes + 1), dtype=np.int64)
        self.images = 0
        self.correct = 0
        self._f_exact = 0
        self.out_of_range_pixels = 0
        self.out_of_range_images = 0
        # Per image (in update order): flat keys, counts, Acc correctness, F-measure.
        self._rows: Optional[List[tuple]] = [] if self._keep_images else None

    @property
    def f_sum(self) -> float:
        """The sum of the images' F-measures (0..1 each), correctly rounded from the exact sum."""
        return self._f_exact / (1 << _F_UNIT_BITS)

    # -- accumulation ------------------------------------------------------------------
    def update(self, *args: Any, preds: Any = None, target: Any = None,
               pred_lut: Optional[np.ndarray] = None) -> None:
        """Add one image (``preds`` and ``target`` HxW integer ids) or a batch (NxHxW each: N images).

        numpy arrays or torch tensors; CUDA tensors are counted on their GPU (the same numbers). ``preds``
        holds the raw prediction ids; a match goes in as ``pred_lut`` (``Match.lut``). By name only:
        torchmetrics' order is ``update(preds, target)``, this toolbox's once was ``update(gt, pred)``.
        """
        if args:
            raise TypeError(f"SegmentationMetrics.update() got {len(args)} positional argument(s): pass the id "
                            "maps by name, update(preds=..., target=...) (torchmetrics' order is (preds, "
                            "target), this toolbox's was (gt, pred): a positional call could swap them)")
        if preds is None or target is None:
            raise TypeError("SegmentationMetrics.update() needs preds= (the predicted ids) and target= "
                            "(the ground-truth ids)")
        tables = self._tables(preds, target, pred_lut)
        for table in tables:  # the whole batch is checked before any of it counts
            invalid = table.gt_ids[(table.gt_ids > self.num_classes) & (table.gt_ids != IGNORE)]
            if invalid.size:
                raise ValueError(f"target holds id {int(invalid[0])}: ground-truth ids are 0..{self.num_classes}"
                                 f" and {IGNORE} (ignore); is it the ground truth (and preds the prediction)?")
        self.update_tables(tables)

    def _tables(self, preds: Any, target: Any, pred_lut: Optional[np.ndarray]) -> List[JointTable]:
        """The joint table of each image: on the tensors' device, or by the numpy kernel."""
        names = ("target", "preds")
        if any(is_tensor(v) and v.device.type not in HOST_DEVICES for v in (preds, target)):
            if not (is_tensor(preds) and is_tensor(target)):
                raise TypeError("one of preds and target is a tensor on a device, the other is not: pass both "
                                "as tensors on one device")
            from .tensor_kernel import joint_tables

            return joint_tables(target, preds, self.num_classes, self.boundaries, pred_lut, names)
        return [joint_table(gt, pred, self.num_classes, with_boundaries=self.boundaries, pred_lut=pred_lut)
                for gt, pred in id_map_pairs(target, preds, names)]

    def update_table(self, table: JointTable) -> None:
        """Add one image from its joint table."""
        self.update_tables([table])

    def update_tables(self, tables: Sequence[JointTable]) -> Cells:
        """Add images from their joint tables, in order: the same sums as one by one, in one vectorised
        pass per batch (per-image numpy calls cost more than the arithmetic on an image's few ids).
        Returns the tables' cells (for other accumulators of the same images).

        A GT id outside 0..K (not ignore) raises InvalidGroundTruth(id, position in ``tables``) before
        anything is added.
        """
        k = self.num_classes
        for index, table in enumerate(tables):
            gt_ids = table.gt_ids
            if gt_ids.size and gt_ids[-1] > k:  # ids are sorted: the invalid ones (and ignore) come last
                bad = gt_ids[(gt_ids > k) & (gt_ids != IGNORE)]
                if bad.size:
                    raise InvalidGroundTruth(int(bad[-1]), index)
        cells = table_cells(tables, k)
        self.add_cells(cells, [t.out_of_range for t in tables])
        return cells

    def add_cells(self, cells: Cells, out_of_range: Sequence[int]) -> None:
        """Add a batch of images from their :func:`~.kernel.table_cells` (GT ids already checked)."""
        k1, m = self.num_classes + 1, cells.images
        image, gt, pred, flags = cells.image, cells.gt, cells.pred, cells.flags
        pixels = cells.pixels.astype(np.float64)  # bincount weights: float64 sums of integers stay exact
        self.images += m
        self.out_of_range_pixels += int(sum(out_of_range))
        self.out_of_range_images += sum(1 for n in out_of_range if n)

        # Per (image, id) grids: GT pixels, then the size bucket of every class present.
        gt_grid = np.bincount(image * k1 + gt, weights=pixels, minlength=m * k1).reshape(m, k1)
        kept = gt_grid.sum(axis=1)
        bucket_grid = size_bucket(gt_grid, np.maximum(kept, 1)[:, None])
        present = np.zeros((m, len(SCOPES) - 1), dtype=bool)   # buckets holding a class, per image
        img_cls, cls = np.nonzero(gt_grid[:, 1:])
        present[img_cls, bucket_grid[img_cls, cls + 1]] = True

        # Scopes of each cell: "all"; a class cell its class's bucket; a background cell every bucket
        # that has a class in its image. Then one (cell, scope) entry per membership.
        member = np.zeros((gt.size, len(SCOPES)), dtype=bool)
        member[:, 0] = True
        is_class = gt > 0
        member[np.flatnonzero(is_class), 1 + bucket_grid[image[is_class], gt[is_class]]] = True
        member[~is_class, 1:] = present[image[~is_class]]
        entry, scope = np.nonzero(member)
        g, q, fl, v = gt[entry], pred[entry], flags[entry], pixels[entry]
        base = scope * len(STATS)
        in_range = q < k1
        same = q == g
        picks = ((_G, g, None), (_BG, g, fl >= 2), (_P, q, in_range), (_BP, q, in_range & (fl & 1 == 1)),
                 (_I, g, same), (_BI, g, same & (fl == 3)))
        owner = image[entry]

        def picked(values_of) -> np.ndarray:
            return np.concatenate([values_of(stat, ids) if mask is None else values_of(stat, ids)[mask]
                                   for stat, ids, mask in picks])

        keys = picked(lambda stat, ids: (base + stat) * k1 + ids)
        weights = picked(lambda _stat, _ids: v)
        self.counts += np.bincount(keys, weights=weights, minlength=self.counts.size).astype(
            np.int64).reshape(self.counts.shape)

        # Image-level accuracy: the most predicted class in 1..K (ties: smallest id; none predicted:
        # c* = 1 with Pc = 0, not correct), right when the image's GT holds it.
        predicted = (q >= 1) & in_range & (scope == 0)
        pred_grid = np.bincount(image[entry[predicted]] * k1 + q[predicted], weights=v[predicted],
                                minlength=m * k1).reshape(m, k1)
        best = np.argmax(pred_grid[:, 1:], axis=1) + 1 if k1 > 1 else np.zeros(m, dtype=np.int64)
        rows = np.arange(m)
        correct = (pred_grid[rows, best] > 0) & (gt_grid[rows, best] > 0)
        self.correct += int(correct.sum())

        # Foreground F-measure: any non-zero id is foreground (out-of-range ones included).
        t_fg = np.bincount(image, weights=pixels * is_class, minlength=m)
        p_fg = np.bincount(image, weights=pixels * (pred > 0), minlength=m)
        tp = np.bincount(image, weights=pixels * (is_class & (pred > 0)), minlength=m)
        f = f_measure(tp, t_fg, p_fg)
        self._f_exact += sum(_exact(value) for value in f.tolist())  # exact: any order gives the same sum
        if self._rows is not None:
            self._keep_rows(picked(lambda _stat, _ids: owner), keys, weights, correct, f)

    def _keep_rows(self, owner: np.ndarray, keys: np.ndarray, weights: np.ndarray, correct: np.ndarray,
                   f: np.ndarray) -> None:
        """Each image's increments as sorted flat keys and their counts (``owner``: each key's image)."""
        width = self.counts.size
        unique, inverse = np.unique(owner * width + keys, return_inverse=True)
        sums = np.bincount(inverse.reshape(-1), weights=weights).astype(np.int64)
        bounds = np.searchsorted(unique, np.arange(correct.size + 1) * width)
        for i in range(correct.size):
            lo, hi = bounds[i], bounds[i + 1]
            self._rows.append((unique[lo:hi] - i * width, sums[lo:hi], bool(correct[i]), float(f[i])))

    def merge(self, other: "SegmentationMetrics") -> "SegmentationMetrics":
        """Add another accumulator's counts (e.g. from a worker)."""
        self.counts += other.counts
        self.images += other.images
        self.correct += other.correct
        self._f_exact += other._f_exact
        self.out_of_range_pixels += other.out_of_range_pixels
        self.out_of_range_images += other.out_of_range_images
        if self._rows is not None:
            self._rows += other._rows
        return self

    def image_counts(self) -> ImageCounts:
        """Every image's increments, in update order (needs ``keep_images=True``)."""
        if self._rows is None:
            raise ValueError("SegmentationMetrics(keep_images=True) keeps the per-image counts")
        lengths = [len(r[0]) for r in self._rows]
        empty = np.zeros(0, dtype=np.int64)
        return ImageCounts(self.num_classes,
                           np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64),
                           np.concatenate([empty] + [r[0] for r in self._rows]).astype(np.int64),
                           np.concatenate([empty] + [r[1] for r in self._rows]).astype(np.int64),
                           np.array([r[2] for r in self._rows], dtype=bool),
                           np.array([r[3] for r in self._rows], dtype=np.float64))

    # -- state -----------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """The counts as int64 tensors (``torch.save`` them in a checkpoint; ``weights_only`` loads them)."""
        import torch

        if self._rows is not None:
            raise ValueError("the state holds the accumulators, not keep_images' per-image rows: "
                             "use SegmentationMetrics(num_classes) for a checkpointed metric")
        state: Dict[str, Any] = {"num_classes": self.num_classes, "counts": torch.from_numpy(self.counts.copy())}
        state.update({name: torch.tensor(getattr(self, name), dtype=torch.int64) for name in _SCALARS})
        state["f_sum"] = torch.from_numpy(_limbs(self._f_exact))  # exact: int64 limbs of 32 bits
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Replace the counts by those of :meth:`state_dict` (tensors or numpy arrays), checked first."""
        if self._rows is not None:
            raise ValueError("a keep_images=True metric cannot load a state (it has no per-image rows)")
        missing = sorted({"num_classes", "counts", "f_sum", *_SCALARS} - set(state))
        if missing:
            raise ValueError(f"state_dict lacks {', '.join(missing)}: pass what SegmentationMetrics.state_dict() gave")
        k = _integer(state["num_classes"], "num_classes")
        if k != self.num_classes:
            raise ValueError(f"state_dict is of num_classes {k}, this metric of {self.num_classes}")
        counts = _int64_array(state["counts"], self.counts.shape, "counts")
        f_limbs = _int64_array(state["f_sum"], (_LIMBS,), "f_sum")
        scalars = {name: _integer(state[name], name) for name in _SCALARS}
        f_exact = _from_limbs(f_limbs)
        problem = _state_problem(counts, scalars, f_exact / (1 << _F_UNIT_BITS))
        if problem:
            raise ValueError(f"state_dict holds {problem}: it is not a state of this metric (edited or damaged?); "
                             "pass what SegmentationMetrics.state_dict() gave")
        self.counts = counts
        self._f_exact = f_exact
        for name, value in scalars.items():
            setattr(self, name, value)

    def sync(self, group: Any = None) -> "SegmentationMetrics":
        """A new metric holding the counts of every rank of torch.distributed summed (``keep_images``: the
        rows gathered in rank order); every rank must call it. Without torch.distributed, a copy."""
        total = SegmentationMetrics(self.num_classes, keep_images=self._rows is not None,
                                    boundaries=self.boundaries, sync_on_compute=False)
        scalars = np.array([getattr(self, name) for name in _SCALARS], dtype=np.int64)
        packed = distributed.sum_over_ranks(np.concatenate([self.counts.reshape(-1), scalars,
                                                            _limbs(self._f_exact)]), group)
        size = self.counts.size
        total.counts = packed[:size].reshape(self.counts.shape)
        for name, value in zip(_SCALARS, packed[size:size + len(_SCALARS)]):
            setattr(total, name, int(value))
        total._f_exact = _from_limbs(packed[size + len(_SCALARS):])
        if self._rows is not None:
            total._rows = [row for rows in distributed.gather_over_ranks(self._rows, group) for row in rows]
        return total

    # -- results -----------------------------------------------------------------------
    def ious(self, scope: int = 0, boundary: bool = False) -> np.ndarray:
        c = self.counts[scope]
        if boundary:
            return iou(c[_BI], c[_BP], c[_BG])
        return iou(c[_I], c[_P], c[_G])

    def compute(self) -> Dict[str, object]:
        """The summary metrics (percent, full precision) and ``IoUs`` (index 0 = other); under
        torch.distributed (and ``sync_on_compute``) over every rank's images."""
        if self.sync_on_compute and distributed.active():
            return self.sync().compute()
        if not self.images:  # e.g. an empty validation loader: the zeros below are of nothing
            warn("SegmentationMetrics.compute() with no image added: every metric is 0 (call update() first)")
        batch = summarize(self.counts[None], self.images, np.array([self.correct]), np.array([self.f_sum]))
        result: Dict[str, object] = {key: float(values[0]) for key, values in batch.items()}
        if not self.boundaries:
            result.update({key: math.nan for key in BOUNDARY_KEYS})
        result["IoUs"] = [float(v) for v in self.ious()]
        return result


def summarize(counts: np.ndarray, images: int, correct: np.ndarray, f_sum: np.ndarray) -> Dict[str, np.ndarray]:
    """The summary metrics of a batch of accumulators, one value per batch row.

    ``counts``: (n, SCOPES, STATS, K+1); ``correct``, ``f_sum``: (n,) over ``images`` images each.
    One formula for the plain result (n = 1) and for resampled image sets (bootstrap).
    """
    result: Dict[str, np.ndarray] = {
        "mIoU": iou(counts[:, 0, _I], counts[:, 0, _P], counts[:, 0, _G]).mean(axis=-1),
        "mBIoU": iou(counts[:, 0, _BI], counts[:, 0, _BP], counts[:, 0, _BG]).mean(axis=-1),
    }
    for boundary in (False, True):
        i, p, g = (_BI, _BP, _BG) if boundary else (_I, _P, _G)
        for scope in range(1, len(SCOPES)):
            c = counts[:, scope]
            ious = iou(c[:, i], c[:, p], c[:, g])
            present = c[:, g] > 0
            # Row by row: the mean of the present entries alone, as a plain evaluation takes it.
            result[("B" if boundary else "") + SCOPES[scope]] = np.array(
                [row[mask].mean() if mask.any() else math.nan for row, mask in zip(ious, present)])
    n = max(images, 1)
    result["Acc"] = 100.0 * np.asarray(correct, dtype=np.float64) / n
    result["FMeasure"] = 100.0 * np.asarray(f_sum, dtype=np.float64) / n
    return {key: result[key] for key in SUMMARY_KEYS}


#: Companion numbers that are NOT the benchmark's (computed from the same counts, background included).
EXTRA_KEYS = ("pixel_accuracy", "mean_class_accuracy", "fw_iou")


def extra_metrics(counts: np.ndarray) -> Dict[str, float]:
    """Pixel accuracy, mean class accuracy and frequency-weighted IoU over ids 0..K (percent).

    From the all-pixel accumulators: ``sum I / sum G``; the mean of ``I / G`` over ids with ``G > 0``;
    ``sum (G / sum G) * IoU``. Pixels predicted outside 0..K count as wrong.
    """
    i, g = counts[0, _I].astype(np.float64), counts[0, _G].astype(np.float64)
    total = g.sum()
    seen = g > 0
    if not total:
        return {key: math.nan for key in EXTRA_KEYS}
    return {"pixel_accuracy": float(100.0 * i.sum() / total),
            "mean_class_accuracy": float(100.0 * (i[seen] / g[seen]).mean()),
            "fw_iou": float((g[seen] / total * iou(counts[0, _I], counts[0, _P], counts[0, _G])[seen]).sum())}


def nan_to_none(value: Optional[float]) -> Optional[float]:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
