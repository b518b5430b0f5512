"""The counting kernel on torch tensors, on their own device (a GPU in a training loop).

It gives exactly :func:`imagenets.evaluation.engine.kernel.joint_table`'s tables: boundaries by the
same two 1-D window tests, then one ``bincount`` of (GT id, prediction id, flags) per image. Only the
small tables come back to the host. Kept plain (no run-length trick): on a GPU every pixel costs the same.
"""

from __future__ import annotations

from typing import List, Optional

import numpy as np
import torch

from imagenets.idmaps import check_has_values, check_pair_shapes, check_range, dtype_error

from .kernel import JointTable, boundary_width


def _window_or(bits: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """``out[i] = bits[i] | ... | bits[i + size - 1]`` along ``dim`` (length n - size + 1), by doubling."""
    r, span = bits, 1
    while span * 2 <= size:
        n = r.shape[dim]
        r = r.narrow(dim, 0, n - span) | r.narrow(dim, span, n - span)
        span *= 2
    rest = size - span
    if rest:
        n = r.shape[dim]
        r = r.narrow(dim, 0, n - rest) | r.narrow(dim, rest, n - rest)
    return r


def _changes(ids: torch.Tensor, dim: int) -> torch.Tensor:
    n = ids.shape[dim]
    return ids.narrow(dim, 1, n - 1) != ids.narrow(dim, 0, n - 1)


def boundaries(ids: torch.Tensor, d: int) -> torch.Tensor:
    """(N, H, W) bool: the ``(2d+1)^2`` square around the pixel holds another id or leaves the image."""
    n, h, w = ids.shape
    out = torch.ones((n, h, w), dtype=torch.bool, device=ids.device)
    if h <= 2 * d or w <= 2 * d:
        return out
    rows_bad = _window_or(_window_or(_changes(ids, 2), 2 * d, 2), 2 * d + 1, 1)   # the rows y-d..y+d
    col_bad = _window_or(_changes(ids[:, :, d:w - d], 1), 2 * d, 1)                # the centre column
    out[:, d:h - d, d:w - d] = rows_bad | col_bad
    return out


def _checked_ids(ids: torch.Tensor, what: str) -> torch.Tensor:
    check_has_values(ids, what)
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise dtype_error(what, ids.dtype)
    if ids.numel():
        low, high = (int(v) for v in torch.aminmax(ids))
        check_range(low, high, what)
    return ids.long()


def joint_tables(gt: torch.Tensor, pred: torch.Tensor, num_classes: int, with_boundaries: bool = True,
                 pred_lut: Optional[np.ndarray] = None,
                 names=("the ground truth", "the prediction")) -> List[JointTable]:
    """The joint table of each image of ``gt``/``pred`` (HxW or NxHxW integer tensors on one device)."""
    if gt.device != pred.device:
        raise ValueError(f"{names[0]} is on {gt.device} and {names[1]} on {pred.device}: put them on one device")
    check_pair_shapes(gt.shape, pred.shape, names)
    gt, pred = _checked_ids(gt, names[0]), _checked_ids(pred, names[1])
    if gt.dim() == 2:
        gt, pred = gt[None], pred[None]
    n, h, w = gt.shape
    if n == 0:
        return []
    if with_boundaries:
        d = boundary_width(h, w)
        flags = boundaries(gt, d).long() * 2 + boundaries(pred, d).long()   # bit 1 GT, bit 0 prediction
    mapped = pred if pred_lut is None else torch.as_tensor(pred_lut, device=pred.device).long()[pred]
    tables = []
    for i in range(n):
        g, p = gt[i].reshape(-1), mapped[i].reshape(-1)
        gt_ids = torch.unique(g)
        in_range = p <= num_classes
        pred_ids = torch.unique(p[in_range])
        n_cols = pred_ids.numel() + 1
        # Ids above K sort after every id of pred_ids: searchsorted puts them in the last column.
        key = (torch.searchsorted(gt_ids, g) * n_cols + torch.searchsorted(pred_ids, p)) * 4
        if with_boundaries:
            key += flags[i].reshape(-1)
        counts = torch.bincount(key, minlength=gt_ids.numel() * n_cols * 4)
        tables.append(JointTable(gt_ids.cpu().numpy(), pred_ids.cpu().numpy(),
                                 counts.cpu().numpy().reshape(gt_ids.numel(), n_cols, 2, 2),
                                 int((~in_range).sum()), int(p.max())))
    return tables

