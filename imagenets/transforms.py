"""Joint transforms for segmentation: each takes and returns ``(image, mask)`` and keeps them aligned.

Images are PIL images (or CxHxW float tensors after :class:`ToTensor`); masks are HxW int64 tensors
of ids, resized with nearest neighbours only and padded with IGNORE. ``mask`` may be None (test images).
Randomness comes from torch's generator, so DataLoader workers draw different crops. ``ImageNetS`` also
takes torchvision's v2 transforms: with torchvision loaded it hands them the mask as a ``tv_tensors.Mask``
(these transforms then get that subclass, and treat it as any tensor) and unwraps it afterwards.
"""

from __future__ import annotations

import numbers
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .idmaps import resize_nearest
from .subsets import IGNORE

Sample = Tuple[object, Optional[torch.Tensor]]
Size = Union[int, Tuple[int, int]]

#: ImageNet channel statistics, the usual normalisation.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def image_size(image) -> Tuple[int, int]:
    """(height, width) of a PIL image or a ...xHxW tensor."""
    if isinstance(image, Image.Image):
        return image.height, image.width
    return int(image.shape[-2]), int(image.shape[-1])


def _pair(size: Size) -> Tuple[int, int]:
    if isinstance(size, numbers.Integral):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)


def resize_mask(mask: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Nearest-neighbour resize of an id map (never blends ids)."""
    # torch's legacy nearest (as F.interpolate(mode="nearest")), computed on the ids themselves
    return torch.from_numpy(resize_nearest(mask.cpu().numpy(), h, w, "legacy")).to(mask.device)


class Compose:
    """Apply joint transforms in order."""

    def __init__(self, transforms: Sequence[Callable[..., Sample]]):
        self.transforms = list(transforms)

    def __call__(self, image, mask: Optional[torch.Tensor] = None) -> Sample:
        for transform in self.transforms:
            image, mask = transform(image, mask)
        return image, mask

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class Resize:
    """Shorter side to ``size`` (or exactly (h, w) for a pair); image bilinear, mask nearest."""

    def __init__(self, size: Size):
        self.size = size

    def target(self, h: int, w: int) -> Tuple[int, int]:
        if isinstance(self.size, numbers.Integral):
            scale = int(self.size) / min(h, w)
            return max(1, round(h * scale)), max(1, round(w * scale))
        return _pair(self.size)

    def __call__(self, image, mask: Optional[torch.Tensor] = None) -> Sample:
        h, w = self.target(*image_size(image))
        if isinstance(image, Image.Image):
            image = image.resize((w, h), Image.BILINEAR)
        else:
            image = F.interpolate(image[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        if mask is not None:
            mask = resize_mask(mask, h, w)
        return image, mask

    def __repr__(self) -> str:
        return f"Resize({self.size!r})"


def _crop(image, mask: Optional[torch.Tensor], top: int, left: int, h: int, w: int) -> Sample:
    if isinstance(image, Image.Image):
        image = image.crop((left, top, left + w, top + h))
    else:
        image = image[..., top:top + h, left:left + w]
    if mask is not None:
        mask = mask[top:top + h, left:left + w]
    return image, mask


def _pad(image, mask: Optional[torch.Tensor], h: int, w: int, fill: int) -> Sample:
    """Pad bottom/right to at least h x w: image with ``fill``, mask with IGNORE (padding is not scored)."""
    ih, iw = image_size(image)
    ph, pw = max(0, h - ih), max(0, w - iw)
    if not ph and not pw:
        return image, mask
    if isinstance(image, Image.Image):
        canvas = Image.new(image.mode, (iw + pw, ih + ph), (fill,) * len(image.getbands()))
        canvas.paste(image, (0, 0))
        image = canvas
    else:
        image = F.pad(image, (0, pw, 0, ph), value=float(fill))
    if mask is not None:
        mask = F.pad(mask, (0, pw, 0, ph), value=IGNORE)
    return image, mask


class _Crop:
    """An h x w window at ``offset``; smaller images are padded first (image with ``fill``, mask with IGNORE)."""

    def __init__(self, size: Size, fill: int = 0):
        self.size = _pair(size)
        self.fill = fill

    def offset(self, ih: int, iw: int) -> Tuple[int, int]:
        raise NotImplementedError

    def __call__(self, image, mask: Optional[torch.Tensor] = None) -> Sample:
        h, w = self.size
        image, mask = _pad(image, mask, h, w, self.fill)
        top, left = self.offset(*image_size(image))
        return _crop(image, mask, top, left, h, w)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.size!r})"


class RandomCrop(_Crop):
    """A random h x w window (torch's generator: DataLoader workers draw different ones)."""

    def offset(self, ih: int, iw: int) -> Tuple[int, int]:
        h, w = self.size
        return int(torch.randint(0, ih - h + 1, (1,))), int(torch.randint(0, iw - w + 1, (1,)))


class CenterCrop(_Crop):
    """The central h x w window."""

    def offset(self, ih: int, iw: int) -> Tuple[int, int]:
        h, w = self.size
        return (ih - h) // 2, (iw - w) // 2


class RandomHorizontalFlip:
    """Mirror image and mask together with probability ``p``."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, image, mask: Optional[torch.Tensor] = None) -> Sample:
        if float(torch.rand(())) >= self.p:
            return image, mask
        if isinstance(image, Image.Image):
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        else:
            image = image.flip(-1)
        if mask is not None:
            mask = mask.flip(-1)
        return image, mask

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class ToTensor:
    """PIL RGB image -> 3xHxW float tensor in [0, 1]; the mask passes unchanged."""

    def __call__(self, image, mask: Optional[torch.Tensor] = None) -> Sample:
        if isinstance(image, Image.Image):
            array = np.asarray(image.convert("RGB"), dtype=np.uint8)
            image = torch.from_numpy(array.copy()).permute(2, 0, 1).to(torch.float32).div_(255.0)
        return image, mask

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """(image - mean) / std per channel, on a tensor image (after ToTensor)."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        self.mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(std, dtype=torch.float32)[:, None, None]

    def __call__(self, image, mask: Optional[torch.Tensor] = None) -> Sample:
        if isinstance(image, Image.Image):
            raise TypeError("Normalize needs a tensor image: put ToTensor() before it")
        return (image - self.mean) / self.std, mask

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()})"


def training_transforms(crop: int = 224, resize: int = 256) -> Compose:
    """A typical segmentation training pipeline: resize, random crop, flip, tensor, normalise."""
    return Compose([Resize(resize), RandomCrop(crop), RandomHorizontalFlip(), ToTensor(), Normalize()])


def evaluation_transforms(resize: int = 256) -> Compose:
    """Resize the shorter side, tensor, normalise (no crop: score the whole image)."""
    return Compose([Resize(resize), ToTensor(), Normalize()])
