"""The ImageNet-S mask codec: a pixel's id is ``R + 256 * G`` of an RGB(A) PNG (B unused)."""

from __future__ import annotations

import os
import stat
import struct
import warnings
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
from PIL import Image

from .errors import UserError
from .fileio import PathLike, atomic_path
from .subsets import IGNORE, OTHER

__all__ = ["OTHER", "IGNORE", "MAX_ID", "MAX_PIXELS", "decode", "encode", "open_image", "read_mask",
           "write_mask", "ENCODING_HINT", "CONVERT_HINT", "mode_name"]

#: Largest id an RGB mask can hold.
MAX_ID = 256 * 256 - 1

#: Largest image (width * height) the toolbox reads: ten times ImageNet's largest (about 6.3 million
#: pixels), yet a fifth of the memory of Pillow's own bomb limit. Checked from the header, by name.
MAX_PIXELS = 64_000_000
# Pillow's check sits at our limit, so it still stops any image opened elsewhere at twice it; its warning
# between the two is replaced by our one-line refusal (open_image, check_png), so it is silenced.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

ENCODING_HINT = ("ImageNet-S masks are RGB (or RGBA) PNGs whose pixel id is R + 256*G "
                 "(id i is written as the colour (i % 256, i // 256, 0))")

#: The fix for a grayscale mask whose pixel value is the id (what ``imagenets convert --to rgb`` reads).
CONVERT_HINT = "if its pixel value is the id, re-save it so with `imagenets convert --to rgb`"
#: Pillow's modes as messages name them; a 16-bit grayscale PNG opens as I;16 (older Pillow: I).
MODE_NAMES = {"1": "1-bit black-and-white (1)", "L": "8-bit grayscale (L)", "LA": "grayscale+alpha (LA)",
              "P": "palette (P)", "PA": "palette+alpha (PA)", "I;16": "16-bit grayscale (I;16)",
              "I;16B": "16-bit grayscale (I;16)", "I;16L": "16-bit grayscale (I;16)",
              "I": "16-bit grayscale (I;16)", "CMYK": "CMYK"}
#: The modes ``imagenets convert --to rgb`` turns into RGB masks.
GRAY_MODES = ("L", "I;16", "I;16B", "I;16L", "I")


def mode_name(mode: str) -> str:
    """How a message names a Pillow mode (``I;16`` -> ``16-bit grayscale (I;16)``)."""
    return MODE_NAMES.get(mode, mode)


def decode(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 (or x4) uint8 array -> HxW int32 ids ``R + 256*G``."""
    if rgb.strides[-1] != 1:
        rgb = np.ascontiguousarray(rgb)
    # R and G are adjacent bytes: read as one little-endian uint16 per pixel, then widened in one pass
    # (a third of the time of shifting and or-ing two channels).
    return rgb[..., :2].view("<u2")[..., 0].astype(np.int32)


def encode(ids: np.ndarray) -> np.ndarray:
    """HxW ids in 0..65535 -> HxWx3 uint8 RGB array."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() > MAX_ID):
        raise ValueError(f"mask ids must lie in 0..{MAX_ID}")
    out = np.zeros(ids.shape + (3,), dtype=np.uint8)
    out[..., 0] = ids & 255
    out[..., 1] = (ids >> 8) & 255
    return out


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_regular(path: PathLike) -> None:
    """UserError unless ``path`` is a regular file (links followed): a FIFO would block the reader forever,
    a device (``/dev/zero``) never end. A missing file is left to the caller's own message."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode):
        raise UserError(f"{path} is not a regular file (a folder, FIFO or device): put the image file there")


def png_header(path: PathLike) -> Tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) from the IHDR chunk; UserError if not a PNG."""
    check_regular(path)
    try:
        with open(path, "rb") as f:
            head = f.read(33)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    if len(head) < 33 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        raise UserError(f"{path} is not a PNG file (or is truncated/corrupt): re-export it as an RGB PNG")
    width, height, depth, color = struct.unpack(">IIBB", head[16:26])
    return width, height, depth, color


def too_large(path: PathLike, size: Optional[Tuple[int, int]] = None) -> UserError:
    """The refusal of an image above MAX_PIXELS (``size``: its (width, height), when known)."""
    what = f"{size[0]}x{size[1]} = {size[0] * size[1]:,} pixels" if size else "too many pixels"
    return UserError(f"{path} has {what}, more than the {MAX_PIXELS:,} the toolbox reads (ImageNet's largest "
                     "image has about 6.3 million): check the file, or downscale it to its image's size")


def open_image(path: PathLike) -> Image.Image:
    """``Image.open`` (reads the header only) within MAX_PIXELS; a larger image is a UserError naming it."""
    if isinstance(path, (str, os.PathLike)):
        check_regular(path)
    try:
        image = Image.open(path)
    except Image.DecompressionBombError:  # over twice the limit: Pillow refused before giving the size
        try:
            size: Optional[Tuple[int, int]] = png_header(path)[:2]
        except (UserError, TypeError):  # not a PNG, or not a path
            size = None
        raise too_large(path, size) from None
    if image.width * image.height > MAX_PIXELS:
        image.close()
        raise too_large(path, image.size)
    return image


def read_mask(path: PathLike) -> np.ndarray:
    """Decode a mask PNG into HxW int32 ids; bad files raise a UserError naming the file and fix."""
    path = Path(path)
    try:
        with open_image(path) as im:
            mode = im.mode
            if mode not in ("RGB", "RGBA"):
                fix = CONVERT_HINT if mode in GRAY_MODES else "re-save it as RGB in that encoding"
                raise UserError(f"{path} is a {mode_name(mode)} PNG, not RGB: {ENCODING_HINT}; {fix}")
            arr = np.asarray(im)
    except FileNotFoundError:
        raise UserError(f"mask {path} not found: check the directory") from None
    except UserError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        raise UserError(f"cannot decode {path} ({exc}): the PNG is unreadable or corrupt; "
                        "re-export it") from None
    return decode(arr)


def write_mask(path: PathLike, ids: np.ndarray) -> None:
    """Write ids as an RGB PNG, atomically (temporary name, then rename)."""
    rgb = encode(ids)
    with atomic_path(path) as tmp:
        Image.fromarray(rgb, "RGB").save(tmp, format="PNG")
