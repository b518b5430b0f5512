"""Shared fixtures: the ``../shared`` material (official lists, golden cases), skipped if absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("IMAGENETS_SHARED_DIR", REPO.parent / "shared"))


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared material (official lists, golden cases) "
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
