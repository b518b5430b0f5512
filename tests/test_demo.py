"""``imagenets demo``: runs offline on synthetic data, recovers the permutation, never clobbers a folder."""

from __future__ import annotations

import json
import os

import pytest

from imagenets.cli import run_command
from imagenets.demo import STEPS, Step, run_demo, summary
from imagenets.errors import UserError

QUICK = ["--images", "60", "--max-side", "48", "--workers", "0", "--quiet"]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    here = os.getcwd()
    assert run_command(["demo", "--output-dir", str(out), *QUICK]) == 0
    assert os.getcwd() == here
    return out


def test_demo_writes_every_product(demo_dir):
    for rel in ("meta/categories/ImageNetS_categories_im50.txt", "benchmark/true_match.json",
                "results/demo.json", "results/evaluation.json"):
        assert (demo_dir / rel).is_file(), rel
    assert len(list((demo_dir / "benchmark" / "gt").rglob("*.png"))) == 60
    assert len(list((demo_dir / "benchmark" / "pred").rglob("*.png"))) == 60


def test_demo_match_recovers_most_of_the_permutation(demo_dir):
    truth = json.loads((demo_dir / "benchmark" / "true_match.json").read_text())
    found = json.loads((demo_dir / "results" / "demo.json").read_text())
    right = sum(found[cluster] == cls for cluster, cls in truth.items() if cls)
    assert right >= 40


def test_demo_evaluation_is_a_plausible_score(demo_dir):
    report = json.loads((demo_dir / "results" / "evaluation.json").read_text())
    assert report["images"] == 60
    assert 30 < report["mIoU"] < 100


def test_second_run_reuses_its_own_folder(demo_dir):
    assert run_command(["demo", "--output-dir", str(demo_dir), *QUICK]) == 0


def test_demo_refuses_a_foreign_non_empty_folder(tmp_path, capsys):
    (tmp_path / "thesis.tex").write_text("precious")
    assert run_command(["demo", "--output-dir", str(tmp_path), *QUICK]) == 2
    assert "not made by `imagenets demo`" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["thesis.tex"]


def test_steps_whose_command_is_missing_are_named_not_failed(tmp_path):
    ran = []
    steps = [STEPS[0], Step("a future step", lambda demo: ran.append(1), ("no-such-command",))]
    demo = run_demo(tmp_path / "out", workers=0, quiet=True, images=5, steps=steps)
    assert not ran
    text = summary(demo)
    assert "a future step (needs imagenets no-such-command)" in text
    assert str(tmp_path / "out" / "meta") in text


def test_bad_images_count_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="--images"):
        run_demo(tmp_path, images=0)
