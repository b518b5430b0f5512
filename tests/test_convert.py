"""``imagenets convert``: RGB masks <-> 16-bit grayscale PNGs, lossless, with clear refusals."""

from __future__ import annotations

import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from imagenets.cli import run_command
from imagenets.codec import read_mask, write_mask
from imagenets.convert import convert_tree, read_gray
from imagenets.errors import UserError
from imagenets.evaluation.engine.inputs import check_png
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
        assert (read_gray(tmp_path / "gray" / rel) == ids).all()
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
    assert "is a RGB PNG, not a grayscale one" in err and ".png" in err and "Traceback" not in err


def test_eight_bit_gray_is_not_an_rgb_mask_for_gray16(tmp_path):
    folder = tmp_path / "l"
    folder.mkdir()
    Image.new("L", (4, 4), 3).save(folder / "x.png")
    with pytest.raises(UserError, match=r"x.png is a 8-bit grayscale \(L\) PNG, not RGB"):
        convert_tree(folder, tmp_path / "a", "gray16", workers=0, quiet=True)


def test_eight_bit_gray_converts_to_rgb_keeping_every_id(tmp_path):
    ids = np.arange(256, dtype=np.uint8).reshape(16, 16)
    (tmp_path / "l" / "n01443537").mkdir(parents=True)
    Image.fromarray(ids, "L").save(tmp_path / "l" / "n01443537" / "x.png")
    assert convert_tree(tmp_path / "l", tmp_path / "rgb", "rgb", workers=0, quiet=True) == 1
    assert (read_mask(tmp_path / "rgb" / "n01443537" / "x.png") == ids).all()


@pytest.mark.parametrize("depth, ids", [(8, [0, 7, 50, 255]), (16, [0, 7, 50, IGNORE])])
def test_the_evaluators_hint_for_a_gray_mask_works(depth, ids, tmp_path):
    """check_png names the mask's kind and points at `convert --to rgb`; its output then passes."""
    mask = np.array([ids], dtype=np.uint8 if depth == 8 else np.uint16)
    (tmp_path / "gray").mkdir()
    Image.fromarray(mask).save(tmp_path / "gray" / "x.png")
    kind = "8-bit grayscale (L)" if depth == 8 else "16-bit grayscale (I;16)"
    with pytest.raises(UserError, match=rf"is a {re.escape(kind)} PNG.*`imagenets convert --to rgb`"):
        check_png(tmp_path / "gray" / "x.png")
    with pytest.raises(UserError, match=rf"is a {re.escape(kind)} PNG.*`imagenets convert --to rgb`"):
        read_mask(tmp_path / "gray" / "x.png")
    assert run_command(["convert", "--to", "rgb", "--input-dir", str(tmp_path / "gray"), "--output-dir",
                        str(tmp_path / "rgb"), "--quiet", "--workers", "0"]) == 0
    assert check_png(tmp_path / "rgb" / "x.png") == (4, 1)
    assert (read_mask(tmp_path / "rgb" / "x.png") == mask).all()


def test_palette_mask_is_named_and_not_sent_to_convert(tmp_path):
    Image.new("L", (4, 4), 3).convert("P").save(tmp_path / "p.png")
    with pytest.raises(UserError, match=r"palette \(P\) PNG, not RGB") as refused:
        check_png(tmp_path / "p.png")
    assert "convert --to rgb" not in str(refused.value)
    (tmp_path / "in").mkdir()
    (tmp_path / "p.png").rename(tmp_path / "in" / "p.png")
    with pytest.raises(UserError, match=r"p.png is a palette \(P\) PNG, not a grayscale one"):
        convert_tree(tmp_path / "in", tmp_path / "out", "rgb", workers=0, quiet=True)


def _two_bit_gray_png(values) -> bytes:
    """A 4x1 PNG of colour type 0 at 2 bits per pixel (Pillow cannot write one; it reads it as L)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = bytes([values[0] << 6 | values[1] << 4 | values[2] << 2 | values[3]])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 1, 2, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" + row)) + chunk(b"IEND", b""))


def test_low_bit_depth_gray_is_refused_not_rescaled(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.png").write_bytes(_two_bit_gray_png([0, 1, 2, 3]))
    with Image.open(tmp_path / "in" / "x.png") as image:
        assert image.mode == "L" and np.asarray(image).tolist() == [[0, 85, 170, 255]]  # Pillow rescales
    with pytest.raises(UserError, match="x.png is a 2-bit grayscale PNG"):
        convert_tree(tmp_path / "in", tmp_path / "out", "rgb", workers=0, quiet=True)
    assert not (tmp_path / "out" / "x.png").exists()


def test_output_inside_input_is_refused(masks, capsys):
    folder, _ = masks
    assert run_command(["convert", "--to", "gray16", "--input-dir", str(folder), "--output-dir",
                        str(folder / "gray")]) == 2
    assert "overlaps --input-dir" in capsys.readouterr().err
    assert not (folder / "gray").exists()


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
