"""``imagenets convert``: RGB masks <-> 16-bit grayscale PNGs, lossless, with clear refusals."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imagenets.cli import run_command
from imagenets.codec import read_mask, write_mask
from imagenets.convert import convert_tree, read_gray16
from imagenets.errors import UserError
from imagenets.subsets import IGNORE


@pytest.fixture
def masks(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "rgb"
    written = {}
    for i in range(5):
        ids = rng.integers(0, 920, size=(7 + i, 9))
        ids[0, 0] = IGNORE
        ids[1, 1] = 65535
        rel = f"n0000000{i % 2}/mask_{i}.png"
        write_mask(folder / rel, ids)
        written[rel] = ids
    return folder, written


def test_round_trip_is_lossless(tmp_path, masks):
    folder, written = masks
    assert run_command(["convert", "--to", "gray16", "--input-dir", str(folder), "--output-dir",
                        str(tmp_path / "gray"), "--quiet"]) == 0
    assert run_command(["convert", "--to", "rgb", "--input-dir", str(tmp_path / "gray"), "--output-dir",
                        str(tmp_path / "back"), "--quiet", "--workers", "0"]) == 0
    for rel, ids in written.items():
        assert (read_gray16(tmp_path / "gray" / rel) == ids).all()
        assert (read_mask(tmp_path / "back" / rel) == ids).all()
        assert (tmp_path / "back" / rel).read_bytes() == (folder / rel).read_bytes()


def test_gray16_is_one_channel_holding_the_id(tmp_path, masks):
    folder, written = masks
    convert_tree(folder, tmp_path / "gray", "gray16", quiet=True)
    rel = next(iter(written))
    with Image.open(tmp_path / "gray" / rel) as image:
        assert image.mode.startswith("I") and len(image.getbands()) == 1
        assert image.getpixel((0, 0)) == IGNORE
        assert image.getpixel((1, 1)) == 65535


def test_rgb_input_for_to_rgb_is_refused_naming_the_file(tmp_path, masks, capsys):
    folder, _ = masks
    assert run_command(["convert", "--to", "rgb", "--input-dir", str(folder), "--output-dir",
                        str(tmp_path / "out"), "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "not a 16-bit grayscale PNG" in err and ".png" in err and "Traceback" not in err


def test_eight_bit_gray_is_not_a_mask(tmp_path):
    folder = tmp_path / "l"
    folder.mkdir()
    Image.new("L", (4, 4), 3).save(folder / "x.png")
    with pytest.raises(UserError, match="x.png"):
        convert_tree(folder, tmp_path / "a", "gray16", workers=0, quiet=True)
    with pytest.raises(UserError, match="ignore id 1000"):
        convert_tree(folder, tmp_path / "b", "rgb", workers=0, quiet=True)


def test_output_inside_input_is_refused(masks):
    folder, _ = masks
    with pytest.raises(UserError, match="overlaps"):
        convert_tree(folder, folder / "gray", "gray16", quiet=True)


def test_empty_input_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no .png"):
        convert_tree(tmp_path / "empty", tmp_path / "out", "gray16", quiet=True)


def test_other_files_are_left_out_with_a_warning(tmp_path, masks, capsys):
    folder, written = masks
    (folder / "README.txt").write_text("notes")
    assert convert_tree(folder, tmp_path / "gray", "gray16", quiet=True) == len(written)
    assert "1 files" in capsys.readouterr().err
    assert not (tmp_path / "gray" / "README.txt").exists()
