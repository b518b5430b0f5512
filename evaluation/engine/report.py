"""Evaluation results for people (tables) and machines (``--output FILE.json``), and publishing both."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, Optional, Sequence

from imagenets.errors import info
from imagenets.fileio import write_json_atomic
from imagenets.metadata import Metadata
from imagenets.subsets import Subset

from .metrics import SUMMARY_KEYS, nan_to_none


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


def format_report(result: Dict[str, object], meta: Metadata, subset: Subset) -> str:
    """Per-class table then summary table, as printed by the command."""
    return "\n".join([class_table(result["IoUs"], meta.categories(subset), meta.class_names(subset)),
                      "", f"{subset.name}, {result['images']} images"
                      + (f", match {result['match']}" if result.get("match") else ""),
                      summary_table(result)])


def json_ready(result: Dict[str, object]) -> Dict[str, object]:
    """NaN (a size bucket with no objects) becomes null so the file is strict JSON."""
    return {k: nan_to_none(v) if isinstance(v, float) else v for k, v in result.items()}


def publish(result: Dict[str, object], meta: Metadata, subset: Subset, output: Optional[Path],
            quiet: bool, heading: str = "") -> int:
    """Write ``--output`` JSON (if asked) and print the tables (unless quiet); shared by score."""
    if output:
        write_json_atomic(output, json_ready(result))
        info(f"wrote {output}", quiet)
    if not quiet:
        if heading:
            print(heading)
        print(format_report(result, meta, subset))
    return 0
