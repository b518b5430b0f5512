"""The original-style entry points: `bash data_preparation.sh` and the scripts, run from datapreparation/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fake_imagenet import tree_snapshot
from imagenets.subsets import get_subset

SCRIPTS = Path(__file__).resolve().parents[1] / "datapreparation"


def run(args, env, cwd=SCRIPTS):
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)


@pytest.fixture()
def env(meta_dir, server):
    url, folder, log = server
    values = dict(os.environ, IMAGENETS_META_DIR=str(meta_dir), IMAGENETS_RELEASE_URL=url,
                  IMAGENETS_SKIP_CHECKSUM="1", PYTHON=sys.executable)
    return values, folder, log


def test_bash_entry_point_prepares_reruns_and_verifies(env, inet50_flat, zip50, tmp_path):
    values, folder, log = env
    (folder / "release").mkdir()
    shutil.copy(zip50[0], folder / "release" / get_subset(50).annotation_archive)
    dest = tmp_path / "dest"
    first = run(["bash", "data_preparation.sh", str(inet50_flat.root), str(dest), "50", "false"], values)
    assert first.returncode == 0, first.stderr
    assert "validation source layout: flat" in first.stderr
    assert "ImageNetS50 test: 1682 created" in first.stdout
    before = tree_snapshot(dest)
    again = run(["bash", "data_preparation.sh", str(inet50_flat.root), str(dest), "50", "false"], values)
    assert again.returncode == 0, again.stderr
    assert tree_snapshot(dest) == before and len(log) == 1
    assert "annotations: 0 created, 1252 already present" in again.stdout
    checked = run([sys.executable, "-m", "imagenets", "verify", str(dest), "--mode", "50"], values,
                  cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "ImageNetS50: complete" in checked.stdout


def test_script_help_and_bad_arguments(env, tmp_path):
    values = env[0]
    shown = run([sys.executable, "datapreparation_train.py", "--help"], values)
    assert shown.returncode == 0 and "--imagenet-dir" in shown.stdout and "--copy" in shown.stdout
    wrong = run(["bash", "data_preparation.sh", "a", "b", "50", "yes"], values)
    assert wrong.returncode == 2 and "must be true or false" in wrong.stderr
    short = run(["bash", "datapreparation_anno.sh", "dest"], values)
    assert short.returncode == 2 and "usage: bash datapreparation_anno.sh DEST" in short.stderr
