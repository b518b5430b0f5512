"""Evaluation results for people (tables) and machines (``--output FILE.json``), and publishing both."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, Optional, Sequence

from imagenets.errors import info
from imagenets.names import shown
from imagenets.fileio import write_json_atomic
from imagenets.metadata import Metadata
from imagenets.subsets import Subset

from .metrics import EXTRA_KEYS, SUMMARY_KEYS, nan_to_none

#: What ``--extra-metrics`` prints and writes (under this key of ``--output``): not the benchmark's numbers.
NOT_BENCHMARK = "not_benchmark"
#: Every JSON result says whether the lists it was computed on are the official ones (``Metadata.official``).
OFFICIAL_LISTS = "official_lists"


def _fmt(value: float, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def interval(bounds: Sequence[float], signed: bool = False) -> str:
    """``[lo, hi]`` with two decimals."""
    return f"[{_fmt(bounds[0], signed)}, {_fmt(bounds[1], signed)}]"


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns right-aligned to their widest cell (the first left-aligned), a dashed rule under the header."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(f"{c:<{w}}" if i == 0 else f"{c:>{w}}" for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def class_table(ious: Sequence[float], wnids: Sequence[str], names: Sequence[str]) -> str:
    """Per-class IoU table: id, wnid, class name, IoU (row 0 = other)."""
    rows = [("0", "-", "other (background)", _fmt(ious[0]))]
    rows += [(str(i + 1), w, n, _fmt(v)) for i, (w, n, v) in enumerate(zip(wnids, names, ious[1:]))]
    width = max(len(r[2]) for r in rows)
    width = min(max(width, len("class")), 40)
    lines = [f"{'id':>4}  {'wnid':<9}  {'class':<{width}}  {'IoU':>6}",
             f"{'-' * 4}  {'-' * 9}  {'-' * width}  {'-' * 6}"]
    # names come from --meta-dir's data.py or classnames/: shown escaped, like every name from outside
    lines += [f"{i:>4}  {shown(w):<9}  {shown(n)[:width]:<{width}}  {v:>6}" for i, w, n, v in rows]
    return "\n".join(lines)


def summary_table(result: Dict[str, object]) -> str:
    """The summary metrics, two decimals, one per line (with their bootstrap interval when computed)."""
    lines = [f"{'metric':<9}  {'value':>7}", f"{'-' * 9}  {'-' * 7}"]
    if "ci95" in result:
        boot = result["bootstrap"]
        lines[0] += (f"  95% interval ({result.get('ci95_method', boot.get('method'))}, {boot['resamples']} "
                     f"resamples of the images, seed {boot['seed']})")
        lines[1] += f"  {'-' * 16}"
        lines += [f"{k:<9}  {_fmt(result[k]):>7}  {interval(result['ci95'][k])}" for k in SUMMARY_KEYS]
    else:
        lines += [f"{k:<9}  {_fmt(result[k]):>7}" for k in SUMMARY_KEYS]  # type: ignore[arg-type]
    return "\n".join(lines)


def extra_block(values: Dict[str, float]) -> str:
    """The ``--extra-metrics`` block, headed so that nobody takes it for the benchmark's numbers."""
    return "\n".join(["not the benchmark (same counts, ids 0..K, background included):"]
                     + [f"  {k:<20} {_fmt(values[k]):>7}" for k in EXTRA_KEYS])


def summary_line(result: Dict[str, object]) -> str:
    """Every summary key on one line (what ``--quiet`` prints when no ``--output`` keeps the result)."""
    return f"{result['subset']}, {result['images']} images: " + ", ".join(
        f"{k} {_fmt(result[k])}" for k in SUMMARY_KEYS)


def format_report(result: Dict[str, object], meta: Metadata, subset: Subset) -> str:
    """Per-class table then summary table, as printed by the command."""
    return "\n".join([class_table(result["IoUs"], meta.categories(subset), meta.class_names(subset)),
                      "", f"{subset.name}, {result['images']} images"
                      + (f", match {result['match']}" if result.get("match") else ""),
                      summary_table(result)]
                     + (["", extra_block(result[NOT_BENCHMARK])] if NOT_BENCHMARK in result else []))


def json_ready(result: object) -> object:
    """NaN (a size bucket with no objects) becomes null, at any depth, so the file is strict JSON."""
    if isinstance(result, dict):
        return {k: json_ready(v) for k, v in result.items()}
    if isinstance(result, (list, tuple)):
        return [json_ready(v) for v in result]
    return nan_to_none(result) if isinstance(result, float) else result


def publish(result: Dict[str, object], meta: Metadata, subset: Subset, output: Optional[Path],
            quiet: bool, heading: str = "") -> int:
    """Write ``--output`` JSON (if asked) and print the tables (unless quiet); shared by score."""
    if output:
        write_json_atomic(output, json_ready({**result, OFFICIAL_LISTS: meta.official}))
        info(f"wrote {output}", quiet)
    if not quiet:
        if heading:
            print(heading)
        print(format_report(result, meta, subset))
    elif not output:
        print(summary_line(result))  # quiet, and no file keeps the result: one line, so it is not lost
    return 0
