"""Typed options every command uses: numbers (bounded, finite, plain decimal) and paths (with their role).

A number option is parsed by :func:`integer` or :func:`real`, so ``-1``, ``1e400``, ``nan`` or a
50-digit count is one ``error:`` line from argparse, never a traceback later. A path option is added
with :func:`input_file`, :func:`input_dir`, :func:`output_file` or :func:`output_dir`: the role is kept
on the argparse action, and :func:`declared_paths` collects every role of a parsed command line for the
one guard the command layer runs before any work (``imagenets.cli``).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

# ---- numbers -----------------------------------------------------------------------------------

_INTEGER = re.compile(r"[+-]?[0-9]{1,30}")
_REAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")
#: Seeds: numpy's generators take any non-negative integer; 64 bits are plenty.
SEED_MAX = 2 ** 64 - 1
#: Bootstrap resamples: 1,000 to 10,000 is the usual range.
MAX_RESAMPLES = 100_000


def _range_text(low: Optional[float], high: Optional[float]) -> str:
    if low is not None and high is not None:
        return f"from {low} to {high}"
    if low is not None:
        return f"of at least {low}"
    return f"of at most {high}" if high is not None else ""


def integer(low: Optional[int] = None, high: Optional[int] = None, hint: str = "") -> Callable[[str], int]:
    """An argparse ``type``: a plain decimal integer in ``low..high`` (either bound may be None)."""
    def parse(text: str) -> int:
        value = int(text) if _INTEGER.fullmatch(text.strip()) else None
        if value is None or (low is not None and value < low) or (high is not None and value > high):
            fix = f": {hint}" if hint else ""
            where = _range_text(low, high)
            raise argparse.ArgumentTypeError(f"{text!r}: use a whole number{' ' + where if where else ''}{fix}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its own messages
    return parse


def plain_number(text: str) -> bool:
    """True for a plain decimal number (``0.25``, ``-3``, ``1e-4``): no ``nan``, ``inf``, ``_`` or
    exponents beyond four digits. What every number option accepts; ``--thresholds`` builds on it."""
    return bool(_REAL.fullmatch(text.strip()))


def as_float32(value: float) -> float:
    """``value`` rounded to float32 (infinite beyond its range), without numpy."""
    try:
        return struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)


def real(low: Optional[float] = None, high: Optional[float] = None, above: bool = False,
         hint: str = "", float32: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a finite decimal number in ``low..high`` (``above``: strictly more than ``low``);
    ``float32``: the number is used in float32, so it must stay in range once rounded to float32 too."""
    def parse(text: str) -> float:
        value = float(text) if plain_number(text) else math.nan
        checked = [value, as_float32(value)] if float32 else [value]
        bad = any(not math.isfinite(v) or (high is not None and v > high) or (
            low is not None and (v <= low if above else v < low)) for v in checked)
        if bad:
            where = (f"above {low}" + (f" and at most {high}" if high is not None else "")) if above \
                else _range_text(low, high)
            where += " in float32 (the precision it is used in)" if float32 else ""
            fix = f": {hint}" if hint else ""
            raise argparse.ArgumentTypeError(f"{text!r}: use a finite number{' ' + where if where else ''}{fix}")
        return value

    parse.__name__ = "number"
    return parse


def seed() -> Callable[[str], int]:
    """The type of every ``--seed``."""
    return integer(0, SEED_MAX, "a seed is a non-negative integer")


def resamples(low: int) -> Callable[[str], int]:
    """The type of every ``--bootstrap``."""
    return integer(low, MAX_RESAMPLES, "1000 to 10000 resamples give stable 95% intervals")


def workers(high: int = 1024) -> Callable[[str], int]:
    """The type of every ``--workers``."""
    return integer(0, high, "0 = everything in the main process")


# ---- paths and their roles ---------------------------------------------------------------------

INPUT_FILE = "input file"
INPUT_DIR = "input folder"
OUTPUT_FILE = "output file"
OUTPUT_DIR = "output folder"
ROLES = (INPUT_FILE, INPUT_DIR, OUTPUT_FILE, OUTPUT_DIR)


def user_path(text: str) -> Path:
    """The default ``type`` of a path option: ``~`` expanded, as prepare always did."""
    return Path(os.path.expanduser(text))


#: What an option not given stands for: (how messages name it, the path), or None (nothing).
Implied = Callable[[argparse.Namespace], Optional[Tuple[str, Path]]]


def path_option(parser: Any, *flags: str, role: str, managed: bool = False, implied: Optional[Implied] = None,
                distinct: bool = False, **kwargs: Any) -> argparse.Action:
    """``parser.add_argument`` of a path, its ``role`` kept on the action for the command layer's guard.

    ``managed`` (output folders only): the command plans every entry of that tree itself (prepare's
    DEST: links into the ImageNet folder are its own, its leftovers its own), so the guard neither
    walks it for links into the inputs nor sweeps it for stale temporaries. ``implied``: the path the
    command uses when the option is not given (``--meta-dir``: ``$IMAGENETS_META_DIR`` or the cache;
    a report's ``--images``: the folder beside ``--gt-dir``), guarded as if it had been given. ``distinct``
    (a list of files): no file may be given twice, also through a link (aggregate's runs: one counted
    twice would shrink the spread).
    """
    if role not in ROLES:
        raise ValueError(f"unknown path role {role!r}")
    kwargs.setdefault("type", user_path)
    action = parser.add_argument(*flags, **kwargs)
    action.path_role = role  # type: ignore[attr-defined]
    action.path_managed = managed  # type: ignore[attr-defined]
    action.path_implied = implied  # type: ignore[attr-defined]
    action.path_distinct = distinct  # type: ignore[attr-defined]
    return action


def input_file(parser: Any, *flags: str, **kwargs: Any) -> argparse.Action:
    return path_option(parser, *flags, role=INPUT_FILE, **kwargs)


def input_dir(parser: Any, *flags: str, **kwargs: Any) -> argparse.Action:
    return path_option(parser, *flags, role=INPUT_DIR, **kwargs)


def output_file(parser: Any, *flags: str, **kwargs: Any) -> argparse.Action:
    return path_option(parser, *flags, role=OUTPUT_FILE, **kwargs)


def output_dir(parser: Any, *flags: str, **kwargs: Any) -> argparse.Action:
    return path_option(parser, *flags, role=OUTPUT_DIR, **kwargs)


Labelled = List[Tuple[str, Path]]


@dataclass
class Declared:
    """The paths of one command line, by role, each labelled by its option; what the guard checks."""

    inputs: Labelled = field(default_factory=list)
    input_dirs: Labelled = field(default_factory=list)
    outputs: Labelled = field(default_factory=list)
    output_dirs: Labelled = field(default_factory=list)
    managed: List[Path] = field(default_factory=list)  # output folders the command manages itself
    distinct: List[Tuple[str, List[Path]]] = field(default_factory=list)  # lists that may not repeat a file

    def by_role(self, role: str) -> Labelled:
        return {INPUT_FILE: self.inputs, INPUT_DIR: self.input_dirs, OUTPUT_FILE: self.outputs,
                OUTPUT_DIR: self.output_dirs}[role]

    def add(self, role: str, label: str, path: Any) -> None:
        """Declare one more path (e.g. an output derived from the arguments); None is ignored."""
        if path is not None:
            self.by_role(role).append((label, Path(path)))

    def drop(self, label: str) -> None:
        """Forget the paths labelled ``label`` (an output a run will not write after all)."""
        for role in ROLES:
            self.by_role(role)[:] = [(name, path) for name, path in self.by_role(role) if name != label]


def option_label(action: argparse.Action) -> str:
    """How messages name an option: its first long flag (``--output``), else its metavar or dest."""
    longs = [flag for flag in action.option_strings if flag.startswith("--")]
    if longs:
        return longs[0]
    if action.option_strings:
        return action.option_strings[0]
    return str(action.metavar or action.dest)


def parser_actions(parser: argparse.ArgumentParser) -> List[argparse.Action]:
    """Every action of ``parser`` and of its sub-command parsers (``imagenets meta path``...)."""
    found = []
    for action in parser._actions:  # argparse keeps no public list of a parser's actions
        found.append(action)
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found += parser_actions(sub)
    return found


def declared_paths(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Declared:
    """The paths a parsed command line names, by the roles its options declare."""
    declared = Declared()
    for action in parser_actions(parser):
        role = getattr(action, "path_role", None)
        value = getattr(args, action.dest, None) if role else None
        implied = getattr(action, "path_implied", None)
        if value is None and implied is not None:
            found = implied(args)
            if found is not None:
                declared.add(role, *found)
            continue
        if value is None:
            continue
        if getattr(action, "path_distinct", False):
            declared.distinct.append((option_label(action), [user_path(os.fspath(p)) for p in value]))
        for path in (value if isinstance(value, (list, tuple)) else [value]):
            path = user_path(os.fspath(path))  # str-typed options (prepare's) expand ``~`` themselves
            declared.add(role, option_label(action), path)
            if getattr(action, "path_managed", False):
                declared.managed.append(path)
    return declared
