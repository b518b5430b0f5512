"""Resumable, verified HTTP downloads (``urllib`` only): ``.part`` file, Range resume, digest check, rename."""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

from . import __version__
from .errors import UserError
from .progress import progress

CHUNK = 1 << 20
TIMEOUT_S = 30.0
PathLike = Union[str, "os.PathLike[str]"]


class DownloadError(UserError):
    """The network or server failed; the ``.part`` file is kept so that a rerun resumes."""

    def __init__(self, message: str, url: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.url, self.reason = url, reason


class ChecksumError(UserError):
    """The bytes at ``path`` do not have the ``expected`` digest (``got`` is what they have)."""

    def __init__(self, message: str, path: Path, url: str = "", expected: str = "",
                 got: str = "") -> None:
        super().__init__(message)
        self.path, self.url, self.expected, self.got = path, url, expected, got


def file_digest(path: PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks."""
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            hasher.update(block)
    return hasher.hexdigest()


def _expected(sha256: Optional[str], md5: Optional[str]) -> Dict[str, str]:
    wanted = {}
    if sha256:
        wanted["sha256"] = sha256.lower()
    if md5:
        wanted["md5"] = md5.lower()
    return wanted


def _mismatch(wanted: Dict[str, str], got: Dict[str, str]) -> Optional[Tuple[str, str, str]]:
    """``None`` if every wanted digest matches, else (phrase, expected, got) for the first that differs."""
    for algorithm, value in wanted.items():
        if got[algorithm] != value:
            return f"its {algorithm.upper()} is {got[algorithm]}, expected {value}", value, got[algorithm]
    return None


def _reset(hashers: Dict[str, Any]) -> None:
    for name in list(hashers):
        hashers[name] = hashlib.new(name)


#: The address schemes urllib downloads from.
SCHEMES = ("http", "https", "ftp", "file")


def check_url(label: str, url: str) -> None:
    """Before any work: ``url`` (given as ``label``) is an address urllib can download from."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (parsing the port is what raises for "host:abc")
    except ValueError as exc:
        raise UserError(f"{label} {url!r} is not a valid address ({exc}): give one such as "
                        "https://host/path") from None
    if parts.scheme not in SCHEMES or not (parts.netloc or parts.scheme == "file"):
        raise UserError(f"{label} {url!r} is not a valid address: give one such as https://host/path "
                        f"({', '.join(SCHEMES)})")


def _open(url: str, offset: int):
    headers = {"User-Agent": f"imagenets/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)


def _network_error(url: str, part: Path, exc: BaseException) -> DownloadError:
    if isinstance(exc, urllib.error.HTTPError):
        reason = f"the server answered HTTP {exc.code} {exc.reason}"
        return DownloadError(f"download of {url} failed: {reason}; check the address, or rerun later",
                             url, reason)
    if isinstance(exc, http.client.IncompleteRead):
        reason = "the connection dropped before the end of the file"
    elif isinstance(exc, urllib.error.URLError):
        reason = str(exc.reason)
    else:
        reason = str(exc) or type(exc).__name__
    kept = f" ({part.stat().st_size} bytes kept in {part})" if part.is_file() else ""
    return DownloadError(f"download of {url} failed: {reason}{kept}; "
                         "check the network (or the disk) and rerun the same command to resume",
                         url, reason)


def _stream(url: str, part: Path, hashers: Dict[str, Any], quiet: bool, desc: str) -> None:
    """Append the rest of ``url`` to ``part`` (resuming from its size), feeding ``hashers``."""
    offset = part.stat().st_size if part.is_file() else 0
    if offset:
        # Resuming: the digests must also cover the bytes already on disk.
        with open(part, "rb") as handle:
            for block in iter(lambda: handle.read(CHUNK), b""):
                for hasher in hashers.values():
                    hasher.update(block)
    try:
        try:
            response = _open(url, offset)
        except urllib.error.HTTPError as exc:
            if exc.code != 416 or not offset:
                raise
            # 416: the server refuses our range (stale or oversized .part): start again.
            part.unlink()
            _reset(hashers)
            return _stream(url, part, hashers, quiet, desc)
        with response:
            if offset and getattr(response, "status", None) != 206:
                # The server ignored the Range header and sends the whole file.
                offset = 0
                _reset(hashers)
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else None
            received = offset
            bar = progress(total=total, desc=desc, quiet=quiet, unit="B")
            bar.unit_scale, bar.unit_divisor = True, 1024
            bar.update(offset)
            with bar, open(part, "ab" if offset else "wb") as out:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    out.write(block)
                    for hasher in hashers.values():
                        hasher.update(block)
                    received += len(block)
                    bar.update(len(block))
            if total is not None and received < total:
                raise http.client.IncompleteRead(b"", total - received)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise _network_error(url, part, exc) from None


def download(url: str, dest: PathLike, *, sha256: Optional[str] = None, md5: Optional[str] = None,
             keep_on_mismatch: bool = False, mismatch_hint: str = "", quiet: bool = False,
             desc: Optional[str] = None) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part`` (resumed on rerun), verify, rename; return ``dest``.

    An existing ``dest`` is only verified. A digest mismatch deletes the data (or, with
    ``keep_on_mismatch``, keeps it at ``dest`` and mentions ``mismatch_hint``) and raises ChecksumError.
    """
    dest = Path(dest)
    check_url("URL", url)
    wanted = _expected(sha256, md5)
    if dest.is_file():
        problem = _mismatch(wanted, {name: file_digest(dest, name) for name in wanted})
        if problem:
            hint = f", or {mismatch_hint}" if mismatch_hint else ""
            raise ChecksumError(f"{dest} already exists but {problem[0]}: delete it to download it again"
                                f"{hint}", dest, url, *problem[1:])
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    hashers = {name: hashlib.new(name) for name in wanted}
    _stream(url, part, hashers, quiet, desc or dest.name)
    problem = _mismatch(wanted, {name: h.hexdigest() for name, h in hashers.items()})
    if problem is None:
        os.replace(part, dest)
        return dest
    if not keep_on_mismatch:
        part.unlink()
        raise ChecksumError(f"{dest.name} downloaded from {url} is corrupt: {problem[0]}; "
                            "it was deleted, rerun to download it again", dest, url, *problem[1:])
    os.replace(part, dest)
    hint = f": {mismatch_hint}" if mismatch_hint else ""
    raise ChecksumError(f"{dest} downloaded from {url} does not match: {problem[0]}; it was kept{hint}",
                        dest, url, *problem[1:])
