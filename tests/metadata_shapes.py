"""Metadata files in the official shapes (see ../shared/README.md): a ``data.py``, a list cut short."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

# The official file: imports at the top, then EvalDataset whose __init__ sets each classes_K to one
# string of names joined by ", " and, on the next three lines, rebinds it to a list with 'background'.
_HEAD = '''from torch.utils import data
from torchvision.datasets import ImageFolder
import torch
import os
import json
import numpy as np
from munkres import Munkres
import data.utils as utils


class EvalDataset(ImageFolder):
    def __init__(self, pred_root, label_root, name_list, match=None):
        super(EvalDataset, self).__init__(label_root)
        self.match = match
        self.label_lst = []
'''

_TAIL = '''
    def __getitem__(self, item):
        raise SystemExit("data.py was executed")

    def __len__(self):
        return len(self.label_lst)
'''


def read_class_names(meta_dir: Path, k: int) -> List[str]:
    """Names of ``classnames/`` in class-id order (the file's order)."""
    text = (meta_dir / f"classnames/ImageNetS_classnames_im{k}.txt").read_text(encoding="utf-8")
    return [line.split("\t", 1)[1] for line in text.splitlines() if line]


def official_data_py(names: Dict[int, List[str]]) -> str:
    """The text of a data.py of the official shape holding ``names[K]`` for each K."""
    lines = [_HEAD.rstrip("\n")]
    for k, values in names.items():
        assert not any('"' in name or "\\" in name or ", " in name for name in values)
        lines.append(f'        self.classes_{k} = "{", ".join(values)}"')
    lines += [f"        self.classes_{k} = ['background'] + self.classes_{k}.split(', ')" for k in names]
    return "\n".join(lines) + "\n" + _TAIL


def cut_in_half(path: Path) -> None:
    """Keep the first half of a list's lines, as a copy cut short would (no final newline, like the lists)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    path.write_text("\n".join(lines[:len(lines) // 2]), encoding="utf-8")
