"""Per-pixel confidence maps beside the predictions: where they lie, cheap header checks, decoding.

PASS (``inference_pixel_attention.py --test``) saves the confidence of each prediction as
``<wnid>/<name>.npy``: a float H x W array (its evaluator casts it to float32). We also read
16-bit grayscale PNGs, whose score is ``value / 65535``. A pixel is "other" at threshold ``t``
when ``float32(score) < float32(t)``, PASS's comparison.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
from PIL import Image

from imagenets.codec import check_regular
from imagenets.errors import UserError, first_few
from imagenets.fileio import same_file
from imagenets.progress import progress

from .inputs import COLOR_TYPES, Pair, png_header

#: Largest value of a 16-bit PNG score: value / PNG_SCALE is the score.
PNG_SCALE = 65535
FORMAT_HINT = ("scores are PASS's <wnid>/<name>.npy (a float H x W array, as saved by "
               "inference_pixel_attention.py --test) or a 16-bit grayscale <wnid>/<name>.png (score = value/65535)")


def score_path(scores_dir: Path, pair: Pair) -> Path:
    """The score file of a pair: ``wnid/X.npy`` if present, else ``wnid/X.png`` unless that is the prediction.

    PASS writes the ``.npy`` beside the prediction PNG, so ``--scores-dir`` may be ``--predict-dir``.
    """
    stem = os.path.splitext(pair.name)[0]
    npy = Path(scores_dir) / f"{stem}.npy"
    png = Path(scores_dir) / f"{stem}.png"
    if os.path.isfile(npy) or not os.path.isfile(png) or same_file(png, pair.pred):
        return npy
    return png


def npy_header(path: Path) -> Tuple[Tuple[int, ...], np.dtype]:
    """(shape, dtype) from a ``.npy`` header, without reading the data."""
    check_regular(path)
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, _fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    except ValueError as exc:
        raise UserError(f"{path} is not a readable .npy file ({exc}): {FORMAT_HINT}") from None
    return tuple(shape), dtype


def check_score_header(path: Path, size: Tuple[int, int]) -> None:
    """Format, dtype and size of one score file from its header; ``size`` = (width, height) of the GT."""
    width, height = size
    if path.suffix == ".npy":
        shape, dtype = npy_header(path)
        if dtype.kind != "f":
            raise UserError(f"{path} holds {dtype} values, not floats: {FORMAT_HINT}")
        if shape != (height, width):
            raise UserError(f"{path} has shape {shape} but its ground truth is {height} x {width} "
                            f"(height x width): save one score per pixel of the original image")
        return
    w, h, depth, color = png_header(path)
    if color != 0 or depth != 16:
        kind = f"{depth}-bit {COLOR_TYPES.get(color, f'colour type {color}')}"
        raise UserError(f"{path} is a {kind} PNG, not a 16-bit grayscale score map (is --scores-dir the "
                        f"prediction folder without the .npy files?): {FORMAT_HINT}")
    if (w, h) != (width, height):
        raise UserError(f"{path} is {w}x{h} but its ground truth is {width}x{height} (width x height): "
                        "save one score per pixel of the original image")


def check_scores(pairs: Sequence[Pair], scores_dir: Path, quiet: bool = False) -> List[Path]:
    """The score file of every pair, all present and with sane headers; checked before any decoding."""
    if not Path(scores_dir).is_dir():
        raise UserError(f"--scores-dir {scores_dir} is not a directory: check the path")
    paths = [score_path(scores_dir, pair) for pair in pairs]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise UserError(f"{len(missing)} of {len(paths)} score files are missing (first: "
                        f"{first_few(missing)}): {FORMAT_HINT}; "
                        "one per listed image under --scores-dir")
    for pair, path in progress(list(zip(pairs, paths)), desc="checking score headers", quiet=quiet, unit="img"):
        width, height, _depth, _color = png_header(pair.gt)
        check_score_header(path, (width, height))
    return paths


def read_scores(path: Path, shape: Tuple[int, int]) -> np.ndarray:
    """Decode a score file: float32 H x W (``.npy``) or the raw uint16 values (PNG; score = value/65535)."""
    try:
        if path.suffix == ".npy":
            scores = np.load(path, allow_pickle=False)
        else:
            with Image.open(path) as im:
                if im.mode not in ("I;16", "I;16B", "I;16L", "I"):
                    raise UserError(f"{path} is a {im.mode} image, not a 16-bit grayscale score map: {FORMAT_HINT}")
                scores = np.asarray(im)
    except UserError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        raise UserError(f"cannot decode {path} ({exc}): the file is unreadable or corrupt; re-export it") from None
    if scores.shape != tuple(shape):
        raise UserError(f"{path} has shape {scores.shape} but its prediction is {shape[0]} x {shape[1]} "
                        "(height x width): save one score per pixel of the original image")
    if path.suffix != ".npy":
        # Pillow builds before 10 decode 16-bit grayscale as int32 mode "I".
        return np.ascontiguousarray(scores, dtype=np.uint16)
    if scores.dtype.kind != "f":
        raise UserError(f"{path} holds {scores.dtype} values, not floats: {FORMAT_HINT}")
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    if np.isnan(scores.max()):  # max propagates NaN: one fast pass finds any
        raise UserError(f"{path} holds {int(np.isnan(scores).sum())} NaN scores: every pixel needs a "
                        "number (-inf makes a pixel 'other' at every threshold)")
    return scores


def as_float(scores: np.ndarray) -> np.ndarray:
    """The float32 scores of :func:`read_scores` output (PNG values divided by 65535 in float32)."""
    if scores.dtype == np.float32:
        return scores
    return scores.astype(np.float32) / np.float32(PNG_SCALE)


def below(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean H x W: the pixels that become "other" (0) at ``threshold``."""
    return as_float(scores) < np.float32(threshold)
