"""The second adversarial pass over the command layer (issue 16's "Done when"): each defect it found, pinned on
the artifact's real shape and on the shared piece that now holds the guarantee (the guard's implied inputs,
the readers, the number parser, the temporaries, escaped names, the metric's state)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import assert_one_error
from imagenets.cli import run_command
from imagenets.demo.synthetic import write_synthetic_dataset, write_synthetic_meta
from imagenets.metadata import load_metadata

K = 50


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A prepared ImageNet-S50 tree (photos beside the masks), cluster-id predictions and their match."""
    root = tmp_path_factory.mktemp("prepared")
    meta = load_metadata(write_synthetic_meta(root / "meta", K, validation=6, test=1, train_semi=1))
    made = write_synthetic_dataset(root, meta, K, layout="prepared", sides=(24, 40), train_per_class=0,
                                   quality=0.7, quiet=True)
    match = {"0": 0, **{str(int(cluster)): c for c, cluster in enumerate(made["permutation"], 1)}}
    (root / "match.json").write_text(json.dumps(match))
    return {"root": root, "meta": root / "meta", "gt": root / "ImageNetS50" / "validation-segmentation",
            "images": root / "ImageNetS50" / "validation", "pred": root / "predictions" / "validation",
            "match": root / "match.json"}


def evaluate_argv(case, *extra: str, meta: bool = True) -> list:
    return ["evaluate", "--predict-dir", str(case["pred"]), "--gt-dir", str(case["gt"]), "--mode", "50",
            "--match", str(case["match"]), "--workers", "0", "--quiet",
            *(["--meta-dir", str(case["meta"])] if meta else []), *extra]


# ---- the guard's implied inputs: what an option not given stands for is an input too ------------------

def test_a_report_over_a_photo_of_the_default_images_folder_is_refused(prepared, capsys):
    photo = next(p for p in sorted(prepared["images"].rglob("*")) if p.is_file())
    before = photo.read_bytes()
    status = run_command(evaluate_argv(prepared, "--report", str(photo)))
    assert_one_error(status, capsys.readouterr().err, "--report", "lies inside --images")
    assert photo.read_bytes() == before


def test_an_output_into_the_metadata_folder_of_the_environment_is_refused(prepared, tmp_path, monkeypatch, capsys):
    meta = shutil.copytree(prepared["meta"], tmp_path / "meta")
    listed = next(p for p in sorted((meta / "names").iterdir()) if "validation" in p.name)
    before = listed.read_bytes()
    monkeypatch.setenv("IMAGENETS_META_DIR", str(meta))
    status = run_command(evaluate_argv(prepared, "--output", str(listed), meta=False))
    assert_one_error(status, capsys.readouterr().err, "--output", "lies inside IMAGENETS_META_DIR")
    assert listed.read_bytes() == before
