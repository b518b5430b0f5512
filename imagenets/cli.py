"""The umbrella ``imagenets`` command and the small framework every sub-command uses.

A sub-command is a :class:`Command` (name, help, ``add_arguments``, ``run``) in its own module;
:data:`COMMANDS` names each module, imported only when its command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, NoReturn, Optional, Sequence, Tuple

from . import __version__
from .device import DEVICE_CHOICES
from .errors import EXIT_BAD_INPUT, UserError, dependency_problem
from .fileio import check_distinct, check_outputs, exit_on_sigterm
from .flags import Declared, declared_paths, input_dir, workers
from .names import shown
from .subsets import MODES

class ArgumentParser(argparse.ArgumentParser):
    """argparse with the toolbox's bad-input contract: one ``error:`` line, exit status 2."""

    def error(self, message: str) -> "NoReturn":  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


@dataclass
class Command:
    """One sub-command: usable as ``imagenets NAME`` and as a standalone script.

    Its path options declare their role (``imagenets.flags.input_file``...); before ``run`` the command
    layer checks them all in one guard (:meth:`execute`), with ``declare`` adding outputs derived from the
    arguments (or dropping ones a run will not write). ``start`` runs before the guard: what must hold for
    the whole run, its checks included (under torchrun: joining the ranks, the others falling quiet).
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], Optional[int]]
    description: str = ""
    declare: Optional[Callable[[argparse.Namespace, Declared], None]] = None
    start: Optional[Callable[[argparse.Namespace], None]] = None

    def build_parser(self, prog: Optional[str] = None) -> argparse.ArgumentParser:
        parser = ArgumentParser(prog=prog, description=self.description or self.help,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        self.add_arguments(parser)
        return parser

    def main(self, argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
        """Parse ``argv`` and run; bad input exits 2 with one line, no traceback."""
        parser = self.build_parser(prog or os.path.basename(sys.argv[0]) or self.name)
        args = parser.parse_args(argv)
        return self.execute(parser, args)

    def execute(self, parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
        """The guard, then ``run``: the one way every entry point (umbrella, scripts) runs a command."""
        return guarded(self._checked_run, parser, args)

    def _checked_run(self, parser: argparse.ArgumentParser, args: argparse.Namespace) -> Optional[int]:
        if self.start is not None:
            self.start(args)
        declared = declared_paths(parser, args)
        if self.declare is not None:
            self.declare(args, declared)
        for label, paths in declared.distinct:
            check_distinct(label, paths)
        check_outputs(declared.outputs, declared.inputs, declared.input_dirs, declared.output_dirs,
                      managed=declared.managed, quiet=bool(getattr(args, "quiet", False)))
        with exit_on_sigterm():  # a killed run's temporaries go as on an error
            return self.run(args)


def guarded(func: Callable[..., Optional[int]], *args) -> int:
    """Run ``func``; turn UserError (and, as the last safety net, any OSError: no space, permission...)
    into ``error: ...`` + exit 2 and Ctrl-C into exit 130."""
    try:
        return int(func(*args) or 0)
    except UserError as exc:
        return _refused(str(exc))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename is not None else ""
        return _refused(f"{where}{exc.strerror or exc}")


def _refused(message: str) -> int:
    with contextlib.suppress(OSError):
        sys.stdout.flush()
    print(f"error: {shown(message)}", file=sys.stderr, flush=True)
    return EXIT_BAD_INPUT


# ---- argument helpers shared by the commands -------------------------------------------

def add_mode_argument(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--mode", required=required, choices=MODES, metavar="{50,300,919}",
                        help="ImageNet-S subset: 50, 300 or 919 classes")


def implied_meta_dir(_args: argparse.Namespace) -> Optional[Tuple[str, Path]]:
    """Where the lists are read from without ``--meta-dir`` ($IMAGENETS_META_DIR or the cache): an input
    folder like any other, so that no output lands in it. A bad $IMAGENETS_META_DIR is left to the
    command's own message."""
    from .metadata import SOURCE_CACHE, resolve_source

    try:
        root, source = resolve_source(None)
    except UserError:
        return None
    return ("the metadata cache" if source == SOURCE_CACHE else source), root


def add_meta_argument(parser: argparse.ArgumentParser) -> None:
    input_dir(parser, "--meta-dir", default=None, metavar="DIR", implied=implied_meta_dir,
                        help="directory with the official lists (categories/, names/, mapping/, "
                             "e.g. a copy of the official data/ folder); default: $IMAGENETS_META_DIR, "
                             "else the cache filled by `imagenets meta download`")


def add_workers_argument(parser: argparse.ArgumentParser, default: int = 2) -> None:
    parser.add_argument("--workers", type=workers(), default=default, metavar="N",
                        help="parallel workers (0 = do everything in the main process)")


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES,
                        help="where to compute: auto = cuda when available, else cpu")


def add_quiet_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="no progress bars or tables; warnings and errors still go to stderr")


# ---- the umbrella command --------------------------------------------------------------

@dataclass(frozen=True)
class CommandSpec:
    """Where a sub-command lives: imported only when that command runs (``--help`` imports none)."""

    module: str
    help: str

    def load(self) -> Command:
        return importlib.import_module(self.module).COMMAND


#: Every sub-command of ``imagenets``. The commands ship in this one package, so the table is static;
#: a module is imported only when its command is asked for, so listing them never loads torch.
COMMANDS: Dict[str, CommandSpec] = {
    "aggregate": CommandSpec("imagenets.evaluation.aggregate",
                             "mean and standard deviation of several runs' JSON reports (seeds)"),
    "apply-match": CommandSpec("imagenets.evaluation.protocols.apply_match",
                               "rewrite predictions through a match (fully unsupervised protocol)"),
    "compare": CommandSpec("imagenets.evaluation.compare",
                           "paired difference of two runs' saved counts, with intervals and p-values"),
    "convert": CommandSpec("imagenets.convert",
                           "convert masks between RGB (R + 256*G) and 16-bit grayscale PNGs, lossless"),
    "demo": CommandSpec("imagenets.demo.command", "run the whole toolbox on synthetic data, offline, in under a minute"),
    "distance-matching": CommandSpec("imagenets.evaluation.distance_matching.command",
                                     "label images by k-NN on train-semi embeddings (distance matching protocol)"),
    "evaluate": CommandSpec("imagenets.evaluation.evaluator",
                            "evaluate predictions: mIoU, boundary mIoU, size buckets, Acc, FMeasure"),
    "match": CommandSpec("imagenets.evaluation.match", "match cluster ids to classes (image-level Hungarian matching)"),
    "meta": CommandSpec("imagenets.meta_cli", "download or locate the official ImageNet-S lists"),
    "prepare": CommandSpec("imagenets.datapreparation.prepare",
                           "build ImageNet-S 50/300/919 (train, validation, test, train-semi, masks) from ImageNet-1k"),
    "score": CommandSpec("imagenets.evaluation.protocols.score", "score a submission.zip locally, as the benchmark server does"),
    "submission": CommandSpec("imagenets.evaluation.protocols.submission",
                              "check predictions against a benchmark protocol and write submission.zip"),
    "threshold-curve": CommandSpec("imagenets.evaluation.threshold_curve",
                                   "mIoU, Acc and FMeasure over 'other' confidence thresholds, in one pass"),
    "verify": CommandSpec("imagenets.datapreparation.verify", "check a prepared ImageNet-S tree against the official lists"),
    "visualize": CommandSpec("imagenets.evaluation.visualize",
                             "pictures of predictions: image | ground truth | prediction, and a gallery"),
}


def all_commands() -> Dict[str, CommandSpec]:
    """The commands whose module ships in this copy, by name, without importing any of them."""
    return {name: spec for name, spec in COMMANDS.items() if importlib.util.find_spec(spec.module) is not None}


def load_command(name: str) -> Command:
    """Import the module of ``name`` and return its command; a missing dependency is one clear line."""
    try:
        return COMMANDS[name].load()
    except ImportError as exc:
        line = dependency_problem(f"`imagenets {name}`", exc)
        if line is None:
            raise
        raise UserError(line) from None


def build_parser(commands: Dict[str, CommandSpec], wanted: Optional[Command] = None) -> argparse.ArgumentParser:
    """The umbrella parser: every command is listed; only ``wanted`` (already imported) gets its options."""
    parser = ArgumentParser(
        prog="imagenets",
        description="ImageNet-S toolbox: prepare the dataset, evaluate predictions exactly as "
                    "the benchmark does, and take part in its protocols.")
    parser.add_argument("--version", action="version", version=f"imagenets {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, spec in commands.items():
        command = wanted if wanted is not None and wanted.name == name else None
        description = (command.description or command.help) if command else spec.help
        p = sub.add_parser(name, help=spec.help, description=description,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        if command is not None:
            command.add_arguments(p)
            p.set_defaults(_command=command, _parser=p)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``imagenets``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    name = next((a for a in argv if not a.startswith("-")), None)
    commands = all_commands()
    wanted = None
    if name in commands:
        try:
            wanted = load_command(name)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    parser = build_parser(commands, wanted)
    args = parser.parse_args(argv)
    if not getattr(args, "_command", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    return args._command.execute(args._parser, args)


def run_command(argv: Sequence[str]) -> int:
    """Run ``imagenets ARGV...`` in-process (used by the demo); returns the exit status."""
    return main(list(argv))


if __name__ == "__main__":
    sys.exit(main())
