"""`imagenets verify`: per-split tables of a prepared tree, and a non-zero exit on any problem."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from imagenets.datapreparation.prepare import COMMAND as PREPARE
from imagenets.datapreparation.verify import COMMAND
from fake_imagenet import build_fake_imagenet
from helpers import hardlink_copy
from imagenets.codec import write_mask
from imagenets.subsets import get_subset


@pytest.fixture()
def tree50(prepared50, tmp_path):
    """A private copy of conftest's complete ImageNet-S50 tree (train linked): tests only unlink or add."""
    return hardlink_copy(prepared50, tmp_path / "dest")


def verify(meta_dir, dest, *extra):
    return COMMAND.main([str(dest), "--mode", "50", "--meta-dir", str(meta_dir)] + [str(e) for e in extra])


def rows(capsys):
    result = json.loads(capsys.readouterr().out)
    return {row["split"]: row for row in result[0]["splits"]}


def test_complete_tree_prints_a_table_and_exits_0(prepared50, inet50, meta, meta_dir, capsys):
    assert verify(meta_dir, prepared50) == 0  # reads only: the shared tree itself
    out = capsys.readouterr().out
    assert "ImageNetS50: complete" in out
    expected = {"validation": 752, "validation-segmentation": 752, "test": 1682, "train-semi": 500,
                "train-semi-segmentation": 500,
                "train": sum(len(inet50.train[w]) for w in meta.categories(50))}
    for split, count in expected.items():
        line = next(line for line in out.splitlines() if line.split()[:1] == [split])
        assert line.split()[1:] == [str(count), str(count), "0", "0", "0"]


def test_json_counts_missing_broken_and_extra(tree50, inet50, meta, meta_dir, capsys):
    out = tree50 / "ImageNetS50"
    first, second = meta.split_images(50, "test")[:2]
    (out / "test" / first).unlink()
    target = out / "test" / second
    target.unlink()
    target.symlink_to(out / "nowhere.JPEG")
    (out / "validation" / "stray.JPEG").write_bytes(b"x")
    (out / "train" / meta.categories(50)[0]).unlink()
    assert verify(meta_dir, tree50, "--json") == 1
    got = rows(capsys)
    assert (got["test"]["missing"], got["test"]["broken"], got["test"]["present"]) == (1, 1, 1680)
    assert got["validation"]["extra"] == 1
    lost = len(inet50.train[meta.categories(50)[0]])
    assert got["train"]["missing"] == lost and got["train"]["present"] == got["train"]["expected"] - lost
    assert got["validation-segmentation"]["missing"] == 0


def test_report_says_which_check_was_made(tree50, meta_dir, capsys):
    assert verify(meta_dir, tree50) == 0
    assert "checked: names and links only" in capsys.readouterr().out
    assert verify(meta_dir, tree50, "--deep") == 0
    assert "every mask decoded" in capsys.readouterr().out


def damage(tree50, meta):
    """An empty image, a garbage mask and a mask of another size (one damaged copy of each kind)."""
    out = tree50 / "ImageNetS50"
    image, mask = meta.validation_names(50)[0]
    semi_mask = meta.train_semi_names(50)[0][1]
    for path, data in ((out / "validation" / image, b""), (out / "validation-segmentation" / mask, b"garbage")):
        path.unlink()  # hard-linked to the pristine tree: replace, never modify in place
        path.write_bytes(data)
    (out / "train-semi-segmentation" / semi_mask).unlink()
    write_mask(out / "train-semi-segmentation" / semi_mask, np.zeros((3, 4), dtype=np.int32))
    return [out / "validation" / image, out / "validation-segmentation" / mask,
            out / "train-semi-segmentation" / semi_mask]


def test_deep_check_finds_empty_images_garbage_masks_and_wrong_sizes(tree50, meta, meta_dir, capsys):
    damage(tree50, meta)
    assert verify(meta_dir, tree50, "--json") == 0  # names only: every file is there
    capsys.readouterr()
    assert verify(meta_dir, tree50, "--json", "--deep") == 1
    got = rows(capsys)
    assert got["validation"]["broken"] == 1 and "not a readable image" in got["validation"]["examples"][0]
    assert got["validation-segmentation"]["broken"] == 1
    assert got["train-semi-segmentation"]["broken"] == 1
    assert "4x3, its image is 8x8" in got["train-semi-segmentation"]["examples"][0]
    assert got["validation"]["present"] == got["validation"]["expected"] - 1


def test_prepare_repairs_what_the_deep_check_flags_as_its_advice_says(tree50, prepared50, inet50, zip50, meta,
                                                                       meta_dir, capsys):
    damaged = damage(tree50, meta)
    assert verify(meta_dir, tree50, "--deep", "--quiet") == 1
    advice = capsys.readouterr().err
    assert "rerun `imagenets prepare` with the same options plus --deep" in advice
    argv = ["--imagenet-dir", str(inet50.root), "--save-dir", str(tree50), "--mode", "50", "--meta-dir",
            str(meta_dir), "--annotations-zip", str(zip50[0]), "--skip-checksum"]
    assert PREPARE.main(argv + ["--deep"]) == 0
    out = capsys.readouterr().out
    assert "validation: 1 created (1 of them over damaged files)" in out
    assert "annotations: 2 created (2 of them over damaged files)" in out
    assert verify(meta_dir, tree50, "--deep", "--quiet") == 0
    for path in damaged:
        assert path.read_bytes() == (prepared50 / path.relative_to(tree50)).read_bytes()


def test_plain_prepare_replaces_an_empty_mask_and_a_copy_cut_short(tree50, prepared50, inet50, zip50, meta,
                                                                    meta_dir, capsys):
    out = tree50 / "ImageNetS50"
    image, mask = meta.validation_names(50)[3]
    cut, empty = out / "validation" / image, out / "validation-segmentation" / mask
    data = cut.read_bytes()
    for path, content in ((cut, data[:len(data) // 2]), (empty, b"")):
        path.unlink()
        path.write_bytes(content)
    assert PREPARE.main(["--imagenet-dir", str(inet50.root), "--save-dir", str(tree50), "--mode", "50",
                         "--meta-dir", str(meta_dir), "--annotations-zip", str(zip50[0]), "--skip-checksum",
                         "--quiet"]) == 0
    for path in (cut, empty):
        assert path.read_bytes() == (prepared50 / path.relative_to(tree50)).read_bytes()


def test_leftover_temporary_file_is_a_problem(tree50, meta, meta_dir, capsys):
    folder = tree50 / "ImageNetS50" / "train-semi" / meta.categories(50)[0]
    (folder / ".x.JPEG.1-2.imagenets-tmp").write_bytes(b"half")
    assert verify(meta_dir, tree50, "--quiet") == 1
    assert "NOT complete (1 extra)" in capsys.readouterr().err


def test_dangling_train_link_counts_as_broken(tree50, inet50, meta, meta_dir, tmp_path, capsys):
    gone = meta.categories(50)[5]
    moved = tmp_path / "moved"
    hardlink_copy(inet50.root / "train", moved / "train")
    link = tree50 / "ImageNetS50" / "train" / gone
    link.unlink()
    link.symlink_to(moved / "train" / gone)
    shutil.rmtree(moved / "train" / gone)
    assert verify(meta_dir, tree50, "--json", "--imagenet-dir", inet50.root) == 1
    got = rows(capsys)["train"]
    assert got["broken"] == 1 and got["missing"] == len(inet50.train[gone])


def test_copied_train_is_compared_with_the_official_count_without_imagenet_dir(
        inet50, meta, meta_dir, tmp_path, capsys):
    dest = tmp_path / "dest"
    assert PREPARE.main(["--imagenet-dir", str(inet50.root), "--save-dir", str(dest), "--mode", "50",
                         "--meta-dir", str(meta_dir), "--steps", "train", "--copy", "--quiet"]) == 0
    assert verify(meta_dir, dest, "--json") == 1
    train = rows(capsys)["train"]
    assert train["expected"] == get_subset(50).train and "official count" in train["note"]
    assert verify(meta_dir, dest, "--json", "--imagenet-dir", inet50.root) == 1  # other splits absent
    train = rows(capsys)["train"]
    assert train["expected"] == train["present"] == 50 * 3 + 500
    assert train["missing"] == train["extra"] == 0


def test_919_checks_merged_folders_and_train_full(meta, meta_dir, tmp_path, capsys):
    merged = get_subset(919).merged
    inet = build_fake_imagenet(tmp_path / "inet", meta, subsets=(919,), splits=("train",),
                               train_per_class=1)
    assert PREPARE.main(["--imagenet-dir", str(inet.root), "--save-dir", str(tmp_path / "d"), "--mode",
                         "919", "--meta-dir", str(meta_dir), "--steps", "train", "--quiet"]) == 0
    out = tmp_path / "d" / "ImageNetS919"
    into = next(iter(merged.values()))
    os.unlink(next((out / "train" / into).iterdir()))
    assert COMMAND.main([str(tmp_path / "d"), "--mode", "919", "--meta-dir", str(meta_dir),
                         "--json"]) == 1
    got = rows(capsys)
    assert got["train"]["expected"] == 919 + len(merged)
    assert got["train"]["missing"] == 1 and got["train"]["extra"] == 0
    assert got["train-full"]["present"] == 1
    assert got["test"]["missing"] == 27423


def test_unprepared_destination_is_a_clear_error(meta_dir, tmp_path, capsys):
    assert verify(meta_dir, tmp_path) == 2
    assert "ImageNetS50 not found" in capsys.readouterr().err
