"""``imagenets aggregate RUN.json ...``: mean and standard deviation of summary keys over runs (e.g. seeds).

Each RUN.json is an ``evaluate --output`` file; the runs must share the subset and the number of images.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Dict, List, Sequence

from imagenets.cli import Command
from imagenets.errors import UserError
from imagenets.evaluation.engine.metrics import SUMMARY_KEYS
from imagenets.evaluation.engine.report import OFFICIAL_LISTS, _fmt, json_ready, text_table
from imagenets.fileio import read_json
from imagenets.flags import input_file

HINT = "pass the --output JSON files of `imagenets evaluate` runs"


def read_run(path: Path) -> Dict[str, object]:
    """One run's report; UserError naming the file if it lacks the summary keys."""
    run = read_json(path, "run report", expect=dict)
    missing = [k for k in SUMMARY_KEYS if k not in run]
    if missing:
        raise UserError(f"{path} is not an evaluation report (no {', '.join(missing[:3])}): {HINT}")
    for key in SUMMARY_KEYS:
        value = run[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0 <= value <= 100):
            raise UserError(f"{path}: {key} is {str(value)[:40]}, not a percentage (0 to 100): {HINT}")
    return run


def mean_std(values: Sequence[float]) -> Dict[str, object]:
    """Mean and sample standard deviation (n - 1) of the values that exist (null: a bucket without objects)."""
    present = [float(v) for v in values if v is not None]
    n = len(present)
    mean = math.fsum(present) / n if n else math.nan
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in present) / (n - 1)) if n > 1 else math.nan
    return {"mean": mean, "std": std, "runs": n}


def aggregate(paths: Sequence[Path]) -> Dict[str, object]:
    runs = [read_run(p) for p in paths]
    for field in ("subset", "images"):
        seen = {str(p): r.get(field) for p, r in zip(paths, runs)}
        if len(set(map(str, seen.values()))) > 1:
            detail = ", ".join(f"{p}: {v}" for p, v in seen.items())
            raise UserError(f"the runs differ in {field} ({detail}): aggregate runs of one split")
    return {"runs": [str(p) for p in paths], "subset": runs[0].get("subset"), "images": runs[0].get("images"),
            "metrics": {k: mean_std([r[k] for r in runs]) for k in SUMMARY_KEYS},
            OFFICIAL_LISTS: all(r.get(OFFICIAL_LISTS) is True for r in runs)}


def aggregate_table(result: Dict[str, object]) -> str:
    rows: List[List[str]] = [[k, _fmt(m["mean"]), _fmt(m["std"]), str(m["runs"])]
                             for k, m in result["metrics"].items()]
    return "\n".join([f"{len(result['runs'])} runs, {result['subset']}, {result['images']} images "
                      "(std: sample standard deviation, n - 1)", "",
                      text_table(["metric", "mean", "std", "runs"], rows)])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    input_file(parser, "runs", nargs="+", metavar="RUN.json", distinct=True,
               help="evaluate --output files, one per run")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")


def run(args: argparse.Namespace) -> int:
    result = aggregate(args.runs)
    print(json.dumps(json_ready(result), indent=1) if args.json else aggregate_table(result))
    return 0


COMMAND = Command("aggregate", "mean and standard deviation of several runs' JSON reports (seeds)", add_arguments, run,
                  description="Mean and sample standard deviation of every summary key over several "
                              "`imagenets evaluate --output` reports (e.g. one per training seed).")
