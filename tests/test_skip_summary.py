"""The suite's short summary: one ``SKIPPED [N] reason`` line per distinct skip reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

SKIPPING = '''
import pytest

@pytest.mark.parametrize("n", range(5))
def test_needs_the_folder(n):
    pytest.skip("the folder is absent")

def test_other():
    pytest.skip("another reason")

def test_runs():
    pass
'''


def test_identical_skip_reasons_are_one_line_each(tmp_path):
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-ra", "-p", "skip_summary", "-p", "no:cacheprovider",
                           "test_skipping.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line for line in lines if "SKIPPED" in line] == [
        "SKIPPED [5] the folder is absent (first at test_skipping.py:6)",
        "SKIPPED [1] another reason (first at test_skipping.py:9)"], done.stdout
    assert "1 passed, 6 skipped" in lines[-1]
