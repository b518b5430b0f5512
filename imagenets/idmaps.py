"""Id maps from numpy arrays or torch tensors (CPU or CUDA), as the metrics and the mask writer take them.

torch is never imported here: a tensor can only exist if its caller imported torch already.
"""

from __future__ import annotations

import sys
from typing import Any, List, Sequence, Tuple

import numpy as np

from .codec import MAX_ID

FLOAT_HINT = "pass integer ids (class or cluster ids), e.g. logits.argmax(dim=1), not scores"


def is_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def check_has_values(tensor: Any, what: str) -> None:
    """A tensor on torch's ``meta`` device has a shape and a dtype but no values: a TypeError naming it."""
    if is_tensor(tensor) and tensor.device.type == "meta":
        raise TypeError(f"{what} is a tensor on the 'meta' device, which holds no values: pass tensors on "
                        "the CPU or a GPU, or numpy arrays")


def dtype_error(what: str, dtype: Any) -> TypeError:
    return TypeError(f"{what} has dtype {dtype}: {FLOAT_HINT}")


def check_range(low: int, high: int, what: str) -> None:
    """Ids must fit a mask PNG (0..MAX_ID): a negative or larger id is a ValueError naming it."""
    if low < 0 or high > MAX_ID:
        raise ValueError(f"{what} holds id {low if low < 0 else high}: ids are 0..{MAX_ID}, what a "
                         "mask PNG can hold")


def check_pair_shapes(gt_shape: Sequence[int], pred_shape: Sequence[int],
                      names: Tuple[str, str] = ("ground truth", "prediction")) -> None:
    """Two HxW maps or two NxHxW batches of one shape, every map at least 1x1 (ValueError otherwise)."""
    gt_shape, pred_shape = tuple(gt_shape), tuple(pred_shape)
    if gt_shape != pred_shape or len(gt_shape) not in (2, 3):
        raise ValueError(f"{names[0]} {gt_shape} and {names[1]} {pred_shape}: pass two HxW id maps of one "
                         "image, or two NxHxW batches of the same shape")
    if 0 in gt_shape[-2:]:
        raise ValueError(f"{names[0]} and {names[1]} are {gt_shape[-2]}x{gt_shape[-1]} id maps: an image "
                         "has at least one pixel")


def _tensor_ids(tensor: Any, what: str) -> np.ndarray:
    """A tensor on any device (int64, int32, uint8...) -> numpy ids on the CPU, range-checked."""
    import torch  # already imported by whoever made the tensor

    check_has_values(tensor, what)
    if tensor.dtype.is_floating_point or tensor.dtype.is_complex or tensor.dtype == torch.bool:
        raise dtype_error(what, tensor.dtype)
    # Checked and narrowed by numpy: torch's CPU kernels wait on their thread pool, which costs
    # more than the work on an image (and far more on a loaded machine).
    return _integers(_checked(tensor.detach().cpu().numpy(), what))


def _checked(array: np.ndarray, what: str) -> np.ndarray:
    """``array`` after :func:`check_range` (types that cannot leave 0..MAX_ID skip the passes)."""
    if array.size:
        low = int(array.min()) if array.dtype.kind == "i" else 0
        high = int(array.max()) if array.dtype.itemsize > 2 or array.dtype.kind == "i" else 0
        check_range(low, high, what)
    return array


def _integers(array: np.ndarray) -> np.ndarray:
    """int32 and int64 as they are; narrower integer types widened to int32, wider unsigned to int64."""
    if array.dtype in (np.int32, np.int64):
        return array
    return array.astype(np.int32 if array.dtype.itemsize < 4 else np.int64)


def as_ids(value: Any, what: str = "ids") -> np.ndarray:
    """``value`` as a numpy integer array of ids 0..MAX_ID (any shape); tensors move to the CPU.

    numpy int32/int64 arrays pass uncopied; floats and bools are refused, ids out of range too.
    """
    if is_tensor(value):
        return _tensor_ids(value, what)
    array = np.asarray(value)
    if array.dtype.kind not in "iu":
        raise dtype_error(what, array.dtype)
    return _integers(_checked(array, what))


def id_map_pairs(gt: Any, pred: Any, names: Tuple[str, str] = ("the ground truth", "the prediction")
                 ) -> List[Tuple[np.ndarray, np.ndarray]]:
    """(GT, prediction) HxW id maps of one image (HxW each) or a batch (NxHxW each), numpy or torch.

    ``names``: how messages call the two (e.g. the keywords they were passed as)."""
    gt_ids, pred_ids = as_ids(gt, names[0]), as_ids(pred, names[1])
    check_pair_shapes(gt_ids.shape, pred_ids.shape, names)
    if gt_ids.ndim == 2:
        return [(gt_ids, pred_ids)]
    return list(zip(gt_ids, pred_ids))


# ---- nearest-neighbour resizing -----------------------------------------------------------------

def nearest_sources(source: int, target: int, rule: str = "centre") -> np.ndarray:
    """Source index of each of ``target`` outputs in a nearest-neighbour resize of ``source``.

    centre: the source pixel under the output's centre, floor((i + 1/2) * source / target),
    integer exact. legacy: torch's ``mode="nearest"``, floor(i * scale) with the scale
    source / target rounded to float32 and the product taken in float32, as torch computes it.
    """
    if rule == "centre":
        return ((2 * np.arange(target) + 1) * source) // (2 * target)
    if rule != "legacy":
        raise ValueError(f"unknown sampling rule {rule!r}")
    if target == source:  # torch's own shortcuts, free of float rounding
        return np.arange(target)
    if target == 2 * source:
        return np.arange(target) >> 1
    scale = np.float32(source) / np.float32(target)
    index = np.floor(np.arange(target, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(index, source - 1)


def resize_nearest(ids: np.ndarray, height: int, width: int, rule: str = "centre") -> np.ndarray:
    """Nearest-neighbour resize of a 2-D id map (ids are labels: never blend them); ``rule`` as
    :func:`nearest_sources`. Every id-map resize of the toolbox goes through here."""
    src_h, src_w = ids.shape
    rows = nearest_sources(src_h, height, rule)
    cols = nearest_sources(src_w, width, rule)
    return ids[rows[:, None], cols[None, :]]
