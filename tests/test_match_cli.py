"""``match.py`` / ``imagenets match`` as users run it: results/NAME.json, reports, bad input."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
from PIL import Image

from imagenets.evaluation.match import COMMAND
from imagenets.codec import read_mask, write_mask
from imagenets.metadata import load_metadata
from imagenets.demo.synthetic import write_synthetic_benchmark, write_synthetic_meta

from helpers import assert_one_error, exit_status, run_tool

K = 50
IMAGES = 10


@pytest.fixture(scope="module")
def clusters(tmp_path_factory) -> Path:
    """Perfect predictions written as cluster ids (a hidden permutation of the classes)."""
    root = tmp_path_factory.mktemp("clusters")
    meta = load_metadata(write_synthetic_meta(root / "meta", K, validation=IMAGES, test=0, train_semi=0, seed=3))
    made = write_synthetic_benchmark(root / "case", meta, K, sides=(24, 40), permute=True, quality=1.0,
                                     seed=3, quiet=True)
    np.save(root / "permutation.npy", made["permutation"])
    return root


@pytest.fixture
def case(clusters, tmp_path, monkeypatch) -> Dict[str, object]:
    """A private copy of the data; the working directory is a fresh folder (results/ goes there)."""
    shutil.copytree(clusters, tmp_path / "data")
    root = tmp_path / "data"
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return {"meta": root / "meta", "gt": root / "case" / "gt", "pred": root / "case" / "pred",
            "masks": [m for _i, m in load_metadata(root / "meta").validation_names(K)],
            "permutation": np.load(root / "permutation.npy"), "work": work}


def args_for(case, *extra: str) -> List[str]:
    return ["--predict-dir", str(case["pred"]), "--gt-dir", str(case["gt"]), "--mode", str(K),
            "--meta-dir", str(case["meta"]), "--workers", "0", "--quiet", *extra]


def class_occurrences(case) -> int:
    """Sum over images of the number of GT classes present (ignore dropped): the best objective here."""
    total = 0
    for mask in case["masks"]:
        ids = read_mask(case["gt"] / mask)
        total += np.unique(ids[(ids > 0) & (ids <= K)]).size
    return total


def test_writes_results_name_json_and_prints_its_path(case, capsys):
    assert COMMAND.main(args_for(case, "--session-name", "run1")) == 0
    captured = capsys.readouterr()
    path = Path("results") / "run1.json"
    # Ten images of fifty classes leave tied clusters: one warning line, the tie report's.
    assert captured.out.strip() == str(path) and captured.err.startswith("warning: tied match: ")
    assert captured.err.count("\n") == 1
    obj = json.loads((case["work"] / path).read_text())
    assert list(obj) == [str(i) for i in range(1, K + 1)] + ["0"]
    assert obj["0"] == 0 and sorted(obj.values())[1:] == list(range(1, K + 1))


def test_match_undoes_the_hidden_permutation_where_it_is_determined(case, capsys):
    report = case["work"] / "report.json"
    assert COMMAND.main(args_for(case, "--output", str(report))) == 0
    result = json.loads(report.read_text())
    assert result["images"] == IMAGES and result["method"] == "image" and result["subset"] == "ImageNetS50"
    assert result["match_file"] == str(Path("results") / "match.json")
    assert result["objective"] == class_occurrences(case)
    # A class seen alone in some image has a unique best cluster: its permuted id.
    match = {int(k): v for k, v in result["match"].items()}
    perm = case["permutation"]
    for mask in case["masks"]:
        present = np.unique(read_mask(case["gt"] / mask))
        classes = present[(present > 0) & (present <= K)]
        if classes.size == 1:
            assert match[int(perm[classes[0] - 1])] == classes[0]


def test_pixel_method_is_offered_and_reported(case, capsys):
    report = case["work"] / "pixel.json"
    assert COMMAND.main(args_for(case, "--method", "pixel", "--output", str(report))) == 0
    assert json.loads(report.read_text())["method"] == "pixel"


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden"])
def test_bad_session_name_is_refused(case, capsys, name):
    assert_one_error(COMMAND.main(args_for(case, "--session-name", name)), capsys.readouterr().err, "--session-name")
    assert not (case["work"] / "results").exists()


def test_missing_predictions_are_counted_before_any_work(case, capsys):
    (case["pred"] / case["masks"][7]).unlink()
    assert_one_error(COMMAND.main(args_for(case)), capsys.readouterr().err, f"1 of {IMAGES} prediction PNGs are missing",
                     str(case["pred"] / case["masks"][7]))
    assert not (case["work"] / "results").exists()


def test_palette_prediction_explains_the_encoding(case, capsys):
    path = case["pred"] / case["masks"][2]
    Image.fromarray(read_mask(path).astype(np.uint8), "L").convert("P").save(path)
    assert_one_error(COMMAND.main(args_for(case)), capsys.readouterr().err, str(path), "R + 256*G")


def test_size_mismatch_is_named(case, capsys):
    path = case["pred"] / case["masks"][5]
    write_mask(path, read_mask(path)[1:])
    assert_one_error(COMMAND.main(args_for(case)), capsys.readouterr().err, str(path))


def test_unknown_mode_is_refused_with_status_2(case, capsys):
    args = args_for(case)
    args[args.index("--mode") + 1] = "100"
    assert exit_status(COMMAND.main, args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "--mode" in err


def test_script_and_umbrella_command_write_results_in_their_working_directory(case):
    match_py = Path(__file__).resolve().parents[1] / "evaluation" / "match.py"
    done = run_tool([sys.executable, str(match_py)] + args_for(case, "--session-name", "script"), case["work"])
    assert done.returncode == 0, done.stderr
    assert json.loads((case["work"] / "results" / "script.json").read_text())["0"] == 0
    umbrella = shutil.which("imagenets")
    if umbrella is None:
        pytest.skip("the imagenets command is not installed (pip install -e .)")
    done = run_tool([umbrella, "match"] + args_for(case, "--session-name", "umbrella"), case["work"])
    assert done.returncode == 0, done.stderr
    assert (case["work"] / "results" / "umbrella.json").read_text() == \
        (case["work"] / "results" / "script.json").read_text()
