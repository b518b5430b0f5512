"""Distance matching, shared image pipeline and step 1: per-label mean embeddings from train-semi.

Every image is resized (shorter side 256, bilinear) and normalised with ImageNet's mean/std;
the model's feature map is upsampled 4x (bilinear). Label maps are resized by nearest neighbour,
sampling cell centres (ours) or as torch's legacy ``F.interpolate(mode="nearest")`` (PASS's).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from imagenets.codec import open_image, read_mask
from imagenets.errors import UserError, info, warn
from imagenets.fileio import atomic_path, file_stamp
from imagenets.progress import progress
from imagenets.idmaps import resize_nearest
from imagenets.subsets import IGNORE

from .model import first_line, load_tensors, traceback_module
from imagenets.transforms import IMAGENET_MEAN, IMAGENET_STD

SHORT_SIDE = 256
UPSAMPLE = 4
#: Bump when the preprocessing or the embedding recipe changes: old caches then miss.
RECIPE_VERSION = 1
#: Nearest-neighbour rule of each --compat: "centre" samples each target cell's centre;
#: "legacy" is torch's F.interpolate(mode="nearest"), as PASS resizes masks and label maps.
SAMPLING = {"ours": "centre", "pass": "legacy"}

_BILINEAR = getattr(Image, "Resampling", Image).BILINEAR


def resized_size(width: int, height: int, short_side: int = SHORT_SIDE) -> Tuple[int, int]:
    """(width, height) with the shorter side scaled to ``short_side``, aspect ratio kept."""
    if width <= height:
        return short_side, max(1, int(short_side * height / width))
    return max(1, int(short_side * width / height)), short_side


def load_image(path: Path) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Decode, resize and normalise an image: ((3,H,W) float tensor, original (height, width))."""
    try:
        with open_image(path) as im:
            im = im.convert("RGB")
    except FileNotFoundError:
        raise UserError(f"image {path} not found: check --dataset") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise UserError(f"cannot decode image {path} ({exc}): re-extract it") from None
    width, height = im.size
    size = resized_size(width, height)
    if size != (width, height):
        im = im.resize(size, _BILINEAR)
    pixels = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (pixels - mean) / std, (height, width)


class ImageSet(Dataset):
    """Images (and optionally their masks) decoded in DataLoader workers.

    Errors travel back as text, so the main process raises one clean UserError.
    """

    def __init__(self, images: Sequence[Path], masks: Optional[Sequence[Path]] = None):
        self.images = list(images)
        self.masks = list(masks) if masks is not None else None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Dict[str, object]:
        try:
            image, size = load_image(self.images[index])
            mask = read_mask(self.masks[index]) if self.masks is not None else None
        except UserError as exc:
            return {"index": index, "error": str(exc)}
        return {"index": index, "image": image, "size": size, "mask": mask}


def _as_list(items: List[Dict[str, object]]) -> List[Dict[str, object]]:
    return items


def iterate_images(dataset: ImageSet, batch_size: int, workers: int):
    """Yield lists of decoded items (in order); a decoding error becomes a UserError here."""
    loader = DataLoader(dataset, batch_size=max(1, batch_size), shuffle=False,
                        num_workers=max(0, workers), collate_fn=_as_list)
    for batch in loader:
        for item in batch:
            if "error" in item:
                raise UserError(str(item["error"]))
        yield batch


def feature_maps(model: nn.Module, images: List[torch.Tensor], device: torch.device,
                 describe: str) -> List[torch.Tensor]:
    """Run the model: one (C, h, w) float feature map per image, in input order.

    Images of the same size go through the model together.
    """
    groups: Dict[Tuple[int, ...], List[int]] = {}
    for position, image in enumerate(images):
        groups.setdefault(tuple(image.shape), []).append(position)
    result: List[Optional[torch.Tensor]] = [None] * len(images)
    for positions in groups.values():
        batch = torch.stack([images[p] for p in positions]).to(device)
        with torch.inference_mode():
            try:
                out = model(batch)
            except Exception as exc:
                origin = traceback_module(exc.__traceback__)
                raise UserError(f"MODEL failed on {describe}, a batch of shape {tuple(batch.shape)} "
                                f"({type(exc).__name__}{f' in {origin}' if origin else ''}: "
                                f"{first_line(exc)}); "
                                "distance matching feeds whole images of any size (shorter side 256)") from None
            check_features(out, batch, describe)
        for row, position in enumerate(positions):
            result[position] = out[row].float()
    return result  # type: ignore[return-value]


def check_features(out: object, batch: torch.Tensor, describe: str) -> None:
    """One (N,C,h,w) map of finite numbers with C, h, w >= 1, or a one-line refusal (nothing is cached)."""
    if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[0] != batch.shape[0]:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(f"MODEL returned {got} for a batch of shape {tuple(batch.shape)}; "
                        "it must return one (N,C,h,w) feature map tensor (wrap it to pick "
                        "the right output)")
    if out.device.type == "meta":
        raise UserError(f"MODEL returned a tensor on the 'meta' device (a shape without values) for {describe}: "
                        "build the model's weights on the CPU or a GPU (e.g. no device='meta' or "
                        "init_empty_weights left in the factory)")
    if min(out.shape[1:]) < 1:
        raise UserError(f"MODEL returned an empty feature map {tuple(out.shape)} for {describe} (shape "
                        f"{tuple(batch.shape)}): it needs at least one channel and one cell; is the "
                        "model cut at the right layer?")
    if not out.is_floating_point() and not out.is_complex():
        return
    bad = ~torch.isfinite(out)
    if bool(bad.any()):
        raise UserError(f"MODEL returned {int(bad.sum())} NaN or infinite feature values (of "
                        f"{out.numel()}) for {describe}: check the model and --weights (e.g. a "
                        "checkpoint of a diverged run, or half precision overflowing); nothing was cached")
    # Similarities are cosines in float32: a feature whose length overflows would be normalised to 0
    # (every vote a tie), and a region's mean of such features to infinity.
    if not bool(torch.isfinite(out.float().square().sum(dim=1)).all()):
        raise UserError(f"MODEL returned features too large for float32 for {describe} (largest "
                        f"|value| {float(out.abs().max()):.3g}): their length overflows; scale them down "
                        "(e.g. normalise them in the model); nothing was cached")


def upsample(features: torch.Tensor) -> torch.Tensor:
    """(C, h, w) -> (C, 4h, 4w), bilinear."""
    height, width = features.shape[-2:]
    return F.interpolate(features[None], size=(height * UPSAMPLE, width * UPSAMPLE),
                         mode="bilinear", align_corners=False)[0]


# ---- step 1: the embedding bank -------------------------------------------------------

@dataclass
class Bank:
    """Class embeddings (E, C) and their labels (E,)."""

    embeddings: torch.Tensor
    labels: torch.Tensor


def label_means(features: torch.Tensor, mask: np.ndarray, num_classes: int,
                rule: str = "centre") -> Tuple[torch.Tensor, torch.Tensor, int]:
    """Mean feature of each label 0..K present in ``mask`` (resized to the feature map by ``rule``).

    Returns (means (L,C), labels (L,), number of pixels with ids outside 0..K and not 1000).
    """
    channels, height, width = features.shape
    ids = torch.from_numpy(resize_nearest(mask, height, width, rule).astype(np.int64)).to(features.device)
    ids = ids.reshape(-1)
    valid = (ids >= 0) & (ids <= num_classes)
    strays = int(((~valid) & (ids != IGNORE)).sum())
    labels, inverse = torch.unique(ids[valid], return_inverse=True)
    flat = features.reshape(channels, -1)[:, valid].t()
    sums = torch.zeros(len(labels), channels, device=features.device).index_add_(0, inverse, flat)
    counts = torch.bincount(inverse, minlength=len(labels)).clamp_min(1).to(sums.dtype)
    return sums / counts[:, None], labels, strays


@torch.inference_mode()
def build_bank(model: nn.Module, images: Sequence[Path], masks: Sequence[Path], num_classes: int,
               device: torch.device, batch_size: int, workers: int, quiet: bool,
               rule: str = "centre") -> Bank:
    """Step 1: one embedding per (train-semi image, label present except 1000); masks are
    resized to the upsampled feature map by ``rule``."""
    dataset = ImageSet(images, masks)
    chunks: List[torch.Tensor] = []
    chunk_labels: List[torch.Tensor] = []
    strays: List[str] = []
    resized: List[str] = []
    bar = progress(total=len(dataset), desc="embeddings (train-semi)", quiet=quiet, unit="img")
    for batch in iterate_images(dataset, batch_size, workers):
        tensors = [item["image"] for item in batch]
        maps = feature_maps(model, tensors, device, describe=str(images[batch[0]["index"]]))
        for item, features in zip(batch, maps):
            mask = item["mask"]
            if mask.shape != tuple(item["size"]):
                resized.append(str(masks[item["index"]]))
            means, labels, stray = label_means(upsample(features), mask, num_classes, rule)
            if stray:
                strays.append(str(masks[item["index"]]))
            chunks.append(means.cpu())
            chunk_labels.append(labels.cpu())
        bar.update(len(batch))
    bar.close()
    if strays:
        warn(f"{len(strays)} train-semi masks hold ids outside 0..{num_classes} (and not {IGNORE}); "
             f"those pixels were skipped (first: {strays[0]})")
    if resized:
        warn(f"{len(resized)} train-semi masks differ in size from their image; they were resized "
             f"to the feature map anyway (first: {resized[0]})")
    if not chunks or sum(len(c) for c in chunks) == 0:
        raise UserError("the train-semi masks gave no embedding at all (every pixel is 1000 or out of "
                        "range): check the train-semi-segmentation folder")
    return Bank(torch.cat(chunks), torch.cat(chunk_labels))


def file_stamps(paths: Sequence[Path]) -> Tuple[List[List[int]], List[Path]]:
    """Each file's stamp for the cache key (``fileio.file_stamp``: size, times, inode, so a file replaced
    with ``cp -p`` or ``rsync -a`` changes it), plus the files that are missing."""
    stamps: List[List[int]] = []
    missing: List[Path] = []
    for path in paths:
        try:
            stamps.append(file_stamp(path))
        except OSError:
            missing.append(path)
    return stamps, missing


def bank_key(model_identity: str, weights_digest: Optional[str], mode: str, names: Sequence[str],
             stamps: Sequence[Sequence[int]], rule: str = "centre") -> str:
    """SHA-256 over everything the bank depends on: model, weights, subset, files and recipe."""
    payload = {"recipe": RECIPE_VERSION, "model": model_identity, "weights": weights_digest,
               "mode": mode, "names": list(names), "stamps": [list(s) for s in stamps]}
    if rule != "centre":  # keys of the default rule stay as they were: existing caches still hit
        payload["mask_sampling"] = rule
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


def cache_path(out_dir: Path, key: str) -> Path:
    return out_dir / f"embeddings-{key[:16]}.pt"


def load_cached_bank(out_dir: Path, key: str) -> Optional[Bank]:
    """The cached bank for ``key``, or None when absent or unreadable (then it is rebuilt)."""
    path = cache_path(out_dir, key)
    if not path.is_file():
        return None
    try:
        saved = load_tensors(path)
    except UserError:
        raise
    except Exception:
        warn(f"embedding cache {path} is unreadable; rebuilding it")
        return None
    if not isinstance(saved, dict) or saved.get("key") != key:
        return None
    embeddings, labels = saved.get("embeddings"), saved.get("labels")
    if not (isinstance(embeddings, torch.Tensor) and isinstance(labels, torch.Tensor)
            and embeddings.dim() == 2 and embeddings.shape[0] == labels.shape[0] > 0
            and embeddings.shape[1] > 0 and bool(torch.isfinite(embeddings).all())):
        warn(f"embedding cache {path} holds no usable embeddings (empty, misshapen or not finite); "
             "rebuilding it")
        return None
    return Bank(embeddings, labels)


def save_bank(out_dir: Path, key: str, bank: Bank, quiet: bool) -> Path:
    """Write the bank atomically to ``OUT/embeddings-<key>.pt``."""
    path = cache_path(out_dir, key)
    with atomic_path(path) as tmp:
        torch.save({"key": key, "embeddings": bank.embeddings, "labels": bank.labels}, str(tmp))
    info(f"embeddings: {len(bank.labels)} saved to {path}", quiet)
    return path
