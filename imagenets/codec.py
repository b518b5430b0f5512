"""The ImageNet-S mask codec: a pixel's id is ``R + 256 * G`` of an RGB(A) PNG (B unused)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .errors import UserError
from .fileio import PathLike, atomic_path
from .subsets import IGNORE, OTHER

__all__ = ["OTHER", "IGNORE", "MAX_ID", "decode", "encode", "read_mask", "write_mask",
           "ENCODING_HINT", "CONVERT_HINT", "mode_name"]

#: Largest id an RGB mask can hold.
MAX_ID = 256 * 256 - 1

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
    ids = rgb[..., 1].astype(np.int32)  # one int32 array filled in place: fewer passes
    ids <<= 8
    ids |= rgb[..., 0]
    return ids


def encode(ids: np.ndarray) -> np.ndarray:
    """HxW ids in 0..65535 -> HxWx3 uint8 RGB array."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() > MAX_ID):
        raise ValueError(f"mask ids must lie in 0..{MAX_ID}")
    out = np.zeros(ids.shape + (3,), dtype=np.uint8)
    out[..., 0] = ids & 255
    out[..., 1] = (ids >> 8) & 255
    return out


def read_mask(path: PathLike) -> np.ndarray:
    """Decode a mask PNG into HxW int32 ids; bad files raise a UserError naming the file and fix."""
    path = Path(path)
    try:
        with Image.open(path) as im:
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
