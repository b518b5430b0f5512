"""imagenets: the core of the ImageNet-S toolbox (subset table, metadata, mask codec, shared I/O, CLI).

Above the core, in the same import name: ``imagenets.evaluation`` (matching, metrics, protocols,
distance matching), ``imagenets.datapreparation`` (building the dataset) and ``imagenets.demo``.
The Python API (``imagenets.evaluate``, ``imagenets.match``...) is loaded on first use, so that
``import imagenets`` stays light (no torch).
"""

import os as _os
from typing import Any as _Any, List as _List

__version__ = "0.1.0"


def _mount_checkout_folders() -> None:
    """In a source checkout, ``evaluation/`` and ``datapreparation/`` sit beside ``imagenets/``:
    make them ``imagenets.evaluation`` and ``imagenets.datapreparation`` (installed, setuptools'
    package-dir already places them inside), so an uninstalled clone has every command too."""
    here = _os.path.dirname(_os.path.abspath(__file__))
    root = _os.path.dirname(here)
    if _os.path.isdir(_os.path.join(here, "evaluation")):
        return  # an installed copy
    try:
        with open(_os.path.join(root, "pyproject.toml"), encoding="utf-8") as f:
            ours = 'name = "imagenets"' in f.read()
    except OSError:
        return
    if ours and _os.path.isfile(_os.path.join(root, "evaluation", "__init__.py")):
        __path__.append(root)  # type: ignore[name-defined]  # noqa: F821


_mount_checkout_folders()


#: Served from ``imagenets.evaluation.api`` on first use: the core never imports upward at import time.
_API = ("evaluate", "match", "EvaluationResult", "MatchResult", "SegmentationMetrics")


def __getattr__(name: str) -> _Any:
    if name in _API:
        from importlib import import_module

        value = getattr(import_module("imagenets.evaluation.api"), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'imagenets' has no attribute {name!r}")


def __dir__() -> _List[str]:
    return sorted(set(globals()) | set(_API))
