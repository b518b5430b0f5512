"""Progress bars (tqdm on stderr), silenced by ``--quiet``."""

from __future__ import annotations

import sys
from typing import Iterable, Optional

from tqdm import tqdm


def progress(iterable: Optional[Iterable] = None, total: Optional[int] = None, desc: str = "",
             quiet: bool = False, unit: str = "it") -> tqdm:
    """A tqdm bar on stderr; disabled when ``quiet``. On a terminal it vanishes when closed; in a log file
    its last state stays and ends its line, so that the next message (an ``error:``) has a line of its own."""
    try:
        terminal = sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        terminal = False
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=quiet, file=sys.stderr,
                dynamic_ncols=True, leave=not terminal)
