"""Choosing the torch device: CPU by default, CUDA when asked or available."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .errors import UserError, info

if TYPE_CHECKING:  # torch is imported lazily: commands that never compute should start fast
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> "torch.device":
    """``auto`` -> cuda when available else cpu; ``cuda`` without a GPU is a UserError."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: no CUDA GPU is available to torch here; "
                            "use --device cpu (or auto)")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise UserError(f"unknown --device {name!r}: use one of {', '.join(DEVICE_CHOICES)}")


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. under a batch scheduler), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def cap_workers(workers: int, quiet: bool = False, per_cpu: int = 1) -> int:
    """``--workers`` limited to ``per_cpu`` per usable CPU, with a note when lowered: more only queue
    for the CPUs (processes also cost memory each). Negative counts are a UserError."""
    if workers < 0:
        raise UserError(f"--workers {workers}: use 0 (no worker processes) or more")
    limit = per_cpu * usable_cpus()
    if workers > limit:
        info(f"note: --workers {workers} is more than the {limit} this machine can run at once "
             f"({usable_cpus()} CPUs): using {limit}", quiet)
        return limit
    return workers
