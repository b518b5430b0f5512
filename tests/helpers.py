"""Plain helpers shared by several test modules (fixtures live in conftest.py).

Sections: trees, bad-input checks of commands, the protocol case, the kernel, the metrics
reference written from spec/evaluation.md, metadata files in the official shapes.
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

from imagenets.evaluation.engine.evaluation import evaluate_predictions
from imagenets.evaluation.engine.metrics import SUMMARY_KEYS
from imagenets.evaluation.engine.report import json_ready
from imagenets.evaluation.protocols import score, submission
from imagenets.subsets import get_subset


# ---- trees --------------------------------------------------------------------------------------

def hardlink_copy(source: Path, target: Path) -> Path:
    """A copy of ``source`` whose files are hard links (links stay links): cheap; unlink, never edit."""
    shutil.copytree(source, target, symlinks=True, copy_function=os.link)
    return target


# ---- commands as users run them -----------------------------------------------------------------

def assert_one_error(rc: int, err: str, *needles: str) -> str:
    """Exit status 2, no traceback, exactly one ``error:`` line (the last one), holding every needle."""
    assert rc == 2
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    for needle in needles:
        assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"
    return errors[0]


def exit_status(entry, args: List[str]) -> int:
    """What ``entry(args)`` returns, or the status it exits with (argparse refuses by exiting)."""
    try:
        return entry(args)
    except SystemExit as exc:
        return exc.code


def run_tool(argv: List[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run an installed command or script as a user would, output captured."""
    return subprocess.run(argv, cwd=str(cwd), capture_output=True, text=True, timeout=120)


# ---- the protocol case (conftest's ``case``: the real categories, a handful of images) ----------

K = 50
SUBSET = get_subset(K)
METHOD_ARGS = ["--method-name", "Toy", "--train-data", "ImageNet-1k train, no labels",
               "--train-scheme", "clustering", "--networks", "ResNet-50", "--link", "none",
               "--description", "a toy method"]


def small_meta(meta_dir: Path, root: Path) -> Path:
    """A metadata folder with the real categories but only a handful of validation and test images."""
    for rel in (SUBSET.categories_file, f"classnames/ImageNetS_classnames_im{K}.txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(meta_dir / rel, root / rel)
    for rel, step in ((SUBSET.validation_names_file, 100), (SUBSET.mapping_file("test"), 300)):
        lines = (meta_dir / rel).read_text().splitlines()[::step]
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("\n".join(lines))
    return root


def submit(case, predict_dir, *extra, protocol="fully-unsupervised", output="sub.zip", quiet=True):
    """``imagenets submission`` of ``predict_dir`` into ``case["root"] / output``; its exit status."""
    argv = ["--predict-dir", str(predict_dir), "--mode", "50", "--split", "validation", "--protocol", protocol,
            *METHOD_ARGS, "-o", str(case["root"] / output), "--meta-dir", str(case["meta_dir"]),
            "--workers", "0", *(["--quiet"] if quiet else []), *extra]
    return submission.COMMAND.main(argv)


def score_zip(case, zip_path, *extra):
    """``imagenets score`` of ``zip_path`` against the case's GT; its exit status."""
    return score.COMMAND.main([str(zip_path), "--gt-dir", str(case["gt"]), "--mode", "50", "--meta-dir",
                       str(case["meta_dir"]), "--workers", "0", "--quiet", *extra])


def direct_eval(case):
    """The evaluator's numbers for the case's predictions through its match."""
    return evaluate_predictions(case["pred"], case["gt"], SUBSET, case["meta"], match_file=case["match"],
                                workers=0, quiet=True)


def assert_same_numbers(result, expected):
    # NaN (an empty size bucket) is null in a JSON result.
    result, expected = json_ready(result), json_ready(expected)
    for key in ("mIoU", "mBIoU", "S", "MS", "ML", "L", "BS", "BMS", "BML", "BL", "Acc", "FMeasure", "IoUs",
                "images"):
        got, want = result[key], expected[key]
        assert got == (want if want is None else pytest.approx(want)), key


def first_mask(case) -> str:
    """Relative path of the case's first mask."""
    return case["names"][0][1]


# ---- the kernel: slow references ----------------------------------------------------------------

def brute_boundary(ids: np.ndarray, d: int) -> np.ndarray:
    """Pixel by pixel, straight from the spec's words."""
    h, w = ids.shape
    out = np.zeros((h, w), dtype=bool)
    for y, x in itertools.product(range(h), range(w)):
        if y - d < 0 or x - d < 0 or y + d >= h or x + d >= w:
            out[y, x] = True
        else:
            out[y, x] = bool((ids[y - d:y + d + 1, x - d:x + d + 1] != ids[y, x]).any())
    return out


def table_as_dict(table):
    """{(gt id, prediction id or 'out', gt boundary, prediction boundary): count} of a joint table."""
    out = {}
    cols = [int(q) for q in table.pred_ids] + ["out"]
    for gi, g in enumerate(table.gt_ids):
        for qi, q in enumerate(cols):
            for bg, bp in itertools.product((0, 1), (0, 1)):
                n = int(table.counts[gi, qi, bg, bp])
                if n:
                    out[(int(g), q, bg, bp)] = n
    return out


# ---- the metrics reference: loops over classes, scipy filters, one image at a time --------------

IGNORE = 1000
BUCKETS = ("S", "MS", "ML", "L")


def spec_boundary(ids: np.ndarray) -> np.ndarray:
    """Boundary map ``id + 1`` on boundary pixels, 0 elsewhere (spec step 3)."""
    ndimage = pytest.importorskip("scipy.ndimage")
    h, w = ids.shape
    d = max(1, round(0.03 * math.sqrt(h * h + w * w)))
    size = 2 * d + 1
    hi = ndimage.maximum_filter(ids, size=size, mode="constant", cval=np.iinfo(np.int64).max)
    lo = ndimage.minimum_filter(ids, size=size, mode="constant", cval=np.iinfo(np.int64).min)
    is_boundary = (hi != ids) | (lo != ids)
    return np.where(is_boundary, ids + 1, 0)


def bucket_of(n_c: int, n: int) -> str:
    # The spec: ceil(100 * n_c / N) in float32, rounded at each step (the exact ceiling below ~1.3 Mpx).
    s = math.ceil(float(np.float32(np.float32(n_c) * np.float32(100)) / np.float32(n)))
    if s <= 5:
        return "S"
    if s <= 25:
        return "MS"
    if s <= 50:
        return "ML"
    return "L"


class Reference:
    """The spec, literally."""

    def __init__(self, k: int):
        self.k = k
        zero = lambda: [0] * (k + 1)  # noqa: E731
        self.acc = {scope: {s: zero() for s in ("I", "P", "G", "BI", "BP", "BG")}
                    for scope in ("all",) + BUCKETS}
        self.correct = 0
        self.f_values: List[float] = []

    def add(self, gt: np.ndarray, pred: np.ndarray) -> None:
        gt = gt.astype(np.int64)
        pred = pred.astype(np.int64)
        self.add_maps(gt, pred, spec_boundary(gt), spec_boundary(pred))

    def add_maps(self, gt: np.ndarray, pred: np.ndarray, gb: np.ndarray, pb: np.ndarray) -> None:
        """Steps 4 on: the ids and boundary maps of one image, any match already applied."""
        keep = gt != IGNORE
        g, p, gb, pb = gt[keep], pred[keep], gb[keep], pb[keep]
        n = g.size

        def add_counts(scope: str, where: np.ndarray) -> None:
            a = self.acc[scope]
            for c in range(self.k + 1):
                a["I"][c] += int(((g == c) & (p == c) & where).sum())
                a["P"][c] += int(((p == c) & where).sum())
                a["G"][c] += int(((g == c) & where).sum())
                a["BI"][c] += int(((gb == c + 1) & (pb == c + 1) & where).sum())
                a["BP"][c] += int(((pb == c + 1) & where).sum())
                a["BG"][c] += int(((gb == c + 1) & where).sum())

        add_counts("all", np.ones(n, dtype=bool))
        members: Dict[str, List[int]] = {b: [] for b in BUCKETS}
        for c in range(1, self.k + 1):
            n_c = int((g == c).sum())
            if n_c:
                members[bucket_of(n_c, n)].append(c)
        for bucket, classes in members.items():
            if classes:
                add_counts(bucket, (g == 0) | np.isin(g, classes))

        predicted = [int((p == c).sum()) for c in range(1, self.k + 1)]
        best = 1
        for c in range(1, self.k + 1):
            if predicted[c - 1] > predicted[best - 1]:
                best = c
        if (g == best).any() and (p == best).any():
            self.correct += 1

        t, q = int((g > 0).sum()), int((p > 0).sum())
        tp = int(((g > 0) & (p > 0)).sum())
        recall, precision = tp / (t + 1e-20), tp / (q + 1e-20)
        self.f_values.append(1.3 * precision * recall / (0.3 * precision + recall + 1e-20))

    @staticmethod
    def _iou(i: int, p: int, g: int) -> float:
        den = g + p - i
        return 100.0 * i / den if den else 0.0

    def result(self) -> Dict[str, object]:
        a = self.acc["all"]
        ious = [self._iou(a["I"][c], a["P"][c], a["G"][c]) for c in range(self.k + 1)]
        bious = [self._iou(a["BI"][c], a["BP"][c], a["BG"][c]) for c in range(self.k + 1)]
        out: Dict[str, object] = {"mIoU": sum(ious) / len(ious), "mBIoU": sum(bious) / len(bious), "IoUs": ious}
        for bucket in BUCKETS:
            b = self.acc[bucket]
            for prefix, (si, sp, sg) in (("", ("I", "P", "G")), ("B", ("BI", "BP", "BG"))):
                vals = [self._iou(b[si][c], b[sp][c], b[sg][c]) for c in range(self.k + 1) if b[sg][c] > 0]
                out[prefix + bucket] = sum(vals) / len(vals) if vals else math.nan
        images = max(len(self.f_values), 1)
        out["Acc"] = 100.0 * self.correct / images
        out["FMeasure"] = 100.0 * sum(self.f_values) / images
        return out


def assert_same(expected: Dict[str, object], got: Dict[str, object]) -> None:
    """Every summary key and IoU of ``got`` equals the reference's (NaN where it is NaN)."""
    for key in SUMMARY_KEYS:
        e, g = expected[key], got[key]
        if isinstance(e, float) and math.isnan(e):
            assert math.isnan(g), f"{key}: expected NaN, got {g}"
        else:
            assert g == pytest.approx(e, rel=1e-12, abs=1e-12), key
    np.testing.assert_allclose(got["IoUs"], expected["IoUs"], rtol=1e-12, atol=1e-12)


def blobs(rng: np.random.Generator, h: int, w: int, values: np.ndarray) -> np.ndarray:
    """An (h, w) map of square cells of ``values`` (random cell size)."""
    cell = int(rng.integers(1, 6))
    coarse = rng.choice(values, size=(h // cell + 1, w // cell + 1))
    return np.kron(coarse, np.ones((cell, cell), dtype=np.int64))[:h, :w]


# ---- metadata files in the official shapes (see ../shared/README.md): a data.py, a list cut short -

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


# ---- the evaluator case -------------------------------------------------------------------------

#: Validation pairs of the evaluator case (conftest's ``eval_case``).
IMAGES = 8


def base_args(case: Dict[str, Path]) -> List[str]:
    return ["--predict-dir", str(case["pred"]), "--gt-dir", str(case["gt"]), "--mode", str(K),
            "--meta-dir", str(case["meta"]), "--workers", "0", "--quiet"]


# ---- golden cases -------------------------------------------------------------------------------

#: The standard: every number within 0.01 points of the original toolbox's.
TOL = 0.01


def assert_matches_expected(result, expected):
    for key, value in expected.items():
        if key == "IoUs":
            assert len(result[key]) == len(value)
            worst = max(abs(a - b) for a, b in zip(result[key], value))
            assert worst < TOL, f"per-class IoU off by {worst}"
        else:
            assert result[key] == pytest.approx(value, abs=TOL), key
