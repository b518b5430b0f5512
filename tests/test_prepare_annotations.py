"""The annotation step: the archive from a loopback HTTP server, checksums, CRCs, unsafe entries, resumes.

``server``, ``zip50`` (the archive, named as the official one) and ``inet50`` come from conftest.
"""

from __future__ import annotations

import re
import stat
import zipfile
from pathlib import Path
from typing import List

import pytest

from imagenets.datapreparation.prepare import COMMAND
from imagenets.datapreparation.transfer import TMP_SUFFIX
from fake_imagenet import build_annotation_zip, tree_snapshot
from imagenets.subsets import get_subset

ARCHIVE = get_subset(50).annotation_archive
MASKS = 752 + 500


def annotations(meta_dir, dest, *extra) -> int:
    return COMMAND.main(["--save-dir", str(dest), "--mode", "50", "--meta-dir", str(meta_dir),
                 "--steps", "annotations", "--quiet"] + [str(e) for e in extra])


def serve(folder: Path, source: Path) -> None:
    (folder / "release").mkdir(exist_ok=True)
    (folder / "release" / ARCHIVE).write_bytes(source.read_bytes())


def mask_files(dest: Path) -> List[Path]:
    return [p for p in (dest / "ImageNetS50").rglob("*.png")]


def test_download_extracts_masks_and_rerun_fetches_nothing(server, zip50, meta_dir, tmp_path):
    url, folder, log = server
    serve(folder, zip50[0])
    dest = tmp_path / "dest"
    assert annotations(meta_dir, dest, "--release-url", url, "--skip-checksum") == 0
    assert log == [(f"/release/{ARCHIVE}", None)]
    assert (dest / ARCHIVE).read_bytes() == zip50[0].read_bytes()
    for name, data in zip50[1].items():
        assert (dest / name).read_bytes() == data
    assert len(mask_files(dest)) == MASKS
    before = tree_snapshot(dest)
    assert annotations(meta_dir, dest, "--release-url", url) == 0  # no download, so no checksum either
    assert len(log) == 1
    assert tree_snapshot(dest) == before


def test_interrupted_download_is_resumed_with_a_range_request(server, zip50, meta_dir, tmp_path):
    url, folder, log = server
    serve(folder, zip50[0])
    dest = tmp_path / "dest"
    dest.mkdir()
    data = zip50[0].read_bytes()
    (dest / (ARCHIVE + ".part")).write_bytes(data[:1000])
    assert annotations(meta_dir, dest, "--release-url", url, "--skip-checksum") == 0
    assert log == [(f"/release/{ARCHIVE}", "bytes=1000-")]
    assert (dest / ARCHIVE).read_bytes() == data
    assert len(mask_files(dest)) == MASKS


def test_checksum_mismatch_keeps_the_archive_and_names_skip_checksum(server, zip50, meta_dir,
                                                                     tmp_path, capsys):
    url, folder, log = server
    serve(folder, zip50[0])
    dest = tmp_path / "dest"
    assert annotations(meta_dir, dest, "--release-url", url) == 2
    err = capsys.readouterr().err
    assert "--skip-checksum" in err and get_subset(50).annotation_md5 in err
    assert (dest / ARCHIVE).is_file() and not mask_files(dest)
    # The kept archive is used as is, without downloading it again.
    assert annotations(meta_dir, dest, "--release-url", url, "--skip-checksum") == 0
    assert len(log) == 1 and len(mask_files(dest)) == MASKS


def test_environment_variables_stand_for_the_options(server, zip50, meta_dir, tmp_path,
                                                     monkeypatch):
    url, folder, log = server
    serve(folder, zip50[0])
    monkeypatch.setenv("IMAGENETS_RELEASE_URL", url)
    monkeypatch.setenv("IMAGENETS_SKIP_CHECKSUM", "1")
    assert annotations(meta_dir, tmp_path / "dest") == 0
    assert len(log) == 1 and len(mask_files(tmp_path / "dest")) == MASKS


def test_user_archive_with_wrong_md5_is_refused_unless_skip_checksum(zip50, meta_dir, tmp_path,
                                                                     capsys):
    dest = tmp_path / "dest"
    assert annotations(meta_dir, dest, "--annotations-zip", zip50[0]) == 2
    assert "--skip-checksum" in capsys.readouterr().err
    assert not dest.exists()


def corrupt_copy(source: Path, target: Path) -> Path:
    """The archive with one byte of a stored PNG flipped: its CRC check fails."""
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        info = archive.infolist()[10]
    data[info.header_offset + 30 + len(info.filename) + 40] ^= 0xFF
    target.write_bytes(bytes(data))
    return target


def test_corrupt_archive_is_refused_and_nothing_extracted(zip50, meta_dir, tmp_path, capsys):
    bad = corrupt_copy(zip50[0], tmp_path / "bad.zip")
    dest = tmp_path / "dest"
    assert annotations(meta_dir, dest, "--annotations-zip", bad, "--skip-checksum") == 2
    err = capsys.readouterr().err
    assert "is corrupt" in err and "CRC" in err and "delete it" in err
    assert not mask_files(dest)


def test_truncated_archive_is_refused(zip50, meta_dir, tmp_path, capsys):
    cut = tmp_path / "cut.zip"
    cut.write_bytes(zip50[0].read_bytes()[:5000])
    assert annotations(meta_dir, tmp_path / "dest", "--annotations-zip", cut, "--skip-checksum") == 2
    assert "truncated or corrupt" in capsys.readouterr().err


def _symlink_entry() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("ImageNetS50/validation-segmentation/link.png")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize("name, reason", [
    ("ImageNetS50/validation-segmentation/../../../escape.png", "a '..' component"),
    ("/tmp/escape.png", "an absolute path"),
    (None, "a symbolic link"),
])
def test_unsafe_entries_refuse_the_whole_archive(name, reason, meta, meta_dir, tmp_path, capsys):
    path = tmp_path / "unsafe.zip"
    build_annotation_zip(path, meta, 50)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(name or _symlink_entry(), b"/etc/passwd")
    dest = tmp_path / "dest"
    assert annotations(meta_dir, dest, "--annotations-zip", path, "--skip-checksum") == 2
    err = capsys.readouterr().err
    assert reason in err and "refusing to extract anything" in err
    assert not mask_files(dest) and not (tmp_path / "escape.png").exists()


def test_archive_lacking_masks_is_an_error(meta, meta_dir, tmp_path, capsys):
    path = tmp_path / "short.zip"
    build_annotation_zip(path, meta, 50, skip=3)
    assert annotations(meta_dir, tmp_path / "dest", "--annotations-zip", path, "--skip-checksum") == 2
    assert "lacks 3 of the masks" in capsys.readouterr().err


def test_archive_of_another_subset_is_refused(meta_dir, tmp_path, capsys):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ImageNetS300/validation-segmentation/x.png", b"x")
    assert annotations(meta_dir, tmp_path / "dest", "--annotations-zip", path) == 2
    assert "holds ImageNetS50/ entries" in capsys.readouterr().err


def test_interrupted_extraction_is_completed(zip50, meta_dir, tmp_path):
    dest = tmp_path / "dest"
    names = list(zip50[1])
    for name in names[:100]:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes(zip50[1][name])
    torn = dest / names[100]
    torn.parent.mkdir(parents=True, exist_ok=True)
    leftover = torn.with_name(f".{torn.name}.123-456{TMP_SUFFIX}")
    leftover.write_bytes(b"\x89PNG half")
    assert annotations(meta_dir, dest, "--annotations-zip", zip50[0], "--skip-checksum") == 0
    assert not leftover.exists()
    assert len(mask_files(dest)) == MASKS
    assert torn.read_bytes() == zip50[1][names[100]]


#: The official archive's layout (shared README): ``ImageNetS{K}/<folder>/<wnid>/<name>.png``.
OFFICIAL_ENTRY = re.compile(r"^ImageNetS(50|300|919)/(validation|train-semi)-segmentation/n\d{8}/[^/]+\.png$")


def test_fake_archive_has_the_official_layout(zip50, meta):
    names = list(zip50[1])
    assert all(OFFICIAL_ENTRY.match(name) for name in names)
    assert {name.split("/")[1] for name in names} == {"validation-segmentation", "train-semi-segmentation"}
    with zipfile.ZipFile(zip50[0]) as archive:
        assert archive.namelist() == names
    expected = {f"validation-segmentation/{m}" for _, m in meta.validation_names(50)}
    expected |= {f"train-semi-segmentation/{m}" for _, m in meta.train_semi_names(50)}
    assert {name.split("/", 1)[1] for name in names} == expected


def _bad_md5(folder: Path, good: Path, meta, tmp_path: Path) -> List[str]:
    serve(folder, good)  # the fake archive's MD5 is not the official one
    return []


def _missing(folder: Path, good: Path, meta, tmp_path: Path) -> List[str]:
    return []  # nothing served: HTTP 404


def _lacking(folder: Path, good: Path, meta, tmp_path: Path) -> List[str]:
    short = tmp_path / "short.zip"
    build_annotation_zip(short, meta, 50, skip=3)
    serve(folder, short)
    return ["--skip-checksum"]


@pytest.mark.parametrize("make, message", [
    (_bad_md5, "does not match: its MD5"),
    (_missing, "HTTP 404"),
    (_lacking, "lacks 3 of the masks"),
], ids=["bad-md5", "missing-404", "lacking-a-mask"])
def test_bad_archive_stops_the_run_before_any_image_is_written(make, message, server, zip50, meta,
                                                               meta_dir, inet50, tmp_path, capsys):
    url, folder, _ = server
    extra = make(folder, zip50[0], meta, tmp_path)
    dest = tmp_path / "dest"
    code = annotations(meta_dir, dest, "--steps", "validation,annotations", "--imagenet-dir",
                       inet50.root, "--release-url", url, *extra)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
    # No image, no folder: the (kept) archive is all DEST may hold.
    assert not dest.exists() or {p.name for p in dest.iterdir()} <= {ARCHIVE}


def test_dry_run_names_the_download_and_fetches_nothing(server, zip50, meta_dir, tmp_path, capsys):
    url, folder, log = server
    serve(folder, zip50[0])
    dest = tmp_path / "dest"
    assert COMMAND.main(["--save-dir", str(dest), "--mode", "50", "--meta-dir", str(meta_dir),
                         "--steps", "annotations", "--release-url", url, "--dry-run"]) == 0
    assert not log and not dest.exists()
    out, err = capsys.readouterr()
    assert "ImageNetS50 annotations: 1252 to create" in out
    assert f"{url}/{ARCHIVE} would be downloaded" in err
