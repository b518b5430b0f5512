"""Shared fixtures: the ``../shared`` material (skipped if absent) and the expensive test data, built once.

Session-scoped data (fake ImageNet, prepared tree, annotation zip, protocol case) is READ-ONLY:
a test that changes files works on a private copy (``case`` copies; ``helpers.hardlink_copy`` for trees).
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import pytest
from PIL import Image

from fake_imagenet import FakeImageNet, build_annotation_zip, build_fake_imagenet, tree_snapshot
from helpers import IMAGES, K, SUBSET, small_meta
from imagenets.codec import write_mask
from imagenets.datapreparation.prepare import COMMAND as PREPARE
from imagenets.demo.synthetic import write_synthetic_benchmark, write_synthetic_meta
from imagenets.metadata import Metadata, load_metadata
from skip_summary import pytest_terminal_summary  # noqa: F401 (a hook: one line per skip reason)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("IMAGENETS_SHARED_DIR", REPO.parent / "shared"))


def pytest_configure(config) -> None:
    """One intra-op thread: the test data is tiny, and on a 2-core machine OpenMP threads mostly
    spin-wait (a fifth of the suite's CPU time). Subprocesses inherit the variable."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if "torch" in sys.modules:  # loaded before this hook: the variable came too late for it
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def _need(path: Path) -> Path:
    if not path.exists():
        # One reason for every test when the whole folder is absent (the summary shows it once).
        missing = SHARED if not SHARED.exists() else path
        pytest.skip(f"{missing} is absent: the shared material (official lists, golden cases) "
                    "sits at ../shared beside the checkout; set IMAGENETS_SHARED_DIR to point elsewhere")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _need(SHARED)


@pytest.fixture(scope="session")
def meta_dir() -> Path:
    """The official lists (categories/, names/, mapping/) plus our classnames/."""
    return _need(SHARED / "imagenets-meta")


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return _need(SHARED / "golden")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's real cache or network settings from a test."""
    monkeypatch.setenv("IMAGENETS_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("IMAGENETS_META_DIR", raising=False)


# ---- fake ImageNet, annotation archive, prepared ImageNet-S50 (read-only) -------------------------

@pytest.fixture(scope="session")
def meta(meta_dir) -> Metadata:
    """The official lists, loaded once."""
    return load_metadata(meta_dir=meta_dir)


def _read_only(value, root: Path) -> Iterator:
    """Yield ``value``; at the end of the session, fail if a test changed anything under ``root``."""
    before = tree_snapshot(root)
    yield value
    assert tree_snapshot(root) == before, f"a test changed the shared {root}: copy what you modify"


@pytest.fixture(scope="session")
def inet50(meta, tmp_path_factory) -> Iterator[FakeImageNet]:
    """A fake ImageNet holding everything ImageNet-S50 needs, val in class folders."""
    inet = build_fake_imagenet(tmp_path_factory.mktemp("inet50"), meta, subsets=(50,))
    yield from _read_only(inet, inet.root)


@pytest.fixture(scope="session")
def inet50_flat(meta, tmp_path_factory) -> Iterator[FakeImageNet]:
    """The same with val flat (``val/ILSVRC2012_val_*.JPEG``), as the original val tarball extracts."""
    inet = build_fake_imagenet(tmp_path_factory.mktemp("inet50_flat"), meta, subsets=(50,), val_layout="flat")
    yield from _read_only(inet, inet.root)


@pytest.fixture(scope="session")
def zip50(meta, tmp_path_factory) -> Iterator[Tuple[Path, Dict[str, bytes]]]:
    """(path, entries) of a fake ImageNetS50 annotation archive (its MD5 is not the official one)."""
    path = tmp_path_factory.mktemp("zip50") / SUBSET.annotation_archive
    entries = build_annotation_zip(path, meta, 50)
    yield from _read_only((path, entries), path.parent)


@pytest.fixture(scope="session")
def prepared50(meta_dir, inet50, zip50, tmp_path_factory) -> Iterator[Path]:
    """A full ImageNet-S50 run (train links, copies, masks from --annotations-zip)."""
    dest = tmp_path_factory.mktemp("prepared50")
    assert PREPARE.main(["--imagenet-dir", str(inet50.root), "--save-dir", str(dest), "--mode", "50",
                         "--meta-dir", str(meta_dir), "--annotations-zip", str(zip50[0]),
                         "--skip-checksum", "--quiet"]) == 0
    yield from _read_only(dest, dest)


# ---- a loopback HTTP server -----------------------------------------------------------------------

class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves the files of ``server.folder``, honouring ``Range: bytes=N-``; logs every request."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.log.append((self.path, self.headers.get("Range")))
        path = self.server.folder / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def server(tmp_path):
    """(base URL, served folder, request log) of a loopback HTTP server."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    httpd.folder = tmp_path / "served"
    httpd.folder.mkdir()
    httpd.log: List[Tuple[str, Optional[str]]] = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/release", httpd.folder, httpd.log
    httpd.shutdown()
    httpd.server_close()


# ---- the protocol case: a handful of synthetic pairs with cluster ids and their match ---------------

@pytest.fixture(scope="session")
def protocol_pristine(meta_dir, tmp_path_factory) -> Iterator[Path]:
    """Synthetic GT, cluster-id predictions (a permutation of the classes, some noise) and their match."""
    root = tmp_path_factory.mktemp("protocol")
    meta = load_metadata(small_meta(meta_dir, root / "meta"))
    rng = np.random.default_rng(0)
    cluster_of = rng.permutation(K) + 1            # class c is predicted as cluster cluster_of[c - 1]
    class_ids = meta.class_ids(SUBSET)
    for index, (image, mask) in enumerate(meta.validation_names(SUBSET)):
        h, w = 10, 12 + index
        gt = np.zeros((h, w), dtype=np.int32)
        gt[2:3 + index, 3:w - 2] = class_ids[mask.split("/")[0]]  # objects of every size bucket
        gt[0, :3] = 1000
        pred = gt.copy()
        pred[gt == 1000] = 0
        noise = rng.random((h, w)) < 0.15
        pred[noise] = rng.integers(0, K + 1, size=int(noise.sum()))
        pred = np.where(pred > 0, cluster_of[np.maximum(pred, 1) - 1], 0)
        write_mask(root / "gt" / mask, gt)
        write_mask(root / "pred" / mask, pred)
        (root / "images" / "validation" / image).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (w, h)).save(root / "images" / "validation" / image, format="JPEG")
    match = {str(int(p)): c for c, p in enumerate(cluster_of, 1)}
    match["0"] = 0
    (root / "match.json").write_text(json.dumps(match))
    yield from _read_only(root, root)


@pytest.fixture
def case(protocol_pristine, tmp_path) -> Dict[str, object]:
    """A private copy of the protocol case in ``tmp_path`` (test_evaluator_cli/test_match_cli have their own)."""
    shutil.copytree(protocol_pristine, tmp_path, dirs_exist_ok=True, copy_function=shutil.copy)
    meta = load_metadata(tmp_path / "meta")
    return {"root": tmp_path, "meta": meta, "meta_dir": tmp_path / "meta", "names": meta.validation_names(SUBSET),
            "gt": tmp_path / "gt", "pred": tmp_path / "pred", "match": tmp_path / "match.json",
            "images": tmp_path / "images"}


@pytest.fixture
def scratch(tmp_path, monkeypatch) -> Path:
    """Temporary folders of score go here, so a test can see that none is left behind."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(folder))
    return folder


# ---- the evaluator case (evaluate/match commands, analysis, reliability) -------------------------

@pytest.fixture(scope="session")
def eval_pristine(tmp_path_factory) -> Path:
    """The evaluator case: a tiny synthetic ImageNet-S50 (8 validation pairs, 24-48 px); copied per test, never modified."""
    root = tmp_path_factory.mktemp("pristine")
    meta = load_metadata(write_synthetic_meta(root / "meta", K, validation=IMAGES, test=0, train_semi=0))
    write_synthetic_benchmark(root / "case", meta, K, sides=(24, 48), permute=False, quiet=True)
    return root


@pytest.fixture
def eval_case(eval_pristine, tmp_path) -> Dict[str, Path]:
    """A private copy: ``meta``, ``gt``, ``pred`` directories and the ordered mask paths ``masks``."""
    shutil.copytree(eval_pristine, tmp_path / "data")
    root = tmp_path / "data"
    masks = [m for _i, m in load_metadata(root / "meta").validation_names(K)]
    return {"meta": root / "meta", "gt": root / "case" / "gt", "pred": root / "case" / "pred",
            "masks": masks, "tmp": tmp_path}
