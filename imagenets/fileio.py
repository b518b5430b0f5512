"""Shared file I/O: atomic writes (temporary name, then rename), the one guard of outputs against inputs,
the sweep of a killed run's temporaries, and the one reader of JSON files."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

try:
    import fcntl
except ImportError:  # Windows: stale temporaries are told by their age alone
    fcntl = None  # type: ignore[assignment]

from .errors import UserError, first_few, info

PathLike = Union[str, "os.PathLike[str]"]


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask is process-wide, so toggling it while copy threads create
# files would be a race.
_UMASK = _read_umask()


def _written_directly(path: Path) -> bool:
    """True for ``/dev/...`` (stdout, null, full...) and any existing FIFO, device or socket: written in
    place, never replaced by a rename (which would swap a device for a plain file)."""
    if str(path).startswith(("/dev/", "/proc/")) and os.path.exists(path):
        return True
    try:
        return not stat.S_ISREG(os.stat(path).st_mode) and not path.is_dir()
    except OSError:
        return False


#: Temporary files of atomic_path are ``.NAME.XXXXXXXX.tmp`` beside NAME (mkstemp's 8 random characters).
TEMP_SUFFIX = ".tmp"
_TEMPORARY = re.compile(r"\..+\.[A-Za-z0-9_]{8}" + re.escape(TEMP_SUFFIX))
#: A temporary whose writer still holds its lock is never removed; one nobody holds is a killed run's once
#: it is this old (the moment between mkstemp and the lock is spared).
TEMP_GRACE_S = 1.0
#: Where file locks do not exist (or the file system refuses them): a temporary untouched this long is stale.
STALE_AFTER_S = 300.0


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def _lock(fd: int) -> bool:
    """Hold an exclusive lock on ``fd`` (released when it is closed, or when its process dies, even by
    SIGKILL); False when locks are unavailable here."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _stale(path: Path, now: float) -> bool:
    """True when ``path`` is a temporary nobody writes any more; it is removed under its lock."""
    try:
        age = now - path.lstat().st_mtime
        if age < TEMP_GRACE_S:
            return False
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # its writer is alive
            except OSError:
                if age < STALE_AFTER_S:  # no locks on this file system: only age tells
                    return False
        elif age < STALE_AFTER_S:
            return False
        if stat.S_ISDIR(os.fstat(fd).st_mode):  # a temporary_folder: everything in it was its run's
            shutil.rmtree(path)
        else:
            path.unlink()
        return True
    except OSError:  # gone meanwhile, or not ours to delete: leave it
        return False
    finally:
        os.close(fd)


def sweep_temporaries(candidates: Iterable[Path], quiet: bool = False) -> List[Path]:
    """Remove the atomic_path temporaries among ``candidates`` that a killed run left behind (their writer
    is gone); one info line names them. Returns the removed paths."""
    now = time.time()
    removed = [path for path in candidates if _TEMPORARY.fullmatch(path.name) and _stale(path, now)]
    if removed:
        info(f"removed {len(removed)} temporary files left by an interrupted run ({first_few(removed, 3)})", quiet)
    return removed


def temporaries_of(path: Path) -> List[Path]:
    """The atomic_path temporaries of the file ``path`` that lie beside it now."""
    prefix, folder = _temp_prefix(path), path.parent
    try:
        with os.scandir(folder) as entries:
            return [folder / entry.name for entry in entries
                    if entry.name.startswith(prefix) and entry.name.endswith(TEMP_SUFFIX)]
    except OSError:
        return []


@contextlib.contextmanager
def temporary_folder(prefix: str, quiet: bool = False) -> Iterator[Path]:
    """A private folder in the system's temporary folder, locked while in use and removed after (also on
    SIGTERM). The folders of ``prefix`` that killed runs left there (no lock held; ours) are removed first:
    a SIGKILL mid-run leaves no extracted submission behind for good."""
    base, now = Path(tempfile.gettempdir()), time.time()
    try:
        found = [entry for entry in base.iterdir() if entry.name.startswith(prefix)]
    except OSError:
        found = []
    stale = [entry for entry in found if _own_folder(entry) and _stale(entry, now)]
    if stale:
        info(f"removed {len(stale)} temporary folders left by an interrupted run ({first_few(stale, 3)})", quiet)
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    fd = os.open(folder, os.O_RDONLY)
    _lock(fd)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(fd)


def _own_folder(path: Path) -> bool:
    """A real folder (not a link) of this user: the only kind a sweep of a shared folder may remove."""
    try:
        status = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(status.st_mode) and status.st_uid == getattr(os, "getuid", lambda: status.st_uid)()


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A crash or an exception never leaves a half-written ``path`` behind; the temporary is locked while it
    is written, so that a later run knows a killed run's leftover from a live one's. A symlink is followed
    (its target is replaced, the link stays); a FIFO or device is yielded as is and written directly.
    """
    path = Path(path)
    if _written_directly(path):
        with _named(path, path):
            yield path
        return
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    if path.is_dir():
        raise UserError(f"{path} is a directory: give a file name for the output")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd: Optional[int]
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
    if not _lock(fd):
        os.close(fd)  # nothing to hold (and Windows renames no open file)
        fd = None
    tmp_path = Path(tmp)
    try:
        with _named(tmp_path, path):
            yield tmp_path
        try:  # after writing: a read-only file being replaced keeps its mode, yet the writer could open it
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~_UMASK  # mkstemp creates 0600 files; give what a plain open() would
        os.chmod(tmp_path, mode)
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise
    finally:
        if fd is not None:
            os.close(fd)


class _Unseekable:
    """A device or FIFO written directly, shown to an archive writer as the stream it is: ``/dev/null`` says
    it can seek yet its position stays 0, which leaves zipfile's offsets wrong (struct.error at the end)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw

    def write(self, data: bytes) -> int:
        return self._raw.write(data)

    def flush(self) -> None:
        self._raw.flush()

    def seekable(self) -> bool:
        return False

    def read(self, _size: int = -1) -> bytes:  # numpy takes an object without ``read`` for a path
        raise OSError("not readable: an output")

    def tell(self) -> int:
        raise OSError("not a seekable file")


@contextlib.contextmanager
def archive_stream(path: PathLike) -> Iterator[BinaryIO]:
    """``open(path, "wb")`` for a zip or ``.npz`` writer, ``path`` being what :func:`atomic_path` yielded:
    on a device or FIFO (written directly) the archive is streamed (zipfile's data descriptors)."""
    with open(path, "wb") as stream:
        regular = stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
        yield stream if regular else _Unseekable(stream)  # type: ignore[misc]


class Terminated(SystemExit):
    """SIGTERM, turned into an exit so that ``finally`` blocks and context managers clean up."""


def raise_terminated(signum, _frame) -> None:
    """The SIGTERM handler: an exit with status 143 that runs ``finally`` blocks on its way out."""
    raise Terminated(128 + signum)


@contextlib.contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises ``Terminated`` (exit status 143) instead of killing outright, so
    temporaries go as on an error. A no-op outside the main thread, where Python cannot install handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _named(written: Path, path: Path) -> Iterator[None]:
    """A failed write of ``written`` (no space, quota...) becomes a UserError naming ``path``; errors
    about other files (inputs read meanwhile) pass through."""
    try:
        yield
    except OSError as exc:
        if exc.filename not in (None, str(written)) or isinstance(exc, BrokenPipeError):
            raise
        raise UserError(f"cannot write {path}: {exc.strerror or exc}; free some space or choose another "
                        "path (nothing was half-written)") from None


def path_inside(path: PathLike, folder: PathLike) -> bool:
    """True when ``path`` is ``folder`` or lies inside it (after resolving links)."""
    path, folder = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    return path == folder or folder in path.parents


def folders_overlap(a: PathLike, b: PathLike) -> bool:
    """True when one folder is, or lies inside, the other (after resolving links)."""
    return path_inside(a, b) or path_inside(b, a)


def _nearest_existing(path: Path) -> Path:
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _check_can_create(label: str, shown: PathLike, folder: Path) -> None:
    """UserError unless a file can be created in ``folder`` (or in the folders it would need)."""
    ancestor = _nearest_existing(Path(os.path.realpath(folder)))
    if not ancestor.is_dir():
        raise UserError(f"{label} {shown}: {ancestor} is a file, not a folder: choose another path")
    before = ancestor.stat()
    try:  # a real probe: permissions, read-only mounts and /proc answer as they would for the output
        fd, probe = tempfile.mkstemp(prefix=".imagenets-probe-", dir=ancestor)
    except OSError as exc:
        raise UserError(f"{label} {shown}: cannot write in {ancestor} ({exc.strerror or exc}): choose a "
                        "folder you can write to") from None
    os.close(fd)
    os.unlink(probe)
    with contextlib.suppress(OSError):  # the probe leaves no trace: a complete tree stays as it was
        os.utime(ancestor, ns=(before.st_atime_ns, before.st_mtime_ns))


def check_writable(label: str, path: PathLike) -> None:
    """Before any work: ``path`` can be written as an output file (``label`` names it in messages)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{label} {path} is a directory: give a file name (e.g. {path / 'NAME'})")
    with contextlib.suppress(OSError):
        if stat.S_ISBLK(os.stat(path).st_mode):  # a disk or partition: writing a report there destroys it
            raise UserError(f"{label} {path} is a block device (a disk): give a file name")
    if not _written_directly(path):
        _check_can_create(label, path, Path(os.path.realpath(path)).parent)


def check_writable_dir(label: str, path: PathLike) -> None:
    """Before any work: files can be created in the output folder ``path``."""
    path = Path(path)
    if os.path.lexists(path) and not path.is_dir():
        raise UserError(f"{label} {path} is a file, not a folder: choose a folder")
    _check_can_create(label, path, path)


Paths = Union[Mapping[str, Optional[PathLike]], Sequence[Tuple[str, Optional[PathLike]]]]


def _given(paths: Optional[Paths]) -> List[Tuple[str, Path]]:
    items = paths.items() if isinstance(paths, Mapping) else (paths or [])
    return [(label, Path(p)) for label, p in items if p is not None]


def check_outputs(outputs: Optional[Paths] = None, inputs: Optional[Paths] = None,
                  input_dirs: Optional[Paths] = None, output_dirs: Optional[Paths] = None,
                  managed: Iterable[PathLike] = (), quiet: bool = False) -> None:
    """The one guard, before any work: every output (labelled by its option) is writable, differs from
    every input file and from the other outputs, and lies outside the input folders, also through a
    symlink or a hard link; an output folder does not overlap an input folder nor hold a link into one.
    Then the temporaries a killed run left where this run writes are removed. ``None`` entries are
    options not given; ``managed`` output folders plan their own entries (not walked)."""
    files, dirs = _given(outputs), _given(output_dirs)
    read, read_dirs = _given(inputs), _given(input_dirs)
    own = {os.path.realpath(p) for p in managed}
    leftovers: List[Path] = []
    for label, path in dirs:
        for other, folder in read_dirs:
            if folders_overlap(path, folder):
                where = "it lies inside" if path_inside(path, folder) else "it holds"
                raise UserError(f"{label} {path} overlaps {other} {folder} ({where} {other}): choose a "
                                "separate folder")
        check_writable_dir(label, path)
        if os.path.realpath(path) not in own:
            leftovers += _walk_output_dir(label, path, read, read_dirs)
    seen: Dict[str, Tuple[str, Path]] = {}
    for label, path in files:
        real = os.path.realpath(path)
        if real in seen and not _written_directly(path):
            first, where = seen[real]
            raise UserError(f"{label} {path} would overwrite {first} {where}: give each output its own file")
        seen[real] = (label, path)
        for other, source in read:
            if real == os.path.realpath(source) or same_file(path, source):
                raise UserError(f"{label} {path} is {other}, an input of this run: writing it would destroy "
                                "it; choose another output file")
        for other, folder in read_dirs:
            if path_inside(path, folder) or _hard_linked_into(path, folder):
                raise UserError(f"{label} {path} lies inside {other} {folder}: write outputs outside the "
                                "input folders")
        check_writable(label, path)
        if not _written_directly(path):
            leftovers += temporaries_of(Path(real))
    sweep_temporaries(leftovers, quiet)


def check_distinct(label: str, paths: Sequence[PathLike]) -> None:
    """Before any work: no file of the list ``label`` is given twice, also through a link or a hard link."""
    seen: List[Path] = []
    for path in map(Path, paths):
        for earlier in seen:
            if os.path.realpath(path) == os.path.realpath(earlier) or same_file(path, earlier):
                raise UserError(f"{label}: {earlier} and {path} are the same file: give each once")
        seen.append(path)


def _hard_linked_into(path: Path, folder: Path) -> bool:
    """True when the existing file ``path`` is a hard link of a file under ``folder`` (looked for only when
    the file has several links: rare, so the walk is too)."""
    try:
        status = os.stat(path)
    except OSError:
        return False
    if status.st_nlink < 2 or not stat.S_ISREG(status.st_mode):
        return False
    key = (status.st_dev, status.st_ino)
    for root, _dirs, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(OSError):
                found = os.stat(os.path.join(root, name))
                if (found.st_dev, found.st_ino) == key:
                    return True
    return False


def _walk_output_dir(label: str, folder: Path, read: List[Tuple[str, Path]],
                     read_dirs: List[Tuple[str, Path]]) -> List[Path]:
    """Walk an existing output folder (links not followed): UserError at a link that leads into an input
    (writing through it would change the input); returns the temporaries found for the sweep."""
    temporaries: List[Path] = []
    for root, dirs, names in os.walk(folder):
        for name in dirs + names:
            entry = Path(root, name)
            if _TEMPORARY.fullmatch(name) and name in names:
                temporaries.append(entry)
            if not entry.is_symlink():
                continue
            target = os.path.realpath(entry)
            hits = [(other, source) for other, source in read if target == os.path.realpath(source)]
            hits += [(other, source) for other, source in read_dirs if folders_overlap(target, source)]
            if hits:
                other, source = hits[0]
                raise UserError(f"{label} {folder} holds {entry}, a link to {target} (in {other} {source}): "
                                "writing through it would change an input; remove the link or choose "
                                "another folder")
    return temporaries


def same_file(a: PathLike, b: PathLike) -> bool:
    """True when ``a`` and ``b`` are the same file (also through links and hard links); False if either is absent."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def file_stamp(path: PathLike) -> List[int]:
    """What tells a file's content changed without reading it: size, modification and change times, inode.

    The change time cannot be set back (``cp -p`` and ``rsync -a`` restore the modification time only), and
    a replaced file has another inode, so a stamp is never fooled the way a modification time alone is.
    """
    status = os.stat(path)
    return [status.st_size, status.st_mtime_ns, status.st_ctime_ns, status.st_ino, status.st_dev]


def write_text_atomic(path: PathLike, text: str) -> None:
    """Write a text file atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: PathLike, obj: Any, indent: int = 1) -> None:
    """Write JSON atomically, with a final newline."""
    write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")


#: The most bytes a JSON file of ours may hold (a match of 65,535 clusters is 1.5 MB): a larger file, or
#: an endless one (``/dev/zero``), is refused after reading this much, never read whole.
JSON_MAX_BYTES = 64 << 20
#: The deepest nesting accepted: our files are 3 levels deep at most.
JSON_MAX_DEPTH = 32
#: Integers beyond this many digits are refused (no file of ours needs them; int() would be slow).
_MAX_DIGITS = 30
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "true or false", type(None): "null"}


class _Refused(ValueError):
    """A JSON value our reader does not accept (raised from json's parse hooks)."""


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"a number beyond the float range ({text[:40]})")
    return value


def _bounded(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_DIGITS:
        raise _Refused(f"an integer of {len(text)} digits")
    return int(text)


def _constant(name: str) -> float:
    raise _Refused(f"{name}, which is not a JSON number")


def _depth(value: Any) -> int:
    """How deeply ``value`` nests (iteratively: no recursion limit to hit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def parse_json(data: Union[bytes, str], source: str, expect: Union[type, Tuple[type, ...]] = object) -> Any:
    """Decode JSON that came from outside: strict (finite numbers only, no NaN or Infinity, integers of at
    most 30 digits, at most JSON_MAX_DEPTH levels) and of the ``expect`` type; UserError naming ``source``."""
    fix = "fix or regenerate it"
    deep = UserError(f"{source} nests deeper than {JSON_MAX_DEPTH} levels: {fix}")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = json.loads(text, parse_float=_finite, parse_int=_bounded, parse_constant=_constant)
    except UnicodeDecodeError:
        raise UserError(f"{source} is not UTF-8 text: {fix}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{source} is not valid JSON ({exc.msg} at line {exc.lineno}): {fix}") from None
    except _Refused as exc:
        raise UserError(f"{source} holds {exc}: {fix}") from None
    except RecursionError:
        raise deep from None
    if _depth(value) > JSON_MAX_DEPTH:
        raise deep
    kinds = expect if isinstance(expect, tuple) else (expect,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds and object not in kinds):
        wanted = " or ".join(dict.fromkeys(_JSON_TYPES.get(kind, kind.__name__) for kind in kinds))
        raise UserError(f"{source} holds {_JSON_TYPES.get(type(value), 'a value')}, expected {wanted}: {fix}")
    return value


def read_at_most(path: PathLike, cap: int) -> Optional[bytes]:
    """A file's bytes, never more than ``cap`` of them kept; None when it holds more (an endless file such
    as ``/dev/zero`` is not read to its end). The one capped read: callers word the refusal."""
    with open_to_read(path) as stream:
        data = stream.read(cap + 1)
    return data if len(data) <= cap else None


def open_to_read(path: PathLike) -> BinaryIO:
    """Open a file to read its bytes. A FIFO is opened without waiting for a writer, then read as usual:
    one nobody writes to reads as empty instead of blocking forever; a pipe with a writer (``<(...)``)
    is read to its end."""
    nonblocking = getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, os.O_RDONLY | nonblocking)
    if nonblocking:
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_json(path: PathLike, what: str = "JSON file", expect: Union[type, Tuple[type, ...]] = object,
              max_bytes: int = JSON_MAX_BYTES) -> Any:
    """Read a JSON file through :func:`parse_json`, never more than ``max_bytes`` of it; a missing,
    unreadable, too large or malformed file is a UserError naming it."""
    path = Path(path)
    try:
        data = read_at_most(path, max_bytes)
    except FileNotFoundError:
        raise UserError(f"{what} {path} not found: check the path") from None
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if data is None:
        raise UserError(f"{what} {path} is larger than {max_bytes >> 20} MiB (or endless): not a file this "
                        "command reads; check the path")
    return parse_json(data, f"{what} {path}", expect)
