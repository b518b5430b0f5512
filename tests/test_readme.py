"""Every command line in README's ```bash blocks parses with its command's real parser (nothing is run).

``imagenets ...`` goes through the umbrella parser, ``python match.py|evaluator.py ...`` through the
scripts' parsers, and ``bash data_preparation.sh ...`` through the script itself with a stand-in
interpreter that only records the ``prepare`` arguments the script builds.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Iterator, List, Set

import pytest

from imagenets.cli import all_commands, build_parser, load_command

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SCRIPT = REPO / "datapreparation" / "data_preparation.sh"
SCRIPTS = {"match.py": "imagenets.evaluation.match", "evaluator.py": "imagenets.evaluation.evaluator"}
#: Lines of the blocks that are no toolbox command (installing, a venv, changing folder, running the tests).
NOT_COMMANDS = (("pip",), ("python", "-m", "pip"), ("python", "-m", "pytest"), ("cd",), ("python", "-m", "venv"),
                (".",))
OPERATORS = {"&&", "||", ";", "|"}
#: Examples other work is fixing; covered here, expected to fail until that lands.
def bash_lines(text: str) -> Iterator[str]:
    """Logical lines (backslash continuations joined) of every ```bash block."""
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
        yield from (line for line in block.replace("\\\n", " ").splitlines() if line.strip())


def split_commands(line: str) -> List[List[str]]:
    """The simple commands of one shell line (split at ``&&``, ``;``, ...), comments dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: List[List[str]] = [[]]
    for token in lexer:
        if token in OPERATORS:
            commands.append([])
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def launched(argv: List[str]) -> List[str]:
    """``torchrun [options] -m imagenets ARGS`` as ``imagenets ARGS``, torchrun's options checked by its parser."""
    if argv[0] != "torchrun":
        return argv
    from torch.distributed.run import get_args_parser

    args = get_args_parser().parse_args(argv[1:])
    assert args.module and args.training_script == "imagenets", " ".join(argv)
    return ["imagenets", *args.training_script_args]


def readme_commands() -> List[List[str]]:
    return [launched(c) for line in bash_lines(README.read_text(encoding="utf-8")) for c in split_commands(line)]


def is_toolbox_command(argv: List[str]) -> bool:
    return (argv[0] == "imagenets" or argv[:1] == ["python"] and argv[1:2] and argv[1] in SCRIPTS
            or argv[:2] == ["bash", "data_preparation.sh"])


def option_strings(parser: argparse.ArgumentParser) -> Set[str]:
    """Every option string of ``parser`` and of its sub-parsers."""
    found: Set[str] = set()
    for action in parser._actions:
        found.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= option_strings(sub)
    return found


def prepare_argv(argv: List[str], tmp_path: Path) -> List[str]:
    """The arguments ``data_preparation.sh`` hands to ``python -m imagenets prepare``."""
    record = tmp_path / "argv"
    stub = tmp_path / "python"
    stub.write_text('#!/bin/sh\nprintf "%s\\0" "$@" > "$ARGV_RECORD"\n')
    stub.chmod(0o755)
    env = dict(os.environ, PYTHON=str(stub), ARGV_RECORD=str(record))
    done = subprocess.run(["bash", str(SCRIPT)] + argv[2:], env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr.strip()}"
    recorded = record.read_bytes().decode().split("\0")[:-1]
    assert recorded[:3] == ["-m", "imagenets", "prepare"]
    return recorded[3:]


def parser_and_args(argv: List[str], tmp_path: Path):
    """(the real parser of this command line, the arguments it parses)."""
    if argv[0] == "imagenets":
        name = next((a for a in argv[1:] if not a.startswith("-")), "")
        assert name in all_commands(), f"`imagenets {name}` is no command"
        return build_parser(all_commands(), load_command(name)), argv[1:]
    if argv[0] == "bash":
        return load_command("prepare").build_parser("imagenets prepare"), prepare_argv(argv, tmp_path)
    module = __import__(SCRIPTS[argv[1]], fromlist=["COMMAND"])
    return module.COMMAND.build_parser(argv[1]), argv[2:]


COMMANDS = [c for c in readme_commands() if is_toolbox_command(c)]


def _param(argv: List[str]):
    return pytest.param(argv, id=" ".join(argv)[:70])


def test_readme_has_the_expected_kinds_of_commands():
    """Guards the extraction itself: a broken pattern would leave nothing to check."""
    kinds = {" ".join(c[:2]) for c in COMMANDS}
    assert {"python match.py", "python evaluator.py", "bash data_preparation.sh", "imagenets demo",
            "imagenets prepare", "imagenets verify", "imagenets meta", "imagenets convert"} <= kinds


def test_every_bash_line_is_a_toolbox_command_or_a_known_setup_step():
    others = [c for c in readme_commands() if not is_toolbox_command(c)]
    unknown = [" ".join(c) for c in others if not any(tuple(c[:len(p)]) == p for p in NOT_COMMANDS)]
    assert not unknown, f"README commands this test does not check: {unknown}"


def test_cd_lines_pasted_in_order_reach_existing_folders():
    """Pasting the blocks one after another from the clone's root never cds into a missing folder."""
    here = REPO
    for argv in readme_commands():
        if argv[0] == "cd":
            here = (here / argv[1]).resolve()
            assert here.is_dir() and REPO in (here, *here.parents), f"`cd {argv[1]}` lands in {here}"


@pytest.mark.parametrize("argv", [_param(c) for c in COMMANDS])
def test_readme_command_parses_with_its_real_parser(argv, tmp_path, capsys):
    parser, args = parser_and_args(argv, tmp_path)
    try:
        parser.parse_args(args)
    except SystemExit as exc:
        pytest.fail(f"{' '.join(argv)}: exit {exc.code}: {capsys.readouterr().err.strip()}")
    known = option_strings(parser)
    # Exact flags only: an abbreviation parses today but breaks when a longer option is added.
    inexact = [a.split("=", 1)[0] for a in args if a.startswith("-") and a.split("=", 1)[0] not in known]
    assert not inexact, f"{' '.join(argv)}: not an exact option of its command: {inexact}"
