"""Read an untrusted zip safely: every entry is vetted before anything is written.

Refused: absolute paths, ``..``, backslashes, links and other special entries, encrypted entries,
compression methods zipfile cannot read, duplicates and aliases (``./a`` beside ``a``, ``a//b`` beside
``a/b``), more entries than a cap, more uncompressed bytes than a cap (also enforced while extracting,
whatever the headers claim), small files above their own cap. Read errors become one-line UserErrors.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from imagenets.errors import UserError, first_few
from imagenets.fileio import read_at_most
from imagenets.names import relative_path_problem
from imagenets.progress import progress


DEFAULT_MAX_SIZE = 4 * 1024 ** 3
DEFAULT_MAX_ENTRIES = 100_000
_CHUNK = 1 << 20
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}

#: What reading a damaged or unusual zip raises (zlib.error: corrupt deflate data; BadZipFile: bad CRC;
#: NotImplementedError: a compression method zipfile lacks; RuntimeError: an encrypted entry).
READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError)

#: Compression methods zipfile can read (and so the benchmark server, a Python tool, too).
READABLE_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2",
                    zipfile.ZIP_LZMA: "lzma"}
_METHOD_NAMES = {9: "Deflate64", 6: "implode", 93: "zstd", 95: "xz", 98: "ppmd", 99: "AES"}


def parse_size(text: str) -> int:
    """``4G``, ``500M``, ``4GiB``, ``1000000`` -> bytes (binary units)."""
    found = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*", str(text), flags=re.IGNORECASE)
    if not found:
        raise UserError(f"--max-extract-size {text!r}: give bytes, or a number with K, M, G or T (e.g. 4G)")
    return int(found.group(1)) * _SIZE_UNITS[found.group(2).upper()]


@dataclass(frozen=True)
class Entry:
    """One vetted entry: its normalised name (no ``./``, no ``//``, no trailing slash) and its header."""

    name: str
    info: zipfile.ZipInfo

    @property
    def is_dir(self) -> bool:
        return self.info.is_dir()


def normalise_name(raw: str) -> str:
    """The path an entry name stands for: ``./a//b/`` -> ``a/b`` ("." for the root itself)."""
    return posixpath.normpath(raw.rstrip("/") or ".")


def entry_problem(info: zipfile.ZipInfo) -> str:
    """Why one entry is unsafe or unreadable, as a noun phrase ("" when it is fine)."""
    name = info.filename
    mode = info.external_attr >> 16
    problem = relative_path_problem(name)
    if problem:
        return problem
    if normalise_name(name) == "." and not info.is_dir():
        return "an empty name"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "a special file (device, pipe or socket)"
    if info.flag_bits & 0x1:
        return "an encrypted entry"
    if info.compress_type not in READABLE_METHODS:
        method = _METHOD_NAMES.get(info.compress_type, "unknown")
        return f"an unreadable compression method {info.compress_type} ({method}; use deflate)"
    return ""


def _refuse(source: Path, problems: Dict[str, List[str]], fix: str) -> None:
    if problems:
        details = "; ".join(f"{why}: {len(names)} ({first_few(names, fmt=repr)})" for why, names in problems.items())
        raise UserError(f"{source} has unsafe or unreadable entries, refusing to extract anything: {details}; {fix}")


def vet_entries(infos: Sequence[zipfile.ZipInfo], source: Path, max_size: Optional[int] = DEFAULT_MAX_SIZE,
                max_entries: Optional[int] = DEFAULT_MAX_ENTRIES, caps: Mapping[str, int] = {},
                fix: str = "rebuild the zip") -> List[Entry]:
    """Raise a UserError listing every unsafe entry, else the entries with normalised names.

    ``caps``: normalised name -> the most bytes that file may hold (checked on its header here, and
    enforced again while extracting).
    """
    if max_entries is not None and len(infos) > max_entries:
        raise UserError(f"{source} holds {len(infos)} entries, more than the cap {max_entries} "
                        "(raise --max-entries if that is really what you need): nothing was extracted")
    problems: Dict[str, List[str]] = {}
    seen: Dict[str, str] = {}
    entries = []
    for info in infos:
        why = entry_problem(info)
        name = normalise_name(info.filename)
        if not why and name in seen:
            why = "a duplicate entry" if seen[name] == info.filename else f"an alias of {seen[name]!r}"
        if why:
            problems.setdefault(why, []).append(info.filename)
            continue
        seen[name] = info.filename
        if name != ".":  # a "./" folder entry: the extraction folder itself
            entries.append(Entry(name, info))
    _refuse(source, problems, fix)
    for entry in entries:
        cap = caps.get(entry.name)
        if cap is not None and entry.info.file_size > cap:
            raise UserError(f"{source}: {entry.name} is {entry.info.file_size} bytes, more than the {cap} such a "
                            f"file may hold: nothing was extracted; {fix}")
    total = sum(entry.info.file_size for entry in entries)
    if max_size is not None and total > max_size:
        raise UserError(f"{source} would extract to {total} bytes, more than the cap {max_size} "
                        "(--max-extract-size): nothing was extracted")
    return entries


def open_zip(path: Path, fix: str, missing_fix: str = "check the path") -> zipfile.ZipFile:
    """Open a zip; a missing or unreadable file is a UserError ending with ``fix``."""
    try:
        kind = os.stat(path).st_mode
    except FileNotFoundError:
        raise UserError(f"{path} not found: {missing_fix}") from None
    except OSError as exc:
        raise UserError(f"{path} is not a readable zip ({exc.strerror or exc}): {fix}") from None
    if not stat.S_ISREG(kind):  # zipfile reads a device (/dev/zero) or a pipe to its end looking for the index
        what = "a folder" if stat.S_ISDIR(kind) else "not a regular file (a device or pipe)"
        raise UserError(f"{path} is {what}, not a zip: {fix}")
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise UserError(f"{path} not found: {missing_fix}") from None
    except READ_ERRORS as exc:
        raise UserError(f"{path} is not a readable zip ({exc}): {fix}") from None


def check_crcs(archive: zipfile.ZipFile, source: Path, fix: str) -> None:
    """Read every entry through (CRC checks included); a damaged one is a UserError ending with ``fix``."""
    try:
        bad = archive.testzip()
    except READ_ERRORS as exc:
        bad = f"? ({exc})"
    if bad:
        raise UserError(f"{source} is corrupt (entry {bad} fails its CRC check): {fix}")


def _copy_capped(source, target: Path, budget: int, what: str) -> int:
    """Copy a stream to ``target``; raise once more than ``budget`` bytes come out. Returns bytes written."""
    written = 0
    with open(target, "wb") as out:
        while True:
            block = source.read(_CHUNK)
            if not block:
                return written
            written += len(block)
            if written > budget:
                raise UserError(f"{what} decompresses to more than its header says or than "
                                "--max-extract-size allows: refused")
            out.write(block)


def extract_entries(archive: zipfile.ZipFile, entries: Sequence[Entry], dest: Path, source: Path,
                    max_size: Optional[int] = DEFAULT_MAX_SIZE, fix: str = "rebuild the zip",
                    quiet: bool = False) -> List[str]:
    """Extract vetted entries under ``dest`` (by their normalised names); returns the file names written."""
    root = Path(dest).resolve()
    root.mkdir(parents=True, exist_ok=True)
    left = max_size if max_size is not None else sum(entry.info.file_size for entry in entries)
    names = []
    for entry in progress(entries, desc="extracting", quiet=quiet, unit="file"):
        target = (root / entry.name).resolve()
        if root not in target.parents:  # vetted already; kept as a last line of defence
            raise UserError(f"{source}: entry {entry.info.filename!r} leaves the extraction folder: refused")
        what = f"{source}: entry {entry.info.filename!r}"
        try:
            if entry.is_dir:
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(entry.info) as stream:
                left -= _copy_capped(stream, target, min(left, entry.info.file_size), what)
        except READ_ERRORS as exc:
            raise UserError(f"{what} cannot be read ({exc}): {fix}") from None
        names.append(entry.name)
    return names


def safe_extract(zip_path: Path, dest: Path, max_size: int = DEFAULT_MAX_SIZE,
                 max_entries: int = DEFAULT_MAX_ENTRIES, quiet: bool = False) -> List[str]:
    """Vet every entry of ``zip_path``, then extract it under ``dest``; returns the file names extracted."""
    zip_path = Path(zip_path)
    with open_zip(zip_path, fix="rebuild it") as archive:
        entries = vet_entries(archive.infolist(), zip_path, max_size, max_entries)
        return extract_entries(archive, entries, Path(dest), zip_path, max_size, quiet=quiet)


def read_capped(path: Path, cap: int, what: str) -> bytes:
    """A small extracted file's bytes (:func:`imagenets.fileio.read_at_most`); a UserError above ``cap``."""
    data = read_at_most(path, cap)
    if data is None:
        raise UserError(f"{what} is larger than {cap} bytes: refused")
    return data
