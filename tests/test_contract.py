"""The contract every command gets from the command layer, pinned for every command at once: its paths declare a
role and one guard checks them before any work; numbers, names and files from outside are parsed by one parser
each. A command added later is walked by these tests too."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from imagenets import cli
from imagenets.flags import ROLES, parser_actions

REPO = Path(__file__).resolve().parents[1]
#: Metavars that name a file or folder (``FILE.json``, ``DIR``, ``DEST/ImageNetS{K}``, ``MODEL``...).
PATH_METAVAR = re.compile(r"FILE|DIR|DEST|OUT\b|IMAGENET|MODEL|\.[a-z]+\b")


def command_parsers():
    for name in sorted(cli.all_commands()):
        command = cli.load_command(name)
        yield name, command.build_parser(f"imagenets {name}")


def path_like(action: argparse.Action) -> bool:
    metavar = action.metavar if isinstance(action.metavar, str) else ""
    return action.type in (Path,) or getattr(action.type, "__name__", "") == "user_path" or bool(
        PATH_METAVAR.search(metavar))


def test_every_path_option_of_every_command_declares_its_role():
    undeclared, walked = [], 0
    for name, parser in command_parsers():
        for action in parser_actions(parser):
            if path_like(action):
                walked += 1
                if getattr(action, "path_role", None) not in ROLES:
                    undeclared.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert walked > 40 and undeclared == [], f"path options without a role (use imagenets.flags): {undeclared}"


def test_every_number_option_is_parsed_by_the_one_parser():
    raw = [f"{name} {'/'.join(action.option_strings)}" for name, parser in command_parsers()
           for action in parser_actions(parser) if action.type in (int, float)]
    assert raw == [], f"use imagenets.flags.integer/real: {raw}"


def _entry_points():
    """``python FILE`` for the scripts a clone runs by path, ``python -m MODULE`` for the other ``__main__``s."""
    for path in sorted(p for folder in ("imagenets", "evaluation", "datapreparation")
                       for p in (REPO / folder).rglob("*.py") if 'if __name__ == "__main__"' in p.read_text()):
        rel = path.relative_to(REPO)
        if "sys.path[0] =" in path.read_text():
            yield str(rel), [str(path)]
        else:
            parts = rel.with_suffix("").parts
            yield str(rel), ["-m", ".".join(parts if parts[0] == "imagenets" else ("imagenets",) + parts)]


@pytest.mark.parametrize("argv", [argv for _, argv in _entry_points()], ids=[rel for rel, _ in _entry_points()])
def test_every_entry_point_on_a_python_without_the_dependencies_says_so_in_one_line(argv, tmp_path):
    # -S: no site-packages, so no numpy, Pillow, tqdm or torch; the clone itself is on PYTHONPATH
    done = subprocess.run([sys.executable, "-S", *argv, "--help"], cwd=tmp_path, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    if done.returncode != 0:
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert "needs the Python package" in done.stderr and "pip install" in done.stderr
