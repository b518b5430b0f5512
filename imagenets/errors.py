"""Errors and warnings as users see them: one clear line, exit status 2 for bad input."""

from __future__ import annotations

import contextlib
import sys
from types import TracebackType
from typing import Iterator, Optional

from .names import shown

EXIT_BAD_INPUT = 2


class UserError(Exception):
    """Bad input or environment: printed as one line (``error: ...``), exit status 2, no traceback.

    The message must name the file (or option) at fault and the fix.
    """


def warn(message: str) -> None:
    """Print one ``warning: ...`` line on stderr (never silenced by --quiet: it changes numbers); a name
    in it cannot break the line (:func:`imagenets.names.shown`)."""
    print(f"warning: {shown(message)}", file=sys.stderr, flush=True)


def info(message: str, quiet: bool = False) -> None:
    """Print a progress/info line on stderr unless quiet."""
    if not quiet:
        print(message, file=sys.stderr, flush=True)


#: How many examples a message names before "...".
SHOW = 5


def first_few(items, show: int = SHOW, fmt=shown, sep: str = ", ", counted: bool = False) -> str:
    """``"a, b, c, ..."``: the first ``show`` items of a list for a message (names escaped); ``...`` (with
    ``counted``, ``... (N more)``) when there are more. Every "first few" in a message goes through here."""
    items = list(items)
    head = sep.join(fmt(item) for item in items[:show])
    if len(items) <= show:
        return head
    return head + sep + (f"... ({len(items) - show} more)" if counted else "...")


def is_ours(exc: ModuleNotFoundError) -> bool:
    """True when the missing module is part of this toolbox (a bug or a broken clone, not a dependency)."""
    return bool(exc.name) and exc.name.split(".")[0] == "imagenets"


def missing_dependency(what: str, exc: ModuleNotFoundError) -> str:
    """The line that names a missing dependency and how to install it into this Python."""
    return (f"{what} needs the Python package {exc.name!r}, which is not installed in {sys.executable}: run "
            "`pip install -e .` in the imagenets clone (or `pip install imagenets`) with this Python")


def failing_module(tb: Optional[TracebackType]) -> Optional[str]:
    """The module whose top-level code raised: the innermost ``<module>`` frame of an import's traceback."""
    found = None
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "<module>":
            name = frame.f_globals.get("__name__")
            if isinstance(name, str) and not name.startswith("importlib"):
                found = name
        tb = tb.tb_next
    return found


def broken_dependency(what: str, exc: ImportError) -> Optional[str]:
    """The line that names a dependency installed but failing to import (a broken or mismatched build);
    None when the import that failed is this toolbox's own (a bug: let it show)."""
    culprit = failing_module(exc.__traceback__) or exc.name
    if not culprit or culprit.split(".")[0] in ("imagenets", "__main__"):
        return None
    package = culprit.split(".")[0]
    reason = (str(exc).strip().splitlines() or [""])[0]
    return (f"{what} needs the Python package {package!r}, which is installed in {sys.executable} but fails to "
            f"import ({type(exc).__name__}: {reason}): reinstall it for this Python, e.g. `pip install "
            f"--force-reinstall {package}`")


def dependency_problem(what: str, exc: ImportError) -> Optional[str]:
    """The one line for an import of a dependency that failed (missing, or installed but broken); None
    when the failure is this toolbox's own."""
    if isinstance(exc, ModuleNotFoundError):
        return None if is_ours(exc) else missing_dependency(what, exc)
    return broken_dependency(what, exc)


@contextlib.contextmanager
def dependencies_of(what: Optional[str]) -> Iterator[None]:
    """Around a script's imports: a missing or broken dependency is one ``error:`` line and exit status 2
    (``what`` None: imported as a module, where ``imagenets.cli.load_command`` says it instead)."""
    try:
        yield
    except ImportError as exc:
        line = dependency_problem(what, exc) if what is not None else None
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
