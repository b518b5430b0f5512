"""Progress bars (tqdm on stderr), silenced by ``--quiet``."""

from __future__ import annotations

import sys
from typing import Iterable, Optional

from tqdm import tqdm


def progress(iterable: Optional[Iterable] = None, total: Optional[int] = None, desc: str = "",
             quiet: bool = False, unit: str = "it") -> tqdm:
    """A tqdm bar on stderr; disabled when ``quiet``."""
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=quiet, file=sys.stderr,
                dynamic_ncols=True, leave=False)
