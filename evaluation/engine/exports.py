"""Files for other tools: matrices (``.npz`` or ``.csv`` by extension) and the per-image CSV."""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path
from typing import Dict, Sequence

import numpy as np

from imagenets.fileio import PathLike, archive_stream, atomic_path

MATRIX_SUFFIXES = (".npz", ".csv")


def suffix_option(*suffixes: str):
    """An argparse ``type`` that refuses (before any work) a file name without one of ``suffixes``."""
    def check(text: str) -> Path:
        if Path(text).suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(f"{text}: the file name must end in {' or '.join(suffixes)}")
        return Path(text)
    return check


def write_npz(path: PathLike, **arrays) -> None:
    """``np.savez_compressed`` written atomically (a file object, so numpy adds no second suffix)."""
    with atomic_path(path) as tmp:
        with archive_stream(tmp) as f:
            np.savez_compressed(f, **arrays)


def write_matrix(path: PathLike, matrix: np.ndarray, rows: str, columns: str,
                 column_labels: Sequence[str]) -> None:
    """A labelled int64 matrix: ``.npz`` (``matrix``, ``rows``, ``columns``, ``column_labels``) or
    ``.csv`` (header ``rows\\columns`` then the column labels; first field of a row: its id)."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        write_npz(path, matrix=matrix, rows=np.array(rows), columns=np.array(columns),
                  column_labels=np.array(list(column_labels)))
        return
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow([f"{rows}\\{columns}", *column_labels])
            for index, row in enumerate(matrix):
                writer.writerow([index, *row.tolist()])


PER_IMAGE_FIELDS = ("name", "width", "height", "gt_classes", "iou", "acc_correct", "fmeasure")


def write_per_image(path: PathLike, rows: Sequence[Dict[str, object]]) -> None:
    """One CSV row per image (fields :data:`PER_IMAGE_FIELDS`); NaN (nothing left) is an empty field."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=PER_IMAGE_FIELDS)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()})
