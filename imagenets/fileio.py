"""Shared file I/O: atomic writes (temporary name, then rename) and friendly JSON reading."""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional, Union

from .errors import UserError, info

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


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def remove_stale_temporaries(path: Path, older_than_s: float, what: str = "file", quiet: bool = False) -> None:
    """Delete atomic_path's temporaries of ``path`` that a killed run left, untouched for ``older_than_s``
    (a run writing at this moment is spared)."""
    pattern = re.compile(re.escape(_temp_prefix(path)) + r"[A-Za-z0-9_]{8}" + re.escape(TEMP_SUFFIX))
    folder = path.parent
    if not folder.is_dir():
        return
    now = time.time()
    for candidate in folder.iterdir():
        try:
            if (pattern.fullmatch(candidate.name) and candidate.is_file()
                    and now - candidate.stat().st_mtime > older_than_s):
                candidate.unlink()
                info(f"removed {candidate}, a temporary {what} left by an interrupted run", quiet)
        except OSError:  # gone meanwhile, or not ours to delete: leave it
            continue


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A crash or an exception never leaves a half-written ``path`` behind. A symlink is followed (its
    target is replaced, the link stays); a FIFO or device is yielded as is and written directly.
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
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
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
    try:  # a real probe: permissions, read-only mounts and /proc answer as they would for the output
        fd, probe = tempfile.mkstemp(prefix=".imagenets-probe-", dir=ancestor)
    except OSError as exc:
        raise UserError(f"{label} {shown}: cannot write in {ancestor} ({exc.strerror or exc}): choose a "
                        "folder you can write to") from None
    os.close(fd)
    os.unlink(probe)


def check_writable(label: str, path: PathLike) -> None:
    """Before any work: ``path`` can be written as an output file (``label`` names it in messages)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{label} {path} is a directory: give a file name (e.g. {path / 'NAME'})")
    if not _written_directly(path):
        _check_can_create(label, path, Path(os.path.realpath(path)).parent)


def check_writable_dir(label: str, path: PathLike) -> None:
    """Before any work: files can be created in the output folder ``path``."""
    path = Path(path)
    if os.path.lexists(path) and not path.is_dir():
        raise UserError(f"{label} {path} is a file, not a folder: choose a folder")
    _check_can_create(label, path, path)


Paths = Mapping[str, Optional[PathLike]]


def _given(paths: Optional[Paths]) -> Dict[str, Path]:
    return {label: Path(p) for label, p in (paths or {}).items() if p is not None}


def check_outputs(outputs: Optional[Paths] = None, inputs: Optional[Paths] = None,
                  input_dirs: Optional[Paths] = None, output_dirs: Optional[Paths] = None) -> None:
    """Before any work: every output (labelled by its option) is writable, differs from every input
    file and from the other outputs, and lies outside the input folders (a folder output does not
    overlap them). ``None`` entries are options not given."""
    files, dirs, read, read_dirs = _given(outputs), _given(output_dirs), _given(inputs), _given(input_dirs)
    for label, path in dirs.items():
        for other, folder in read_dirs.items():
            if folders_overlap(path, folder):
                raise UserError(f"{label} {path} overlaps {other} {folder}: choose a separate folder")
        check_writable_dir(label, path)
    seen: Dict[str, str] = {}
    for label, path in files.items():
        real = os.path.realpath(path)
        if real in seen and not _written_directly(path):
            raise UserError(f"{label} {path} would overwrite {seen[real]} {files[seen[real]]}: give each output "
                            "its own file")
        seen[real] = label
        for other, source in read.items():
            if real == os.path.realpath(source) or _same_file(path, source):
                raise UserError(f"{label} {path} is {other}, an input of this run: writing it would destroy "
                                "it; choose another output file")
        for other, folder in read_dirs.items():
            if path_inside(path, folder):
                raise UserError(f"{label} {path} lies inside {other} {folder}: write outputs outside the "
                                "input folders")
        check_writable(label, path)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def write_text_atomic(path: PathLike, text: str) -> None:
    """Write a text file atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: PathLike, obj: Any, indent: int = 1) -> None:
    """Write JSON atomically, with a final newline."""
    write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")


def read_json(path: PathLike, what: str = "JSON file") -> Any:
    """Read JSON; a missing or malformed file is a UserError naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{what} {path} not found: check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {what} {path}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{what} {path} is not valid JSON ({exc.msg} at line {exc.lineno}): "
                        "fix or regenerate it") from None
