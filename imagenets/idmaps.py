"""Id maps from numpy arrays or torch tensors (CPU or CUDA), as the metrics and the mask writer take them.

torch is never imported here: a tensor can only exist if its caller imported torch already.
"""

from __future__ import annotations

import sys
from typing import Any, List, Tuple

import numpy as np

from .codec import MAX_ID

FLOAT_HINT = "pass integer ids (class or cluster ids), e.g. logits.argmax(dim=1), not scores"


def is_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _tensor_ids(tensor: Any, what: str) -> np.ndarray:
    """A tensor on any device (int64, int32, uint8...) -> numpy ids on the CPU, range-checked."""
    import torch  # already imported by whoever made the tensor

    if tensor.dtype.is_floating_point or tensor.dtype.is_complex or tensor.dtype == torch.bool:
        raise TypeError(f"{what} is a {tensor.dtype} tensor: {FLOAT_HINT}")
    # Checked and narrowed by numpy: torch's CPU kernels wait on their thread pool, which costs
    # more than the work on an image (and far more on a loaded machine).
    array = _integers(tensor.detach().cpu().numpy())
    if array.size:
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > MAX_ID:
            raise ValueError(f"{what} holds id {low if low < 0 else high}: ids are 0..{MAX_ID}, what a "
                             "mask PNG can hold")
    return array


def _integers(array: np.ndarray) -> np.ndarray:
    """int32 and int64 as they are; narrower integer types widened to int32, wider unsigned to int64."""
    if array.dtype in (np.int32, np.int64):
        return array
    return array.astype(np.int32 if array.dtype.itemsize < 4 else np.int64)


def as_ids(value: Any, what: str = "ids") -> np.ndarray:
    """``value`` as a numpy integer array of ids (any shape); tensors move to the CPU.

    numpy int32/int64 arrays pass unchanged (the evaluation's hot path); floats and bools are refused.
    """
    if is_tensor(value):
        return _tensor_ids(value, what)
    array = np.asarray(value)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{what} has dtype {array.dtype}: {FLOAT_HINT}")
    return _integers(array)


def id_map_pairs(gt: Any, pred: Any) -> List[Tuple[np.ndarray, np.ndarray]]:
    """(GT, prediction) HxW id maps of one image (HxW each) or a batch (NxHxW each), numpy or torch."""
    gt_ids, pred_ids = as_ids(gt, "the ground truth"), as_ids(pred, "the prediction")
    if gt_ids.shape != pred_ids.shape or gt_ids.ndim not in (2, 3):
        raise ValueError(f"ground truth {tuple(gt_ids.shape)} and prediction {tuple(pred_ids.shape)}: pass "
                         "two HxW id maps of one image, or two NxHxW batches of the same shape")
    if gt_ids.ndim == 2:
        return [(gt_ids, pred_ids)]
    return list(zip(gt_ids, pred_ids))
