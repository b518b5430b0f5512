"""Plans of links and copies into a destination tree, checked against what is there, then carried out.

A plan is built without writing anything: entries already complete are counted, conflicting ones
(a file where a link should be, a link to elsewhere) are listed, and temporary leftovers of an
interrupted run are noted (for removal before writing). Copies go through a temporary name, then
a rename.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sys
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

from imagenets.errors import UserError
from imagenets.progress import progress

#: Suffix of the temporary files copies are written to (``.<name>.<pid>-<thread>.imagenets-tmp``).
TMP_SUFFIX = ".imagenets-tmp"
#: Linux copies file to file with sendfile(2); elsewhere shutil picks the platform's way.
_SENDFILE = sys.platform.startswith("linux") and hasattr(os, "sendfile")
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
SENDFILE_BYTES = 1 << 24
#: Files per task handed to a worker: large enough to keep the pool's overhead small.
CHUNK = 64
EXAMPLES = 5


def is_leftover(name: str) -> bool:
    """Whether ``name`` is a temporary file left by an interrupted copy or extraction."""
    return name.startswith(".") and name.endswith(TMP_SUFFIX)


def temp_name(path: str) -> str:
    """A temporary name beside ``path``, unique to this process and thread."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.{os.getpid()}-{threading.get_ident()}{TMP_SUFFIX}")


class DestIndex:
    """What the destination folders hold: name -> ``link``, ``dir``, ``file`` or ``other`` (no links followed)."""

    def __init__(self) -> None:
        self._cache: Dict[str, Dict[str, str]] = {}
        self.leftovers: List[str] = []

    def entries(self, folder: str) -> Dict[str, str]:
        found = self._cache.get(folder)
        if found is None:
            found = {}
            try:
                with os.scandir(folder) as it:
                    for entry in it:
                        if is_leftover(entry.name):
                            self.leftovers.append(entry.path)
                        elif entry.is_symlink():
                            found[entry.name] = "link"
                        elif entry.is_dir(follow_symlinks=False):
                            found[entry.name] = "dir"
                        elif entry.is_file(follow_symlinks=False):
                            found[entry.name] = "file"
                        else:
                            found[entry.name] = "other"
            except (FileNotFoundError, NotADirectoryError):
                pass
            self._cache[folder] = found
        return found

    def kind(self, path: str) -> Optional[str]:
        folder, name = os.path.split(path)
        return self.entries(folder).get(name)


@dataclass
class Plan:
    """What one step of one subset will do."""

    label: str
    step: str = ""                                                # train, validation, ..., annotations
    dirs: List[str] = field(default_factory=list)
    links: List[Tuple[str, str]] = field(default_factory=list)    # (target, link path)
    copies: List[Tuple[str, str]] = field(default_factory=list)   # (source, destination)
    present: int = 0
    kept: List[Tuple[str, str]] = field(default_factory=list)     # (source, destination) of present copies
    repairs: int = 0                                              # copies planned over a damaged file
    conflicts: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)              # source paths not found
    missing_what: str = "source files"
    notes: List[str] = field(default_factory=list)

    @property
    def todo(self) -> int:
        return len(self.links) + len(self.copies)

    def repair(self, damaged: Set[str]) -> int:
        """Plan a copy over every present file whose destination is in ``damaged``; returns how many."""
        again = [pair for pair in self.kept if pair[1] in damaged]
        if again:
            self.kept = [pair for pair in self.kept if pair[1] not in damaged]
            self.copies += again
            self.present -= len(again)
            self.repairs += len(again)
        return len(again)


def _same_target(link: str, target: str) -> bool:
    current = os.readlink(link)
    if current == target:
        return True
    # Equivalent spellings (relative link, another mount path) of the same folder are fine.
    return os.path.realpath(link) == os.path.realpath(target)


def add_link(plan: Plan, dest: DestIndex, target: str, path: str) -> None:
    """Plan a symlink ``path`` -> ``target``, unless it is already there (or something else is)."""
    kind = dest.kind(path)
    if kind is None:
        plan.links.append((target, path))
    elif kind == "link" and _same_target(path, target):
        plan.present += 1
    elif kind == "link":
        plan.conflicts.append(f"{path} is a link to {os.readlink(path)}, not to {target}")
    else:
        plan.conflicts.append(f"{path} is a {_kind_text(kind)} where a link to {target} should be")


def add_copy(plan: Plan, dest: DestIndex, source: str, path: str) -> None:
    """Plan copying ``source`` to ``path``; a final-named regular file there counts as complete (kept, for
    :meth:`Plan.repair` when it turns out damaged)."""
    kind = dest.kind(path)
    if kind is None:
        plan.copies.append((source, path))
    elif kind == "file":
        plan.present += 1
        plan.kept.append((source, path))
    else:
        plan.conflicts.append(f"{path} is a {_kind_text(kind)} where a copy of {source} should be")


def add_dir(plan: Plan, dest: DestIndex, path: str, why: str = "") -> bool:
    """Plan a real folder at ``path``; False (and a conflict) if something else is there."""
    kind = dest.kind(path)
    if kind is None:
        plan.dirs.append(path)
        return True
    if kind == "dir":
        return True
    plan.conflicts.append(f"{path} is a {_kind_text(kind)} where a real folder should be{why}")
    return False


def add_files(plan: Plan, dest: DestIndex, pairs: Sequence[Tuple[str, str]], link: bool) -> None:
    """Plan (source, destination) pairs as links or copies, creating their folders."""
    folders: Dict[str, bool] = {}
    for source, path in pairs:
        folder = os.path.dirname(path)
        usable = folders.get(folder)
        if usable is None:
            usable = folders[folder] = add_dir(plan, dest, folder)
        if usable:
            (add_link if link else add_copy)(plan, dest, source, path)


def _kind_text(kind: str) -> str:
    return {"dir": "folder", "file": "regular file", "link": "link"}.get(kind, "special file")


def ensure_parent_dirs(path: str) -> None:
    """Create the folders above a plan's folders; a file in the way is a UserError."""
    try:
        os.makedirs(path, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"cannot create folder {path}: a file is in the way; move it and rerun") from None


def _copy_bytes(source: str, tmp: str) -> None:
    """Copy ``source`` into a new file ``tmp`` with as few system calls as possible (the hot path)."""
    if not _SENDFILE:
        shutil.copyfile(source, tmp)
        return
    src = os.open(source, os.O_RDONLY | _CLOEXEC)
    try:
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o666)
        try:
            while os.sendfile(out, src, None, SENDFILE_BYTES):
                pass
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            shutil.copyfile(source, tmp)  # a file system without sendfile: the portable way
        finally:
            os.close(out)
    finally:
        os.close(src)


def fill_atomic(path: str, fill: Callable[[str], None]) -> None:
    """``fill`` a temporary name beside ``path`` (one a rerun recognises as a leftover), then rename:
    never a truncated ``path``."""
    tmp = temp_name(path)
    try:
        fill(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def copy_atomic(source: str, path: str) -> None:
    """Copy ``source`` to ``path`` through a temporary name."""
    fill_atomic(path, lambda tmp: _copy_bytes(source, tmp))


def _copy_chunk(chunk: Sequence[Tuple[str, str]], stop: threading.Event) -> int:
    done = 0
    for source, path in chunk:
        if stop.is_set():
            break
        try:
            copy_atomic(source, path)
        except OSError as exc:
            raise UserError(f"cannot copy {source} to {path}: {exc.strerror or exc}; fix that and "
                            "rerun the same command (completed files are kept)") from None
        done += 1
    return done


def run_copies(copies: Sequence[Tuple[str, str]], workers: int, desc: str, quiet: bool) -> int:
    """Copy every pair on a pool of ``workers`` threads (0 or 1: in this thread); return the count."""
    if not copies:
        return 0
    chunks = [copies[i:i + CHUNK] for i in range(0, len(copies), CHUNK)]
    stop = threading.Event()
    done = 0
    with progress(total=len(copies), desc=desc, quiet=quiet, unit="file") as bar:
        if workers <= 1:
            for chunk in chunks:
                done += _copy_chunk(chunk, stop)
                bar.update(len(chunk))
            return done
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="imagenets-copy")
        try:
            pending = {pool.submit(_copy_chunk, chunk, stop) for chunk in chunks}
            while pending:
                finished, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
                for future in finished:
                    count = future.result()  # re-raises a worker's error
                    done += count
                    bar.update(count)
        except BaseException:
            # Ctrl-C or an error: finish the files being copied (each is atomic), start no others.
            stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return done


def execute(plan: Plan, workers: int, quiet: bool) -> int:
    """Create the folders and links, copy the files; return how many entries were created."""
    for path in plan.dirs + sorted({os.path.dirname(link) for _, link in plan.links}):
        ensure_parent_dirs(path)
    made = 0
    for target, path in plan.links:
        try:
            os.symlink(target, path)
        except FileExistsError:
            raise UserError(f"{path} appeared while this run was linking it (another run at the same "
                            "time?); rerun when it has finished") from None
        made += 1
    return made + run_copies(plan.copies, workers, plan.label, quiet)
