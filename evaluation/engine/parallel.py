"""Parallel map-reduce over image pairs: a process pool works on chunks of pairs, the main process
only adds up the partial results.

The pool is the standard library's (``concurrent.futures``), not torch's DataLoader: counting needs no
torch, and importing it costs about a second of every run.
"""

from __future__ import annotations

import ctypes
import math
import os
import signal
import sys
import threading
import time
from collections import deque
from typing import Callable, Iterator, List, Optional, Sequence, Tuple, TypeVar

from imagenets.device import cap_workers, resolve_device
from imagenets.errors import UserError, info
from imagenets.fileio import raise_terminated
from imagenets.progress import progress

T = TypeVar("T")
R = TypeVar("R")

#: A chunk's outcome: (done, result or error line, items in the chunk). A UserError or OSError travels
#: back as data, so that it stays one clean line.
Outcome = Tuple[bool, object, int]


def _attempt(work: Callable[[Sequence], R], items: Sequence) -> Outcome:
    try:
        return True, work(items), len(items)
    except UserError as exc:
        return False, str(exc), len(items)
    except OSError as exc:  # disk full, permission: the file and the reason, without a worker traceback
        where = f"{exc.filename}: " if exc.filename is not None else ""
        return False, f"{where}{exc.strerror or exc}", len(items)


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


#: The job of this worker process (set once per process, so that chunks travel without it).
_WORK: Optional[Callable[[Sequence], object]] = None


def _worker_setup(work: Callable[[Sequence], object]) -> None:
    global _WORK
    _WORK = work
    # Ctrl-C reaches the whole process group: only the main process handles it (it shuts the pool
    # down), so no worker dies mid-item and prints a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # SIGTERM (a kill of the whole group) ends the item in hand as an error would: its temporaries go.
    signal.signal(signal.SIGTERM, raise_terminated)
    if "torch" in sys.modules:  # a job that uses torch: one thread per worker, the workers are the parallelism
        sys.modules["torch"].set_num_threads(1)
    keep_freed_memory()
    watch_parent()


#: How often a worker looks whether its main process is still there, and how long it then has to clean up
#: (seconds).
PARENT_POLL_S = 1.0
PARENT_GRACE_S = 1.0


def watch_parent() -> None:
    """End this worker (as SIGTERM does: its temporaries go) once its main process is gone. A main process
    killed outright (SIGKILL, the OOM killer) never shuts its pool down, and the workers would wait on
    its queue forever, as orphans."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os.kill(os.getpid(), signal.SIGTERM)
        # A worker blocked handing a result to the gone process catches the exit and blocks again
        # (concurrent.futures sends the error back): after a grace period, end it outright.
        time.sleep(PARENT_GRACE_S)
        os._exit(128 + signal.SIGTERM)

    threading.Thread(target=watch, name="imagenets-parent-watch", daemon=True).start()


def _work_on(items: Sequence) -> Outcome:
    return _attempt(_WORK, items)


def chunk(items: Sequence[T], workers: int, size: Optional[int] = None) -> List[Sequence[T]]:
    """Chunks small enough to balance the workers and move the progress bar, big enough that
    shipping one partial result per chunk costs nothing."""
    if size is None:
        size = max(1, min(64, math.ceil(len(items) / max(1, 8 * max(workers, 1)))))
    return [items[i:i + size] for i in range(0, len(items), size)]


class _Pool:
    """``workers`` processes running ``work`` on ``chunks``, started at once; iterating gives the outcomes
    in chunk order, with at most ``ahead`` chunks in flight (their results wait in memory for their turn)."""

    def __init__(self, work: Callable[[Sequence], object], workers: int, chunks: Sequence[Sequence], ahead: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # fork where it is the platform's way (Linux): the workers inherit the job, and start here, before
        # any thread (a progress bar's) exists; elsewhere the platform's default (spawn), the job pickled
        # once per worker.
        fork = sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()
        self._executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork") if fork else None,
                                             initializer=_worker_setup, initargs=(work,))
        self._todo = iter(chunks)
        self._pending: deque = deque()
        for _ in range(ahead):
            self._submit_next()

    def _submit_next(self) -> None:
        items = next(self._todo, None)
        if items is not None:
            self._pending.append(self._executor.submit(_work_on, items))

    def __iter__(self) -> Iterator[Outcome]:
        from concurrent.futures.process import BrokenProcessPool

        while self._pending:
            try:
                outcome = self._pending.popleft().result()
            except BrokenProcessPool:
                raise UserError("a worker process ended abruptly (killed, or out of memory?): rerun with "
                                "fewer --workers, or --workers 0") from None
            self._submit_next()
            yield outcome

    def close(self) -> None:
        """Stop now (an error or Ctrl-C): drop the chunks not started, wait for those in hand."""
        self._executor.shutdown(wait=True, cancel_futures=True)


def map_reduce(items: Sequence[T], work: Callable[[Sequence[T]], R], reduce: Callable[[R], None],
               workers: int = 2, quiet: bool = False, desc: str = "", unit: str = "img",
               chunk_size: Optional[int] = None) -> None:
    """Apply ``work`` to chunks of ``items`` (in ``workers`` processes) and feed each result to ``reduce``."""
    workers = cap_workers(workers, quiet)
    chunks = chunk(items, workers, chunk_size)
    pool = _Pool(work, workers, chunks, ahead=4 * workers) if workers and chunks else None
    try:
        with progress(total=len(items), desc=desc, quiet=quiet, unit=unit) as bar:
            for ok, value, n in pool if pool is not None else (_attempt(work, c) for c in chunks):
                if not ok:
                    raise UserError(value)
                reduce(value)
                bar.update(n)
    finally:
        if pool is not None:
            pool.close()


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
