"""torch.distributed for the commands and the metrics: one place that shards, sums and gathers over ranks.

Under ``torchrun --nproc-per-node N imagenets evaluate|distance-matching ...`` (recognised by the variables
torchrun sets), :func:`start_command` joins the process group; the commands then count their
:func:`shard` of the images, and sum or gather the rest through torch.distributed. Outside torchrun
nothing here imports torch.distributed and every helper is the one-process identity.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import sys
from typing import Any, Iterator, List, Optional, Sequence, TypeVar

import numpy as np

from imagenets.errors import EXIT_BAD_INPUT, UserError

T = TypeVar("T")

#: What torchrun sets in every process it starts.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
#: Collectives wait this long: ranks other than 0 wait at a barrier while rank 0 builds the embedding bank.
TIMEOUT = datetime.timedelta(hours=12)

_sharding = False  # set by start_command: this process runs one rank of a command


def launched() -> bool:
    """This process is one of several started by torchrun (its environment says so)."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES) and int(os.environ["WORLD_SIZE"]) > 1


def _dist(group: Any = None) -> Any:
    """``torch.distributed`` when it is initialised with more than one rank, else None (torch not loaded)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return None
    return torch.distributed if torch.distributed.get_world_size(group) > 1 else None


def active(group: Any = None) -> bool:
    """torch.distributed is initialised with several ranks (e.g. in a DDP training loop)."""
    return _dist(group) is not None


def sharding() -> bool:
    """A command of this process runs as one rank of several (see :func:`start_command`)."""
    return _sharding


def rank() -> int:
    dist = _dist()
    return dist.get_rank() if dist is not None else 0


def world_size() -> int:
    dist = _dist()
    return dist.get_world_size() if dist is not None else 1


def is_main() -> bool:
    """Rank 0, or the only process: the one that prints and writes the shared outputs."""
    return rank() == 0


#: What ranks other than 0 leave out of stderr: rank 0 says the same (the same checks on the same inputs,
#: the same sums), and an error of a rank's own share reaches rank 0 through :func:`share_failure`.
_RANK_ZERO_SAYS = ("warning: ", "note: ", "error: ")


class _RankZeroSays:
    """stderr of ranks other than 0: lines rank 0 prints too are dropped (tracebacks still show)."""

    def __init__(self, stream):
        self.stream = stream
        self.line = ""  # print() writes a message and its newline apart: lines are judged whole

    def write(self, text: str) -> int:
        self.line += text
        *lines, self.line = self.line.split("\n")
        for line in lines:
            if not line.startswith(_RANK_ZERO_SAYS):
                self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        if self.line and not self.line.startswith(_RANK_ZERO_SAYS):
            self.stream.write(self.line)
        self.line = ""
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def start_command(args: Any) -> None:
    """Under torchrun: join the process group (gloo: what the commands sum is on the CPU) and make the
    ranks other than 0 quiet (no bars, tables, warnings or errors: rank 0 prints them). A command's ``start``:
    it runs before the command layer's guard, whose refusals rank 0 alone then prints."""
    global _sharding
    if not launched():
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=TIMEOUT)
        atexit.register(_stop)
    _sharding = True
    if dist.get_rank() != 0:
        args.quiet = True
        sys.stdout = open(os.devnull, "w")
        sys.stderr = _RankZeroSays(sys.stderr)


def _stop() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def rank_device(device: Any) -> Any:
    """``device`` for this rank: with CUDA, the GPU torchrun gave it (``LOCAL_RANK``)."""
    if _sharding and device.type == "cuda":
        import torch

        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    return device


def shard(items: Sequence[T], unit: int = 1) -> Sequence[T]:
    """This rank's contiguous share of ``items`` (all of them outside a sharded command), cut at whole
    ``unit``s: the shares in rank order are the items in order, and batches of ``unit`` stay as one
    process makes them."""
    if not _sharding:
        return items
    blocks = -(-len(items) // unit)
    first, last = blocks * rank() // world_size(), blocks * (rank() + 1) // world_size()
    return items[first * unit:last * unit]


def barrier() -> None:
    """Wait for every rank (a no-op outside a sharded command)."""
    if _sharding:
        _dist().barrier()


@contextlib.contextmanager
def share_failure() -> Iterator[None]:
    """Around work a rank does alone (no collective inside), then waits for every rank: a UserError on any
    rank stops all of them with exit status 2, rank 0 printing the first one (the others would otherwise
    wait in their next collective for a rank that has gone)."""
    message: Optional[str] = None
    try:
        yield
    except UserError as exc:
        if not _sharding:
            raise
        message = str(exc)
    if not _sharding:
        return
    failed = [m for m in gather_over_ranks(message) if m is not None]
    if failed and is_main():
        raise UserError(failed[0])
    if failed:
        raise SystemExit(EXIT_BAD_INPUT)


def _collective_device(dist: Any, group: Any) -> str:
    """Where a collective's tensor must be: the CPU for gloo (and mpi), this rank's GPU for nccl alone."""
    backend = str(dist.get_backend(group))
    if "gloo" in backend or "mpi" in backend:
        return "cpu"
    import torch

    return f"cuda:{torch.cuda.current_device()}"


def sum_over_ranks(values: np.ndarray, group: Any = None) -> np.ndarray:
    """int64 ``values`` summed over the ranks (all_reduce); as they are with one process."""
    dist = _dist(group)
    values = np.asarray(values, dtype=np.int64)
    if dist is None:
        return values.copy()
    import torch

    tensor = torch.from_numpy(values.copy()).to(_collective_device(dist, group))
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=group)
    return tensor.cpu().numpy()


def gather_over_ranks(value: T, group: Any = None) -> List[T]:
    """Every rank's ``value`` (picklable), in rank order; ``[value]`` with one process."""
    dist = _dist(group)
    if dist is None:
        return [value]
    out: List[Optional[T]] = [None] * dist.get_world_size(group)
    dist.all_gather_object(out, value, group=group)
    return out  # type: ignore[return-value]
