"""``match.py --clusters N``: more clusters than classes, matched many-to-one, then evaluated with the match."""

from __future__ import annotations

import json
from typing import Dict

import numpy as np
import pytest

from imagenets.codec import read_mask, write_mask
from imagenets.demo.synthetic import write_synthetic_meta
from imagenets.evaluation.engine.evaluation import evaluate_predictions
from imagenets.evaluation.engine.matchfile import UNCOVERED, parse_match
from imagenets.evaluation.engine.metrics import SUMMARY_KEYS
from imagenets.evaluation.match import COMMAND
from imagenets.evaluation.protocols.apply_match import apply_match
from imagenets.metadata import load_metadata
from imagenets.subsets import IGNORE, get_subset

from helpers import assert_one_error

K = 50
SUBSET = get_subset(K)
BOUNDARY_KEYS = ("mBIoU", "BS", "BMS", "BML", "BL")


@pytest.fixture(scope="module")
def split_case(tmp_path_factory) -> Dict[str, object]:
    """One image per class, one object each; every object predicted as two clusters (left and right half).

    ``whole/`` holds the same predictions in class ids (the object unsplit), shifted by a pixel so
    that IoUs are not all 100.
    """
    root = tmp_path_factory.mktemp("split")
    meta = load_metadata(write_synthetic_meta(root / "meta", K, validation=K, test=0, train_semi=0, seed=5))
    class_of = {wnid: c for c, wnid in enumerate(meta.categories(K), 1)}
    rng = np.random.default_rng(5)
    halves = (rng.permutation(2 * K) + 1).reshape(K, 2)       # halves[c - 1] = the two clusters of class c
    for _image, mask in meta.validation_names(K):
        c = class_of[mask.split("/")[0]]
        h, w = (int(v) for v in rng.integers(20, 48, size=2))
        gt = np.zeros((h, w), dtype=np.int32)
        top, left = int(rng.integers(0, h // 3)), int(rng.integers(0, w // 3))
        bottom, right = int(rng.integers(top + 6, h)), int(rng.integers(left + 6, w))
        gt[top:bottom, left:right] = c
        whole = np.roll(gt, 1, axis=1)
        gt[top, left:right] = IGNORE                           # an ignored border row
        split = np.where(whole == c, halves[c - 1, 0], 0)
        split[:, (left + right) // 2 + 1:] = np.where(whole[:, (left + right) // 2 + 1:] == c, halves[c - 1, 1], 0)
        write_mask(root / "gt" / mask, gt)
        write_mask(root / "whole" / mask, whole)
        write_mask(root / "split" / mask, split)
    return {"root": root, "meta": meta, "halves": halves}


def match_args(case, *extra: str):
    root = case["root"]
    return ["--predict-dir", str(root / "split"), "--gt-dir", str(root / "gt"), "--mode", str(K),
            "--meta-dir", str(root / "meta"), "--workers", "0", *extra]


@pytest.mark.parametrize("method", ["image", "pixel"])
def test_both_halves_of_every_object_go_to_its_class(split_case, tmp_path, monkeypatch, capsys, method):
    monkeypatch.chdir(tmp_path)
    report = tmp_path / "report.json"
    assert COMMAND.main(match_args(split_case, "--clusters", str(2 * K), "--method", method,
                                   "--output", str(report))) == 0
    err = capsys.readouterr().err
    obj = json.loads((tmp_path / "results" / "match.json").read_text())
    assert list(obj) == [str(p) for p in range(1, 2 * K + 1)] + ["0"]
    for c, (a, b) in enumerate(split_case["halves"], 1):
        assert obj[str(a)] == c and obj[str(b)] == c
    result = json.loads(report.read_text())
    assert result["clusters"] == 2 * K and result["match"] == obj
    assert [row["cluster"] for row in result["cluster_report"]] == list(range(1, 2 * K + 1))
    assert all(row["purity"] == 1.0 and row["class"] == obj[str(row["cluster"])] for row in result["cluster_report"])
    assert "purity" in err and "100.0%" in err and f"matched {2 * K} clusters onto {K} classes" in err


def test_evaluating_the_split_gives_the_unsplit_numbers_but_for_the_seams(split_case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert COMMAND.main(match_args(split_case, "--clusters", str(2 * K), "--quiet")) == 0
    root, meta = split_case["root"], split_case["meta"]
    split = evaluate_predictions(root / "split", root / "gt", SUBSET, meta, workers=0, quiet=True,
                                 match_file=tmp_path / "results" / "match.json")
    whole = evaluate_predictions(root / "whole", root / "gt", SUBSET, meta, workers=0, quiet=True)
    assert split["out_of_range_pixels"] == 0 and split["mIoU"] > 50
    for key in SUMMARY_KEYS:
        if key not in BOUNDARY_KEYS:
            assert split[key] == pytest.approx(whole[key], abs=1e-12), key
    assert split["IoUs"] == pytest.approx(whole["IoUs"], abs=1e-12)
    # Spec step 3: the seam between the two clusters of an object stays a prediction boundary, which
    # the GT does not have there, so boundary IoUs go down.
    assert split["mBIoU"] < whole["mBIoU"] - 1.0
    assert capsys.readouterr().err == ""


def test_ids_above_k_are_counted_and_name_clusters(split_case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert COMMAND.main(match_args(split_case, "--quiet")) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    # Ids 51..100 left out, the classes whose two halves are both <= 50 keep one and leave the other
    # to a class it never met, and which of the two is a tie: the tie report's line follows.
    assert len(warnings) == 2 and warnings[1].startswith("warning: tied match: "), err
    assert "prediction ids above 50 (largest: 100)" in warnings[0] and "--clusters 100" in warnings[0]
    assert " pixels in " in warnings[0] and f"of {K} images" in warnings[0]


def test_an_id_space_off_by_a_hundred_warns_instead_of_matching_silently(split_case, tmp_path, monkeypatch, capsys):
    root = split_case["root"]
    shifted = tmp_path / "shifted"
    for path in (root / "whole").rglob("*.png"):
        ids = read_mask(path)
        write_mask(shifted / path.relative_to(root / "whole"), np.where(ids > 0, ids + 100, 0))
    monkeypatch.chdir(tmp_path)
    args = match_args(split_case, "--quiet")
    args[args.index("--predict-dir") + 1] = str(shifted)
    assert COMMAND.main(args) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert "above 50 (largest: 150)" in warnings[0] and "--clusters 150" in warnings[0]
    assert "objective 0" in warnings[1]


@pytest.mark.parametrize("value", ["49", "0", "65536"])
def test_fewer_clusters_than_classes_is_refused(split_case, tmp_path, monkeypatch, capsys, value):
    monkeypatch.chdir(tmp_path)
    assert_one_error(COMMAND.main(match_args(split_case, "--clusters", value)), capsys.readouterr().err,
                     f"--clusters {value}")
    assert not (tmp_path / "results").exists()


def test_apply_match_writes_the_unsplit_classes_and_warns_about_the_seams(split_case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert COMMAND.main(match_args(split_case, "--clusters", str(2 * K), "--quiet")) == 0
    capsys.readouterr()
    root = split_case["root"]
    stats = apply_match(root / "split", tmp_path / "results" / "match.json", tmp_path / "applied", mode=str(K),
                        workers=0, quiet=True)
    assert stats.written == K and stats.uncovered_pixels == 0
    for path in (root / "whole").rglob("*.png"):
        np.testing.assert_array_equal(read_mask(tmp_path / "applied" / path.relative_to(root / "whole")),
                                      read_mask(path))
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "several clusters to one class" in warnings[0] and "mBIoU" in warnings[0]


def test_match_files_take_what_the_spec_takes(capsys):
    """Any non-negative integer keys, values 0..K: over-clustering, many-to-one, clusters that are "other"."""
    match = parse_match({"1": 3, "2": 3, "77": 0, "120": 50, "70000": 1}, K)
    assert match.mapping == {0: 0, 1: 3, 2: 3, 77: 0, 120: 50} and not match.one_to_one
    assert match.lut[[0, 1, 2, 77, 120, 3]].tolist() == [0, 3, 3, 0, 50, UNCOVERED]
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 1 and "70000" in warnings[0] and "ignored" in warnings[0]
