"""``imagenets convert``: masks as single-channel 16-bit PNGs (the id itself) and back to RGB, lossless.

Many segmentation frameworks read labels from grayscale PNGs; ImageNet-S ids (up to 1000) need 16 bits.
``--to rgb`` also reads 8-bit grayscale (ids 0..255), the form many tools save.
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Tuple

import numpy as np
from PIL import Image

from .cli import Command, add_quiet_argument, add_workers_argument
from .codec import GRAY_MODES, MAX_ID, mode_name, open_image, png_header, read_mask, write_mask
from .errors import UserError, info, warn
from .device import cap_workers
from .fileio import atomic_path
from . import flags
from .progress import progress
from .walk import walk_files

TARGETS = ("gray16", "rgb")
GRAY_HINT = ("--to rgb reads single-channel PNGs whose pixel value is the id: 16-bit (any id) or "
             "8-bit (ids 0..255)")


def read_gray(path: Path) -> np.ndarray:
    """Ids of an 8- or 16-bit grayscale mask as int32; anything else is a UserError naming the file."""
    try:
        with open_image(path) as image:
            mode = image.mode
            if mode not in GRAY_MODES:
                raise UserError(f"{path} is a {mode_name(mode)} PNG, not a grayscale one: {GRAY_HINT}; "
                                "convert RGB masks with `imagenets convert --to gray16`")
            depth = png_header(path)[2] if mode == "L" else None
            if mode == "L" and depth != 8:
                # Pillow scales 1/2/4-bit grayscale up to 0..255: the ids would silently change.
                what = f"a {depth}-bit grayscale PNG"
                raise UserError(f"{path} is {what}: {GRAY_HINT}; re-save it as an 8- or 16-bit PNG")
            ids = np.asarray(image).astype(np.int64)
    except UserError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        raise UserError(f"cannot decode {path} ({exc}): the PNG is unreadable or corrupt; re-export it") from None
    if ids.size and (ids.min() < 0 or ids.max() > MAX_ID):
        raise UserError(f"{path} holds values outside 0..{MAX_ID}: {GRAY_HINT}")
    return ids.astype(np.int32)


def write_gray16(path: Path, ids: np.ndarray) -> None:
    """Write ids as a 16-bit grayscale PNG, atomically."""
    if ids.size and (ids.min() < 0 or ids.max() > MAX_ID):
        raise UserError(f"{path}: ids outside 0..{MAX_ID} do not fit a 16-bit PNG")
    with atomic_path(path) as tmp:
        Image.fromarray(ids.astype(np.uint16)).save(tmp, format="PNG")


def convert_one(source: Path, target: Path, to: str) -> None:
    """One mask, RGB -> gray16 or grayscale (8/16-bit) -> RGB; the ids do not change."""
    if to == "gray16":
        write_gray16(target, read_mask(source))
    else:
        write_mask(target, read_gray(source))


def find_masks(input_dir: Path) -> Tuple[List[Path], int]:
    """(every *.png under ``input_dir``, relative and sorted; number of other files)."""
    masks, others = [], 0
    for rel in walk_files(input_dir):
        if rel.lower().endswith(".png"):
            masks.append(Path(rel))
        elif not os.path.basename(rel).startswith("."):
            others += 1
    return masks, others


def convert_tree(input_dir: Path, output_dir: Path, to: str, workers: int = 2, quiet: bool = False) -> int:
    """Convert every PNG under ``input_dir`` into the same relative path under ``output_dir``."""
    if to not in TARGETS:
        raise UserError(f"--to {to!r}: use one of {', '.join(TARGETS)}")
    workers = cap_workers(workers, quiet)
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise UserError(f"--input-dir {input_dir} is not a directory: point it at a folder of mask PNGs")
    masks, others = find_masks(input_dir)
    if not masks:
        raise UserError(f"no .png files under --input-dir {input_dir}: point it at a folder of masks")
    if others:
        warn(f"{others} files under {input_dir} are not .png and were left out")

    def one(rel: Path) -> None:
        convert_one(input_dir / rel, output_dir / rel, to)

    with progress(total=len(masks), desc=f"to {to}", quiet=quiet, unit="mask") as bar:
        if workers <= 1:
            for rel in masks:
                one(rel)
                bar.update()
        else:
            # Threads suffice: PNG decoding/encoding and numpy release the GIL.
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for _ in pool.map(one, masks):
                    bar.update()
    return len(masks)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--to", required=True, choices=TARGETS,
                        help="gray16: RGB masks (id = R + 256*G) to single-channel 16-bit PNGs holding the "
                             "id; rgb: grayscale PNGs whose value is the id (16-bit, or 8-bit for ids 0..255; "
                             "an 8-bit 255 stays id 255, not the ignore id 1000) to the ImageNet-S RGB "
                             "encoding")
    flags.input_dir(parser, "--input-dir", required=True, metavar="DIR",
                    help="folder of mask PNGs (searched recursively)")
    flags.output_dir(parser, "--output-dir", required=True, metavar="DIR",
                     help="where the converted masks go, same relative paths (must not overlap --input-dir)")
    add_workers_argument(parser)
    add_quiet_argument(parser)


def run(args: argparse.Namespace) -> int:
    count = convert_tree(args.input_dir, args.output_dir, args.to, args.workers, args.quiet)
    info(f"converted {count} masks to {args.to} in {args.output_dir}", args.quiet)
    return 0


COMMAND = Command("convert", "convert masks between RGB (R + 256*G) and 16-bit grayscale PNGs, lossless",
                  add_arguments, run,
                  description="Convert ImageNet-S masks to single-channel 16-bit PNGs whose value is the id "
                              "(for frameworks that read grayscale labels), or 16- or 8-bit grayscale ones back to "
                              "RGB; ids are kept exactly.")

