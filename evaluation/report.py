"""Readable tables of evaluation results for people (machines get ``--output FILE.json``)."""

from __future__ import annotations

import math
from typing import Dict, Sequence

from .metrics import SUMMARY_KEYS


def _fmt(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def class_table(ious: Sequence[float], wnids: Sequence[str], names: Sequence[str]) -> str:
    """Per-class IoU table: id, wnid, class name, IoU (row 0 = other)."""
    rows = [("0", "-", "other (background)", _fmt(ious[0]))]
    rows += [(str(i + 1), w, n, _fmt(v)) for i, (w, n, v) in enumerate(zip(wnids, names, ious[1:]))]
    width = max(len(r[2]) for r in rows)
    width = min(max(width, len("class")), 40)
    lines = [f"{'id':>4}  {'wnid':<9}  {'class':<{width}}  {'IoU':>6}",
             f"{'-' * 4}  {'-' * 9}  {'-' * width}  {'-' * 6}"]
    lines += [f"{i:>4}  {w:<9}  {n[:width]:<{width}}  {v:>6}" for i, w, n, v in rows]
    return "\n".join(lines)


def summary_table(result: Dict[str, object]) -> str:
    """The summary metrics, two decimals, one per line."""
    lines = [f"{'metric':<9}  {'value':>7}", f"{'-' * 9}  {'-' * 7}"]
    lines += [f"{k:<9}  {_fmt(result[k]):>7}" for k in SUMMARY_KEYS]  # type: ignore[arg-type]
    return "\n".join(lines)
