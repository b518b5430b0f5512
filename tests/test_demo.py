"""``imagenets demo``: runs offline end to end, recovers the permutation, never clobbers a folder."""

from __future__ import annotations

import json
import os
import zipfile

import pytest
from PIL import Image

from imagenets.cli import all_commands, run_command
from imagenets.demo.command import MARKER, STEPS, Step, run_demo, summary
from imagenets.errors import UserError

QUICK = ["--images", "60", "--max-side", "48", "--workers", "0", "--quiet"]


def _needs(*commands):
    missing = [c for c in commands if c not in all_commands()]
    if missing:
        pytest.skip(f"commands not installed: {', '.join(missing)}")


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    here = os.getcwd()
    assert run_command(["demo", "--output-dir", str(out), *QUICK]) == 0
    assert os.getcwd() == here
    return out


def test_demo_writes_the_metadata_data_and_match(demo_dir):
    for rel in ("meta/categories/ImageNetS_categories_im50.txt", "predictions/true_match.json",
                "results/demo.json", "results/evaluation.json", "results/per_class_iou.png",
                "results/report.html"):
        assert (demo_dir / rel).is_file(), rel
    assert len(list((demo_dir / "predictions" / "validation").rglob("*.png"))) == 60
    assert len(list((demo_dir / "predictions" / "test").rglob("*.png"))) == 60


def test_demo_masks_come_from_the_prepared_tree(demo_dir):
    _needs("prepare")
    masks = demo_dir / "dataset" / "ImageNetS50" / "validation-segmentation"
    assert len(list(masks.rglob("*.png"))) == 60
    assert zipfile.is_zipfile(demo_dir / "ImageNetS50-synthetic.zip")


def test_demo_match_recovers_most_of_the_permutation(demo_dir):
    truth = json.loads((demo_dir / "predictions" / "true_match.json").read_text())
    found = json.loads((demo_dir / "results" / "demo.json").read_text())
    right = sum(found[cluster] == cls for cluster, cls in truth.items() if cls)
    assert right >= 40


def test_demo_evaluation_is_a_plausible_score(demo_dir):
    report = json.loads((demo_dir / "results" / "evaluation.json").read_text())
    assert report["images"] == 60
    assert 30 < report["mIoU"] < 100


def test_demo_score_of_the_submission_equals_the_evaluation(demo_dir):
    _needs("apply-match", "submission", "score")
    assert zipfile.is_zipfile(demo_dir / "submissions" / "test-submission.zip")
    scored = json.loads((demo_dir / "results" / "score.json").read_text())
    evaluated = json.loads((demo_dir / "results" / "evaluation.json").read_text())
    assert scored["mIoU"] == pytest.approx(evaluated["mIoU"], abs=1e-9)


def test_demo_draws_pictures_and_converts_masks(demo_dir):
    index = (demo_dir / "pictures" / "index.html").read_text()
    pictures = list((demo_dir / "pictures" / "pictures").rglob("*.png"))
    assert len(pictures) == 24 and all(p.relative_to(demo_dir / "pictures").as_posix() in index
                                       for p in pictures)
    gray = list((demo_dir / "validation-segmentation-gray16").rglob("*.png"))
    assert len(gray) == 60
    with Image.open(gray[0]) as image:
        assert image.mode.startswith("I")


def test_second_run_replaces_its_own_files(demo_dir):
    stale = demo_dir / "predictions" / "validation" / "stale.png"
    stale.write_bytes(b"old")
    (demo_dir / "notes.txt").write_text("mine")
    assert run_command(["demo", "--output-dir", str(demo_dir), *QUICK]) == 0
    assert not stale.exists()
    assert (demo_dir / "notes.txt").read_text() == "mine"  # only the demo's own products are replaced
    assert (demo_dir / MARKER).exists()


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


def test_without_prepare_the_tree_is_written_directly(tmp_path):
    demo = run_demo(tmp_path / "out", workers=0, quiet=True, images=5, max_side=32, steps=STEPS[:2])
    demo.commands = ()  # as if `imagenets prepare` were not installed
    STEPS[1].action(demo)
    assert demo.subset_dir == tmp_path / "out" / "dataset" / "ImageNetS50"
    assert len(list((demo.subset_dir / "validation-segmentation").rglob("*.png"))) == 5


def test_bad_images_count_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="--images"):
        run_demo(tmp_path, images=0)
