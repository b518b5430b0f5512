"""`imagenets prepare` on fake ImageNet trees with the real file names: layout, reruns, crashes, conflicts.

``inet50``, ``zip50`` and ``prepared50`` (conftest) are shared: tests that write use their own DEST.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imagenets.datapreparation.prepare import COMMAND
from imagenets.datapreparation.transfer import TMP_SUFFIX
from imagenets.cli import run_command
from fake_imagenet import OUTSIDE_WNIDS, build_fake_imagenet, jpeg_comment, tree_snapshot
from helpers import exit_status, hardlink_copy
from imagenets.metadata import Metadata, load_metadata
from imagenets.subsets import get_subset

REPO = Path(__file__).resolve().parents[1]


def prepare(meta_dir, imagenet, dest, *extra) -> int:
    argv = ["--save-dir", str(dest), "--mode", "50", "--meta-dir", str(meta_dir), "--quiet"]
    if imagenet is not None:
        argv += ["--imagenet-dir", str(imagenet)]
    return COMMAND.main(argv + [str(e) for e in extra])


def files_under(folder: Path):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_full_run_builds_the_exact_imagenets50_layout(prepared50, inet50, meta):
    out = prepared50 / "ImageNetS50"
    assert sorted(p.name for p in out.iterdir()) == [
        "test", "train", "train-semi", "train-semi-segmentation", "validation",
        "validation-segmentation"]
    assert files_under(out / "validation") == sorted(meta.split_images(50, "validation"))
    assert len(files_under(out / "validation")) == 752
    assert files_under(out / "test") == sorted(meta.split_images(50, "test"))
    assert len(files_under(out / "test")) == 1682
    assert files_under(out / "train-semi") == sorted(meta.split_images(50, "train-semi"))
    assert len(files_under(out / "train-semi")) == 500
    assert len(files_under(out / "validation-segmentation")) == 752
    assert len(files_under(out / "train-semi-segmentation")) == 500


def test_train_is_one_link_per_subset_class_and_nothing_else(prepared50, inet50, meta):
    train = prepared50 / "ImageNetS50" / "train"
    entries = sorted(p.name for p in train.iterdir())
    assert entries == meta.categories(50)
    assert not set(OUTSIDE_WNIDS) & set(entries)
    for wnid in entries:
        assert os.readlink(train / wnid) == str(inet50.root / "train" / wnid)


def test_copies_follow_the_mapping_lists_including_reassigned_images(prepared50, meta):
    out = prepared50 / "ImageNetS50"
    for split in ("validation", "test"):
        for src, dst in meta.mapping(50, split):
            assert jpeg_comment((out / split / dst).read_bytes()) == f"val/{src}"
    for image, _ in meta.train_semi_names(50):
        name = image.rsplit("/", 1)[1]
        assert jpeg_comment((out / "train-semi" / image).read_bytes()) == \
            f"train/{name.split('_')[0]}/{name}"


def test_masks_are_the_archive_entries(prepared50, zip50):
    for name, data in zip50[1].items():
        assert (prepared50 / name).read_bytes() == data


def test_second_run_changes_nothing(prepared50, meta_dir, inet50, zip50, capsys):
    before = tree_snapshot(prepared50)
    assert COMMAND.main(["--imagenet-dir", str(inet50.root), "--save-dir", str(prepared50), "--mode", "50",
                 "--meta-dir", str(meta_dir), "--annotations-zip", str(zip50[0])]) == 0
    assert tree_snapshot(prepared50) == before
    out = capsys.readouterr().out
    assert "train: 0 created, 50 already present" in out
    assert "annotations: 0 created, 1252 already present" in out


def test_umbrella_command_runs_prepare(prepared50, meta_dir, inet50):
    assert run_command(["prepare", "--imagenet-dir", str(inet50.root), "--save-dir", str(prepared50),
                        "--mode", "50", "--meta-dir", str(meta_dir), "--steps", "train,test",
                        "--quiet"]) == 0


@pytest.mark.parametrize("layout", ["class", "flat"])
def test_val_layout_is_detected_and_said(layout, inet50, inet50_flat, meta, meta_dir, tmp_path, capsys):
    inet = inet50 if layout == "class" else inet50_flat
    assert COMMAND.main(["--imagenet-dir", str(inet.root), "--save-dir", str(tmp_path / "dest"), "--mode",
                 "50", "--meta-dir", str(meta_dir), "--steps", "validation"]) == 0
    said = capsys.readouterr().err
    expected = "val/<wnid>/ILSVRC2012_val_*.JPEG" if layout == "class" else "flat (val/"
    assert "validation source layout: " in said and expected in said
    out = tmp_path / "dest" / "ImageNetS50" / "validation"
    for src, dst in meta.mapping(50, "validation"):
        assert jpeg_comment((out / dst).read_bytes()) == f"val/{src}"


def test_copy_mode_copies_every_train_file(meta, meta_dir, tmp_path):
    inet = build_fake_imagenet(tmp_path / "inet", meta, subsets=(50,), splits=("train",),
                               train_per_class=2)
    dest = tmp_path / "dest"
    assert prepare(meta_dir, inet.root, dest, "--steps", "train", "--copy", "--workers", "0") == 0
    train = dest / "ImageNetS50" / "train"
    assert sorted(p.name for p in train.iterdir()) == meta.categories(50)
    for wnid in meta.categories(50):
        assert not (train / wnid).is_symlink()
        assert sorted(p.name for p in (train / wnid).iterdir()) == inet.train[wnid]
        for name in inet.train[wnid]:
            assert (train / wnid / name).read_bytes() == (inet.root / "train" / wnid / name).read_bytes()


@pytest.fixture(scope="module")
def inet919(meta, tmp_path_factory):
    """A reduced fake ImageNet for 919: train only, one image per class (two for merged wnids)."""
    merged = get_subset(919).merged
    counts = {w: 2 for pair in merged.items() for w in pair}
    return build_fake_imagenet(tmp_path_factory.mktemp("inet919"), meta, subsets=(919,),
                               splits=("train",), train_per_class=1, train_counts=counts)


@pytest.mark.parametrize("copy", [False, True])
def test_919_merged_classes_are_folders_holding_both_wnids(copy, inet919, meta, meta_dir, tmp_path):
    subset = get_subset(919)
    argv = ["--imagenet-dir", str(inet919.root), "--save-dir", str(tmp_path), "--mode", "919",
            "--meta-dir", str(meta_dir), "--steps", "train", "--quiet"]
    assert COMMAND.main(argv + (["--copy"] if copy else [])) == 0
    out = tmp_path / "ImageNetS919"
    train = out / "train"
    assert sorted(p.name for p in train.iterdir()) == meta.categories(919)
    assert os.readlink(out / "train-full") == str(inet919.root / "train")
    for source, into in subset.merged.items():
        folder = train / into
        assert folder.is_dir() and not folder.is_symlink()
        names = sorted(p.name for p in folder.iterdir())
        assert names == sorted(inet919.train[into] + inet919.train[source])
        for name in names:
            wnid = name.split("_")[0]
            assert (folder / name).is_symlink() != copy
            assert (folder / name).read_bytes() == (inet919.root / "train" / wnid / name).read_bytes()
    plain = next(w for w in meta.categories(919) if w not in subset.merged.values())
    assert (train / plain).is_symlink() != copy


def test_919_train_semi_takes_merged_images_from_their_own_wnid(inet919, meta, meta_dir, tmp_path,
                                                                 monkeypatch):
    merged = get_subset(919).merged
    real = Metadata.train_semi_names

    def merged_only(self, subset):
        return [pair for pair in real(self, subset) if pair[0].split("/")[0] in merged.values()]

    monkeypatch.setattr(Metadata, "train_semi_names", merged_only)
    inet = build_fake_imagenet(tmp_path / "inet", load_metadata(meta_dir=meta_dir), subsets=(919,),
                               splits=("train-semi",))
    pairs = merged_only(meta, 919)
    assert any(image.split("/")[1].split("_")[0] in merged for image, _ in pairs)
    assert COMMAND.main(["--imagenet-dir", str(inet.root), "--save-dir", str(tmp_path / "d"), "--mode", "919",
                 "--meta-dir", str(meta_dir), "--steps", "train-semi", "--quiet"]) == 0
    for image, _ in pairs:
        name = image.split("/")[1]
        got = (tmp_path / "d" / "ImageNetS919" / "train-semi" / image).read_bytes()
        assert jpeg_comment(got) == f"train/{name.split('_')[0]}/{name}"


def test_missing_train_class_exits_2_before_writing(meta, meta_dir, tmp_path, capsys):
    inet = build_fake_imagenet(tmp_path / "inet", meta, subsets=(50,), splits=("train", "validation"))
    gone = meta.categories(50)[3]
    shutil.rmtree(inet.root / "train" / gone)
    dest = tmp_path / "dest"
    assert prepare(meta_dir, inet.root, dest, "--steps", "train,validation") == 2
    err = capsys.readouterr().err
    assert "ImageNetS50 train: 1 class folders are missing" in err and gone in err
    assert not dest.exists()


def test_missing_val_images_are_counted_and_named(inet50_flat, meta, meta_dir, tmp_path, capsys):
    inet = hardlink_copy(inet50_flat.root / "val", tmp_path / "inet" / "val").parent
    sources = [src for src, _ in meta.mapping(50, "test")][:7]
    for src in sources:
        (inet / "val" / src.split("/")[1]).unlink()
    dest = tmp_path / "dest"
    assert prepare(meta_dir, inet, dest, "--steps", "test") == 2
    err = capsys.readouterr().err
    assert "7 source images are missing" in err and sources[0] in err and "nothing was written" in err
    assert not dest.exists()


def test_no_imagenet_folder_is_a_clear_error(meta_dir, tmp_path, capsys):
    assert prepare(meta_dir, tmp_path / "nowhere", tmp_path / "dest", "--steps", "train") == 2
    assert "--imagenet-dir" in capsys.readouterr().err


def test_conflicting_entries_are_reported_and_left_alone(inet50, meta, meta_dir, tmp_path, capsys):
    dest = tmp_path / "dest"
    assert prepare(meta_dir, inet50.root, dest, "--steps", "train") == 0
    train = dest / "ImageNetS50" / "train"
    first, second, third = meta.categories(50)[:3]
    (train / first).unlink()
    (train / first).symlink_to(tmp_path)                     # a link to elsewhere
    (train / second).unlink()
    (train / second).write_text("not a link")                # a file where a link should be
    (train / third).unlink()                                 # simply missing: not recreated either
    before = tree_snapshot(dest)
    assert prepare(meta_dir, inet50.root, dest, "--steps", "train") == 2
    err = capsys.readouterr().err
    assert "2 existing entries conflict" in err and "nothing was overwritten" in err
    assert f"{train / first} is a link to {tmp_path}" in err
    assert f"{train / second} is a regular file where a link" in err
    assert tree_snapshot(dest) == before


def test_copy_over_a_linked_tree_is_a_conflict(inet50, meta_dir, tmp_path, capsys):
    dest = tmp_path / "dest"
    assert prepare(meta_dir, inet50.root, dest, "--steps", "train") == 0
    before = tree_snapshot(dest)
    assert prepare(meta_dir, inet50.root, dest, "--steps", "train", "--copy") == 2
    assert "50 existing entries conflict" in capsys.readouterr().err
    assert tree_snapshot(dest) == before


def test_dry_run_writes_nothing(inet50, meta_dir, tmp_path, capsys):
    dest = tmp_path / "dest"
    assert COMMAND.main(["--imagenet-dir", str(inet50.root), "--save-dir", str(dest), "--mode", "50",
                 "--meta-dir", str(meta_dir), "--steps", "train", "test", "--dry-run"]) == 0
    assert not dest.exists()
    assert "ImageNetS50 test: 1682 to create, 0 already present" in capsys.readouterr().out


def test_unknown_step_is_a_clear_error(meta_dir, tmp_path, capsys):
    assert exit_status(lambda argv: prepare(meta_dir, tmp_path, tmp_path / "dest", *argv),
                       ["--steps", "train,masks"]) == 2
    assert "--steps: unknown step masks" in capsys.readouterr().err


CRASH = """
import os, sys
import imagenets.datapreparation.transfer as transfer
calls = [0]
def crash_halfway(source, path):
    calls[0] += 1
    if calls[0] == {after}:
        data = open(source, "rb").read()
        with open(transfer.temp_name(path), "wb") as out:
            out.write(data[: len(data) // 2])   # a truncated temporary file, then a hard kill
        os._exit(9)
    real(source, path)
real = transfer.copy_atomic
transfer.copy_atomic = crash_halfway
from imagenets.datapreparation.prepare import COMMAND
sys.exit(COMMAND.main(sys.argv[1:]))
"""


def test_run_killed_halfway_is_completed_by_a_rerun(inet50, meta, meta_dir, tmp_path):
    dest = tmp_path / "dest"
    argv = ["--imagenet-dir", str(inet50.root), "--save-dir", str(dest), "--mode", "50",
            "--meta-dir", str(meta_dir), "--steps", "validation", "--workers", "1", "--quiet"]
    killed = subprocess.run([sys.executable, "-c", CRASH.format(after=300)] + argv,
                            capture_output=True, text=True, cwd=REPO)
    assert killed.returncode == 9, killed.stderr
    out = dest / "ImageNetS50" / "validation"
    leftovers = [p for p in out.rglob(f"*{TMP_SUFFIX}")]
    assert len(leftovers) == 1
    assert len(files_under(out)) == 299 + 1  # 299 complete copies and the truncated temporary file
    assert COMMAND.main(argv) == 0
    assert not list(out.rglob(f"*{TMP_SUFFIX}"))
    assert files_under(out) == sorted(meta.split_images(50, "validation"))
    for src, dst in meta.mapping(50, "validation"):
        assert (out / dst).read_bytes() == (inet50.root / "val" / src).read_bytes()
