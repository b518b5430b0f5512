"""The package layout: one import name, a static command table, the original script entry points."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from imagenets import cli

REPO = Path(__file__).resolve().parents[1]


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_every_command_in_the_table_ships_and_loads():
    for name, spec in cli.COMMANDS.items():
        if name in cli.all_commands():
            assert cli.load_command(name).name == name


def test_help_lists_commands_without_importing_torch(tmp_path):
    done = run_python("import sys\nfrom imagenets import cli\n"
                      "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
                      "print('torch loaded' if 'torch' in sys.modules else 'torch not loaded')", tmp_path)
    assert "torch not loaded" in done.stdout, done.stderr
    assert "evaluate" in done.stdout and "distance-matching" in done.stdout


def test_commands_work_from_a_folder_with_its_own_evaluation_package(tmp_path):
    # A research repository often has its own evaluation/ (and datapreparation/) package.
    for name in ("evaluation", "datapreparation"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('not the toolbox')\n")
    # `python -m imagenets CMD --help` for each command, in one interpreter (torch loads once): the
    # folder is on sys.path[0] as with -m, and each command still imports its own modules first.
    done = run_python("import contextlib, io, json, runpy, sys\n"
                      "said = {}\n"
                      "for command in ('match', 'evaluate', 'prepare'):\n"
                      "    sys.argv = ['imagenets', command, '--help']\n"
                      "    out = io.StringIO()\n"
                      "    with contextlib.redirect_stdout(out):\n"
                      "        try:\n"
                      "            runpy.run_module('imagenets', run_name='__main__', alter_sys=True)\n"
                      "            code = None\n"
                      "        except SystemExit as exc:\n"
                      "            code = exc.code\n"
                      "    said[command] = [code, out.getvalue()]\n"
                      "print(json.dumps(said))", tmp_path)
    assert done.returncode == 0, done.stderr
    for command, (code, out) in json.loads(done.stdout).items():
        assert code == 0 and "usage: imagenets " + command in out, (command, done.stderr)


def test_installed_packages_all_live_under_the_one_import_name():
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert all(p == "imagenets" or p.startswith("imagenets.") for p in config["packages"])
    assert config["package-dir"]["imagenets.evaluation"] == "evaluation"
    assert config["package-dir"]["imagenets.datapreparation"] == "datapreparation"
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert all(target.startswith("imagenets.") for target in scripts.values())


def test_a_missing_dependency_is_one_line_naming_the_install(monkeypatch, capsys):
    def broken():
        raise ModuleNotFoundError("No module named 'tqdm'", name="tqdm")

    monkeypatch.setattr(cli.CommandSpec, "load", lambda self: broken())
    assert cli.main(["evaluate", "--help"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'tqdm'" in err and "pip install" in err
