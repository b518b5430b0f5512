"""Errors and warnings as users see them: one clear line, exit status 2 for bad input."""

from __future__ import annotations

import sys

EXIT_BAD_INPUT = 2


class UserError(Exception):
    """Bad input or environment: printed as one line (``error: ...``), exit status 2, no traceback.

    The message must name the file (or option) at fault and the fix.
    """


def warn(message: str) -> None:
    """Print one ``warning: ...`` line on stderr (never silenced by --quiet: it changes numbers)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def info(message: str, quiet: bool = False) -> None:
    """Print a progress/info line on stderr unless quiet."""
    if not quiet:
        print(message, file=sys.stderr, flush=True)


#: How many examples a message names before "...".
SHOW = 5


def first_few(items, show: int = SHOW, fmt=str) -> str:
    """``"a, b, c, ..."``: the first ``show`` items of a list for a message (``...`` when there are more)."""
    items = list(items)
    head = ", ".join(fmt(item) for item in items[:show])
    return head + (", ..." if len(items) > show else "")
