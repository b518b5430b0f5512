"""Downloads against a loopback HTTP server: the generic helper and `imagenets meta download`."""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import threading
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from imagenets import cli, digests
from imagenets.download import ChecksumError, DownloadError, download
from imagenets.errors import UserError
from imagenets.metadata import cache_dir, cache_files, load_metadata
from imagenets.subsets import SUBSETS
from helpers import cut_in_half, official_data_py, read_class_names

DROPPED = "mapping/ImageNetS_im919_mapping_test.txt"


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.owner.routes``; can corrupt a file, drop a connection halfway, ignore Range."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        owner = self.server.owner
        owner.requests.append((self.path, self.headers.get("Range")))
        source = owner.routes.get(self.path)
        if source is None:
            self.send_error(404)
            return
        body = source.read_bytes()
        if self.path in owner.corrupt:
            body = bytes([body[0] ^ 0x20]) + body[1:]
        start = 0
        wanted = self.headers.get("Range")
        if wanted and not owner.ignore_range:
            start = int(wanted.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        rest = body[start:]
        self.send_header("Content-Length", str(len(rest)))
        self.end_headers()
        if self.path in owner.drop:
            owner.drop.discard(self.path)
            self.wfile.write(rest[:len(rest) // 2])  # then the connection closes mid-body
            self.close_connection = True
            return
        self.wfile.write(rest)

    def log_message(self, *args) -> None:
        pass


class Loopback:
    """A threaded HTTP server on 127.0.0.1 (port chosen by the OS) serving files by URL path."""

    def __init__(self) -> None:
        self.routes: Dict[str, Path] = {}
        self.requests: List[Tuple[str, Optional[str]]] = []
        self.corrupt: set = set()
        self.drop: set = set()
        self.ignore_range = False
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.owner = self
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture()
def server():
    loopback = Loopback()
    yield loopback
    loopback.close()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/data"


@pytest.fixture()
def official(server, meta_dir, tmp_path, monkeypatch) -> Loopback:
    """The loopback server playing the official repository: the 15 lists and a data.py of its shape."""
    data_py = tmp_path / "data.py"
    data_py.write_text(official_data_py({k: read_class_names(meta_dir, k) for k in sorted(SUBSETS)}),
                       encoding="utf-8")
    monkeypatch.setattr(digests, "DATA_PY_SHA256", hashlib.sha256(data_py.read_bytes()).hexdigest())
    server.routes = {f"/data/{rel}": meta_dir / rel for rel in digests.LIST_SHA256}
    server.routes["/data/data.py"] = data_py
    monkeypatch.setenv("IMAGENETS_META_URL", server.url + "/data")
    return server


def cached() -> List[str]:
    root = cache_dir()
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_meta_download_fills_the_cache_and_later_reads_are_offline(official, meta_dir, capsys, monkeypatch):
    assert cli.main(["meta", "download", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(cache_dir())
    assert cached() == sorted(cache_files())
    assert not cache_dir().with_name(f".{cache_dir().name}.partial").exists()

    monkeypatch.setenv("IMAGENETS_META_URL", closed_port_url())
    meta = load_metadata(quiet=True)
    assert meta.source == "cache" and meta.root == cache_dir()
    assert meta.categories(50) == sorted((meta_dir / SUBSETS[50].categories_file).read_text().split())
    assert meta.class_names(919) == read_class_names(meta_dir, 919)
    assert len(meta.split_images(300, "test")) == SUBSETS[300].test


def test_second_download_fetches_nothing(official):
    assert cli.main(["meta", "download", "--quiet"]) == 0
    official.requests.clear()
    assert cli.main(["meta", "download", "--quiet"]) == 0
    assert official.requests == []


def test_corrupted_file_caches_nothing(official, capsys):
    official.corrupt.add(f"/data/{DROPPED}")
    with pytest.raises(UserError) as caught:
        load_metadata(quiet=True)
    message = str(caught.value)
    assert DROPPED in message and official.url in message
    assert "expected " + digests.LIST_SHA256[DROPPED] in message and "nothing was cached" in message
    assert cached() == []
    assert not cache_dir().with_name(f".{cache_dir().name}.partial").exists()


def test_dropped_connection_fails_then_rerun_resumes_with_range(official, meta_dir, capsys):
    official.drop.add(f"/data/{DROPPED}")
    assert cli.main(["meta", "download", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "connection dropped" in err and "rerun" in err and err.count("error:") == 1
    assert cached() == []

    official.requests.clear()
    assert cli.main(["meta", "download", "--quiet"]) == 0
    ranges = [rng for path, rng in official.requests if path == f"/data/{DROPPED}"]
    size = (meta_dir / DROPPED).stat().st_size
    assert ranges == [f"bytes={size // 2}-"]
    assert (cache_dir() / DROPPED).read_bytes() == (meta_dir / DROPPED).read_bytes()
    assert cached() == sorted(cache_files())


CUT = SUBSETS[50].validation_names_file


def test_cached_list_cut_in_half_is_downloaded_again_on_load(official, capsys):
    assert cli.main(["meta", "download", "--quiet"]) == 0
    cut_in_half(cache_dir() / CUT)
    official.requests.clear()
    meta = load_metadata(quiet=True)
    assert official.requests == [(f"/data/{CUT}", None)]
    assert len(meta.validation_names(50)) == SUBSETS[50].validation
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and str(cache_dir() / CUT) in err and "pinned SHA-256" in err
    official.requests.clear()
    load_metadata(quiet=True)
    assert official.requests == []


def test_cached_list_cut_in_half_offline_is_one_error_naming_it(official, monkeypatch):
    assert cli.main(["meta", "download", "--quiet"]) == 0
    cut_in_half(cache_dir() / CUT)
    monkeypatch.setenv("IMAGENETS_META_URL", closed_port_url())
    with pytest.raises(UserError) as caught:
        load_metadata(quiet=True)
    message = str(caught.value)
    assert message.startswith(f"{cache_dir() / CUT} does not have its pinned SHA-256")
    assert "`imagenets meta download` when online" in message and "\n" not in message


def test_a_cached_list_edited_at_the_same_size_with_its_time_restored_is_downloaded_again(official, capsys):
    assert cli.main(["meta", "download", "--quiet"]) == 0
    path = cache_dir() / CUT
    before, text = path.stat(), path.read_text()
    first, second = text.split("\n")[:2]  # two images swapped: same size, same lines, other bytes
    path.write_text(text.replace(first, "\0", 1).replace(second, first, 1).replace("\0", second, 1))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    official.requests.clear()
    meta = load_metadata(quiet=True)
    assert official.requests == [(f"/data/{CUT}", None)] and path.read_text() == text
    assert len(meta.validation_names(50)) == SUBSETS[50].validation and meta.official
    assert "pinned SHA-256" in capsys.readouterr().err


# ---- the generic helper ----------------------------------------------------------------------

@pytest.fixture()
def blob(server, tmp_path) -> Tuple[str, bytes]:
    payload = bytes(range(256)) * 5000  # 1.2 MiB: more than one chunk
    (tmp_path / "blob.bin").write_bytes(payload)
    server.routes["/blob.bin"] = tmp_path / "blob.bin"
    return server.url + "/blob.bin", payload


def test_download_verifies_md5_and_sha256(blob, tmp_path):
    url, payload = blob
    dest = download(url, tmp_path / "out" / "blob.bin", quiet=True, md5=hashlib.md5(payload).hexdigest(),
                    sha256=hashlib.sha256(payload).hexdigest())
    assert dest.read_bytes() == payload
    assert not dest.with_name("blob.bin.part").exists()


def test_existing_dest_is_verified_not_downloaded(blob, server, tmp_path):
    url, payload = blob
    dest = tmp_path / "blob.bin.copy"
    dest.write_bytes(payload)
    assert download(url, dest, md5=hashlib.md5(payload).hexdigest(), quiet=True) == dest
    assert server.requests == []
    dest.write_bytes(b"other")
    with pytest.raises(ChecksumError, match="already exists"):
        download(url, dest, md5=hashlib.md5(payload).hexdigest(), quiet=True)


def test_mismatch_deletes_the_data_unless_asked_to_keep_it(blob, tmp_path):
    url, payload = blob
    dest = tmp_path / "blob.zip"
    with pytest.raises(ChecksumError, match="deleted"):
        download(url, dest, md5="0" * 32, quiet=True)
    assert list(tmp_path.glob("blob.zip*")) == []
    with pytest.raises(ChecksumError, match="rerun with --skip-checksum") as caught:
        download(url, dest, md5="0" * 32, keep_on_mismatch=True,
                 mismatch_hint="rerun with --skip-checksum to use it anyway", quiet=True)
    assert caught.value.got == hashlib.md5(payload).hexdigest()
    assert dest.read_bytes() == payload


def test_server_ignoring_range_restarts_from_zero(blob, server, tmp_path):
    url, payload = blob
    dest = tmp_path / "out" / "blob.bin"
    dest.parent.mkdir()
    dest.with_name("blob.bin.part").write_bytes(b"stale bytes")
    server.ignore_range = True
    download(url, dest, sha256=hashlib.sha256(payload).hexdigest(), quiet=True)
    assert dest.read_bytes() == payload
    assert server.requests[0][1] == "bytes=11-"


def test_missing_file_and_closed_port_are_user_errors(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(server.url + "/nothing.zip", tmp_path / "nothing.zip", quiet=True)
    with pytest.raises(DownloadError, match="rerun the same command"):
        download(closed_port_url() + "/x.zip", tmp_path / "x.zip", quiet=True)
    assert list(tmp_path.iterdir()) == []
