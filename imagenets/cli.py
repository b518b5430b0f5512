"""The umbrella ``imagenets`` command and the small framework every sub-command uses.

A sub-command is a :class:`Command` (name, help, ``add_arguments``, ``run``). Core commands
live in this package; the others (evaluation, datapreparation) register themselves through the
``imagenets.commands`` entry-point group, so this core never imports them.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import Callable, Dict, List, NoReturn, Optional, Sequence

from . import __version__
from .device import DEVICE_CHOICES
from .errors import EXIT_BAD_INPUT, UserError, warn
from .subsets import MODES

ENTRY_POINT_GROUP = "imagenets.commands"


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the toolbox's bad-input contract: one ``error:`` line, exit status 2."""

    def error(self, message: str) -> "NoReturn":  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


@dataclass
class Command:
    """One sub-command: usable as ``imagenets NAME`` and as a standalone script."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], Optional[int]]
    description: str = ""

    def build_parser(self, prog: Optional[str] = None) -> argparse.ArgumentParser:
        parser = ArgumentParser(prog=prog, description=self.description or self.help,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        self.add_arguments(parser)
        return parser

    def main(self, argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
        """Parse ``argv`` and run; bad input exits 2 with one line, no traceback."""
        parser = self.build_parser(prog or os.path.basename(sys.argv[0]) or self.name)
        args = parser.parse_args(argv)
        return guarded(self.run, args)


def guarded(func: Callable[..., Optional[int]], *args) -> int:
    """Run ``func``; turn UserError into ``error: ...`` + exit 2 and Ctrl-C into exit 130."""
    try:
        return int(func(*args) or 0)
    except UserError as exc:
        sys.stdout.flush()
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


# ---- argument helpers shared by the commands -------------------------------------------

def add_mode_argument(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--mode", required=required, choices=MODES, metavar="{50,300,919}",
                        help="ImageNet-S subset: 50, 300 or 919 classes")


def add_meta_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--meta-dir", default=None, metavar="DIR",
                        help="directory with the official lists (categories/, names/, mapping/, "
                             "e.g. a copy of the official data/ folder); default: $IMAGENETS_META_DIR, "
                             "else the cache filled by `imagenets meta download`")


def add_workers_argument(parser: argparse.ArgumentParser, default: int = 2) -> None:
    parser.add_argument("--workers", type=int, default=default, metavar="N",
                        help="parallel workers (0 = do everything in the main process)")


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES,
                        help="where to compute: auto = cuda when available, else cpu")


def add_quiet_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="no progress bars or tables; warnings and errors still go to stderr")


# ---- the umbrella command --------------------------------------------------------------

CORE_MODULES = {"meta": "meta_cli", "convert": "convert", "demo": "demo"}


def core_commands(only: Optional[str] = None) -> List[Command]:
    """Commands implemented in this core package (just ``only`` when given)."""
    found = []
    for name, module in CORE_MODULES.items():
        if only is not None and name != only:
            continue
        try:
            found.append(__import__(f"imagenets.{module}", fromlist=["COMMAND"]).COMMAND)
        except ImportError:
            pass
    return found


def _entry_points():
    from importlib import metadata

    try:
        return list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    except TypeError:  # Python < 3.10
        return list(metadata.entry_points().get(ENTRY_POINT_GROUP, []))


def plugin_commands(only: Optional[str] = None) -> List[Command]:
    """Commands registered by evaluation/datapreparation under the entry-point group."""
    found = []
    for ep in _entry_points():
        if only is not None and ep.name != only:
            continue
        try:
            found.append(ep.load())
        except (ImportError, AttributeError):
            # A command whose module is not installed is simply not offered.
            continue
        except Exception as exc:  # a broken plugin must not take every other command down
            warn(f"command {ep.name!r} is unavailable: {type(exc).__name__}: {exc}")
    return found


def all_commands(only: Optional[str] = None) -> Dict[str, Command]:
    """Every command; with ``only``, just that one when it exists (imports stay lazy: a command
    that never computes does not pay for loading torch)."""
    if only is not None and (only in CORE_MODULES or any(ep.name == only for ep in _entry_points())):
        commands = {c.name: c for c in core_commands(only) + plugin_commands(only)}
        if commands:
            return commands
    commands = {c.name: c for c in core_commands() + plugin_commands()}
    return dict(sorted(commands.items()))


def build_parser(commands: Dict[str, Command]) -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="imagenets",
        description="ImageNet-S toolbox: prepare the dataset, evaluate predictions exactly as "
                    "the benchmark does, and take part in its protocols.")
    parser.add_argument("--version", action="version", version=f"imagenets {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in commands.items():
        p = sub.add_parser(name, help=command.help, description=command.description or command.help,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        command.add_arguments(p)
        p.set_defaults(_command=command)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``imagenets``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(all_commands(wanted))
    args = parser.parse_args(argv)
    if not getattr(args, "_command", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    return guarded(args._command.run, args)


def run_command(argv: Sequence[str]) -> int:
    """Run ``imagenets ARGV...`` in-process (used by the demo); returns the exit status."""
    return main(list(argv))


if __name__ == "__main__":
    sys.exit(main())
