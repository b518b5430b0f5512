"""Extract an untrusted zip safely: every entry is vetted before anything is written.

Refused: absolute paths, ``..``, backslashes, links and other special entries, encrypted or duplicate
entries, more entries than a cap, more uncompressed bytes than a cap (also enforced while extracting,
whatever the headers claim).
"""

from __future__ import annotations

import re
import stat
import zipfile
from pathlib import Path
from typing import Dict, List

from imagenets.errors import UserError, first_few
from imagenets.progress import progress


DEFAULT_MAX_SIZE = 4 * 1024 ** 3
DEFAULT_MAX_ENTRIES = 100_000
_CHUNK = 1 << 20
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}


def parse_size(text: str) -> int:
    """``4G``, ``500M``, ``4GiB``, ``1000000`` -> bytes (binary units)."""
    found = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*", str(text), flags=re.IGNORECASE)
    if not found:
        raise UserError(f"--max-extract-size {text!r}: give bytes, or a number with K, M, G or T (e.g. 4G)")
    return int(found.group(1)) * _SIZE_UNITS[found.group(2).upper()]


def _entry_problem(entry: zipfile.ZipInfo) -> str:
    """Why one entry is unsafe ("" when it is fine)."""
    name = entry.filename
    mode = entry.external_attr >> 16
    if "\\" in name or "\0" in name:
        return "backslash or NUL in the name"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in name.split("/"):
        return "'..' in the path"
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "special file (device, pipe or socket)"
    if entry.flag_bits & 0x1:
        return "encrypted entry"
    return ""


def vet_entries(entries: List[zipfile.ZipInfo], source: Path, max_size: int, max_entries: int) -> None:
    """Raise a UserError listing every unsafe entry, before anything is extracted."""
    if len(entries) > max_entries:
        raise UserError(f"{source} holds {len(entries)} entries, more than the cap {max_entries}: a submission "
                        "holds one PNG per image plus method.txt and match.json (raise --max-entries if "
                        "that is really what you need)")
    problems: Dict[str, List[str]] = {}
    seen = set()
    for entry in entries:
        why = _entry_problem(entry)
        if not why and entry.filename.rstrip("/") in seen:
            why = "duplicate entry"
        seen.add(entry.filename.rstrip("/"))
        if why:
            problems.setdefault(why, []).append(entry.filename)
    if problems:
        details = "; ".join(f"{why}: {len(names)} ({first_few(names, fmt=repr)})" for why, names in problems.items())
        raise UserError(f"{source} has unsafe entries, nothing was extracted: {details}; rebuild it with "
                        "`imagenets submission`")
    total = sum(entry.file_size for entry in entries)
    if total > max_size:
        raise UserError(f"{source} would extract to {total} bytes, more than the cap {max_size} "
                        "(--max-extract-size): nothing was extracted")


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


def safe_extract(zip_path: Path, dest: Path, max_size: int = DEFAULT_MAX_SIZE,
                 max_entries: int = DEFAULT_MAX_ENTRIES, quiet: bool = False) -> List[str]:
    """Vet every entry of ``zip_path``, then extract it under ``dest``; returns the file names extracted."""
    zip_path, dest = Path(zip_path), Path(dest)
    try:
        archive = zipfile.ZipFile(zip_path)
    except FileNotFoundError:
        raise UserError(f"{zip_path} not found: check the path") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"{zip_path} is not a readable zip ({exc}): rebuild it with `imagenets submission`") from None
    with archive:
        entries = archive.infolist()
        vet_entries(entries, zip_path, max_size, max_entries)
        root = dest.resolve()
        left = max_size
        names = []
        for entry in progress(entries, desc="extracting", quiet=quiet, unit="file"):
            target = (root / entry.filename).resolve()
            if root not in target.parents:  # vetted above; kept as a last line of defence
                raise UserError(f"{zip_path}: entry {entry.filename!r} leaves the extraction folder: refused")
            what = f"{zip_path}: entry {entry.filename!r}"
            try:
                if entry.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(entry) as stream:
                    left -= _copy_capped(stream, target, min(left, entry.file_size), what)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise UserError(f"{what} cannot be extracted ({exc}): rebuild the zip") from None
            names.append(entry.filename)
    return names
