"""Parallel map-reduce over image pairs: a torch DataLoader pool works on chunks of pairs,
the main process only adds up the partial results."""

from __future__ import annotations

import contextlib
import ctypes
import math
import signal
import sys
from typing import Callable, List, Optional, Sequence, TypeVar

from imagenets.device import cap_workers, resolve_device
from imagenets.errors import UserError, info
from imagenets.fileio import raise_terminated
from imagenets.progress import progress

T = TypeVar("T")
R = TypeVar("R")


class _Chunks:
    """A map-style dataset for the DataLoader: item i = ``work(chunk i)``; a UserError travels back as data so it stays one clean line."""

    def __init__(self, chunks: List[Sequence], work: Callable[[Sequence], R]):
        self.chunks = chunks
        self.work = work

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, index: int):
        try:
            return True, self.work(self.chunks[index]), len(self.chunks[index])
        except UserError as exc:
            return False, str(exc), len(self.chunks[index])
        except OSError as exc:  # disk full, permission: the file and the reason, without a worker traceback
            where = f"{exc.filename}: " if exc.filename is not None else ""
            return False, f"{where}{exc.strerror or exc}", len(self.chunks[index])


def _keep(item):
    return item  # no collation: partial results stay numpy


# glibc mallopt parameters.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory() -> None:
    """Let glibc reuse freed heap memory instead of returning it to the system at once.

    Each image allocates and frees a few arrays of 0.1-10 MB; with glibc's defaults they come
    from fresh mmaps (or a heap trimmed after every image), so every page faults again: about
    a sixth of the evaluation time. Larger images still work: only the caching changes.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): keep its defaults
        return
    mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    mallopt(_M_TRIM_THRESHOLD, 64 << 20)


def _worker_setup(_worker_id: int) -> None:
    # Ctrl-C reaches the whole process group: only the main process handles it (it shuts the pool
    # down), so no worker dies mid-item and no torch "Exception ignored" traceback is printed.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # SIGTERM (a kill of the whole group) ends the item in hand as an error would: its temporaries go.
    signal.signal(signal.SIGTERM, raise_terminated)
    import torch

    torch.set_num_threads(1)
    keep_freed_memory()


def chunk(items: Sequence[T], workers: int, size: Optional[int] = None) -> List[Sequence[T]]:
    """Chunks small enough to balance the workers and move the progress bar, big enough that
    shipping one partial result per chunk costs nothing."""
    if size is None:
        size = max(1, min(64, math.ceil(len(items) / max(1, 8 * max(workers, 1)))))
    return [items[i:i + size] for i in range(0, len(items), size)]


def map_reduce(items: Sequence[T], work: Callable[[Sequence[T]], R], reduce: Callable[[R], None],
               workers: int = 2, quiet: bool = False, desc: str = "", unit: str = "img",
               chunk_size: Optional[int] = None) -> None:
    """Apply ``work`` to chunks of ``items`` (in ``workers`` processes) and feed each result to ``reduce``."""
    workers = cap_workers(workers, quiet)
    chunks = chunk(items, workers, chunk_size)
    dataset = _Chunks(chunks, work)
    if workers == 0:
        results = iter(dataset[i] for i in range(len(dataset)))
    else:
        from torch.utils.data import DataLoader  # loaded when workers are used: --help and checks stay quick

        results = iter(DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers,
                                  collate_fn=_keep, worker_init_fn=_worker_setup, prefetch_factor=4))
    try:
        with progress(total=len(items), desc=desc, quiet=quiet, unit=unit) as bar:
            for ok, value, n in results:
                if not ok:
                    raise UserError(value)
                reduce(value)
                bar.update(n)
    except RuntimeError as exc:
        if "DataLoader worker" not in str(exc):
            raise
        # torch's words for a worker killed from outside (the OOM killer, a kill of the process group)
        raise UserError(f"a worker process stopped ({exc}); rerun (with fewer --workers if memory ran out): "
                        "what was written is complete") from None
    finally:
        # Stop the workers now (an error or Ctrl-C), not in a garbage-collector callback at exit.
        shutdown = getattr(results, "_shutdown_workers", None)
        if shutdown is not None:
            with contextlib.suppress(RuntimeError):  # a worker already gone (killed with us): nothing to stop
                shutdown()


def counting_device(device: str, quiet: bool = False) -> None:
    """Validate ``--device`` for the counting commands, which always count on the CPU.

    Counting costs less than decoding the PNGs (the floor), so a GPU cannot speed it up; say so
    rather than ignore the flag silently.
    """
    if device == "cpu" or (device == "auto" and "torch" not in sys.modules):
        return  # nothing to validate, and no reason to load torch (and CUDA) just to count on the CPU
    if resolve_device(device).type != "cpu":
        info(f"note: --device {device}: counting runs on the CPU workers (PNG decoding bounds it); "
             "the GPU is used by distance-matching", quiet)
