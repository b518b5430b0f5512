"""Ready backbones for distance matching: ResNets cut before pooling and ViT patch tokens.

Use them as ``--model imagenets.evaluation.distance_matching.backbones:resnet50_features`` (PASS's checkpoints) or
``--model imagenets.evaluation.distance_matching.backbones:vit_small16_tokens`` (DINO ViT-S/16), with ``--weights FILE``.
The factories import torchvision or timm only when called; neither is a dependency of imagenets.
The wrappers also take a module built elsewhere, e.g. from DINO's own ``vision_transformer.py``:
``def make(): return PatchTokens(vit_small(patch_size=16))`` in your file, then ``--model file:make``.
"""

from __future__ import annotations

import importlib
from typing import Any, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn

from imagenets.errors import UserError

from .model import import_failure

HERE = "imagenets.evaluation.distance_matching.backbones"
#: What to install: torch and torchvision must be builds made for each other (README, Ready backbones).
INSTALL_HINT = ("install torchvision and torch builds released together, e.g. `pip install torch==2.14.1 "
                "torchvision==0.29.1`, plus timm for ViTs (README, Ready backbones)")


def _require(package: str, factory: str) -> Any:
    """Import an optional package, or say in one line which package failed to import and why."""
    try:
        return importlib.import_module(package)
    except Exception as exc:  # not installed, or installed and broken (e.g. a torchvision of another torch build)
        if isinstance(exc, ModuleNotFoundError) and exc.name == package:
            raise UserError(f"MODEL {HERE}:{factory} needs {package}, which is not installed (it is not a "
                            f"dependency of imagenets): {INSTALL_HINT}") from None
        raise UserError(f"MODEL {HERE}:{factory} needs {package}, and {import_failure(package, exc)}") from None


class ResNetFeatures(nn.Module):
    """A torchvision-style ResNet up to its last residual stage: (N,3,H,W) -> (N,2048,H/32,W/32).

    Keeps the children before ``avgpool`` under their own names, so a ResNet state dict (PASS's
    checkpoints, torchvision's) loads as is; its ``fc`` entries are reported unused.
    """

    def __init__(self, resnet: nn.Module):
        super().__init__()
        names = [name for name, _ in resnet.named_children()]
        if "avgpool" not in names:
            raise UserError(f"{type(resnet).__name__} has no 'avgpool' child: ResNetFeatures cuts a "
                            "torchvision-style ResNet (conv1 ... layer4, avgpool, fc) before its pooling")
        for name, child in resnet.named_children():
            if name == "avgpool":
                break
            self.add_module(name, child)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = images
        for child in self.children():
            out = child(out)
        return out


class PatchTokens(nn.Module):
    """A ViT's last-layer patch tokens as a feature map: (N,3,H,W) -> (N,C,ceil(H/p),ceil(W/p)).

    Images are padded at the right and bottom to whole patches (zeros, the mean colour once
    normalised, as timm's ``dynamic_img_pad``), so every pixel is seen and the grid covers the image
    as a ResNet's stride-32 grid does (ceil(W/32) cells); the ViT must interpolate its position
    embeddings to any grid (timm: ``dynamic_img_size=True``; DINO's own ViT does).
    Calls ``forward_features`` (timm), else ``get_intermediate_layers(x, 1)`` (DINO), else the
    module itself; each must give (N, T, C) tokens, the CLS (and any register) tokens first.
    The state dict is the ViT's own, so its checkpoints load without renaming.
    """

    def __init__(self, vit: nn.Module, patch_size: Optional[int] = None):
        super().__init__()
        self.vit = vit
        self.patch_size = int(patch_size or _patch_size(vit))

    def _tokens(self, images: torch.Tensor) -> torch.Tensor:
        if hasattr(self.vit, "forward_features"):
            return self.vit.forward_features(images)
        if hasattr(self.vit, "get_intermediate_layers"):
            return self.vit.get_intermediate_layers(images, 1)[-1]
        return self.vit(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        rows, cols = -(-height // self.patch_size), -(-width // self.patch_size)  # ceil
        padded = F.pad(images, (0, cols * self.patch_size - width, 0, rows * self.patch_size - height))
        tokens = self._tokens(padded)
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 3 or tokens.shape[1] < rows * cols:
            got = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
            raise ValueError(f"expected (N, T, C) tokens with T >= {rows}x{cols} patches, got {got}")
        patches = tokens[:, tokens.shape[1] - rows * cols:]  # drop the leading CLS/register tokens
        return patches.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], rows, cols)

    # The ViT's own keys (no "vit." prefix): checkpoints load as they were saved.
    def state_dict(self, *args, **kwargs):  # type: ignore[override]
        return self.vit.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True,  # type: ignore[override]
                        **kwargs):
        return self.vit.load_state_dict(state_dict, strict=strict, **kwargs)


def _patch_size(vit: nn.Module) -> int:
    size = getattr(getattr(vit, "patch_embed", None), "patch_size", None)
    if isinstance(size, (tuple, list)):
        if len(set(size)) != 1:
            raise UserError(f"non-square patches {tuple(size)} are not supported")
        size = size[0]
    if not isinstance(size, int):
        raise UserError(f"{type(vit).__name__} has no patch_embed.patch_size: "
                        "give PatchTokens(vit, patch_size=...)")
    return size


def resnet_features(arch: str = "resnet50", model: Optional[nn.Module] = None) -> ResNetFeatures:
    """``model`` (or torchvision's ``arch``, untrained: load --weights) cut before its pooling."""
    if model is None:
        torchvision = _require("torchvision", f"{arch}_features")
        model = getattr(torchvision.models, arch)()
    return ResNetFeatures(model)


def resnet50_features() -> ResNetFeatures:
    """ResNet-50 features, the backbone of PASS's checkpoints (needs torchvision)."""
    return resnet_features("resnet50")


def vit_tokens(name: str = "vit_small_patch16_224", model: Optional[nn.Module] = None) -> PatchTokens:
    """Patch tokens of ``model`` (or timm's ``name``, untrained: load --weights), at any image size."""
    if model is None:
        timm = _require("timm", "vit_small16_tokens")
        try:
            model = timm.create_model(name, pretrained=False, num_classes=0, dynamic_img_size=True)
        except TypeError:
            raise UserError("timm is too old for images of any size (dynamic_img_size): "
                            "pip install 'timm>=0.9'") from None
    return PatchTokens(model)


def vit_small16_tokens() -> PatchTokens:
    """ViT-S/16 patch tokens (timm), for DINO's ``dino_deitsmall16_pretrain.pth`` (needs timm)."""
    return vit_tokens("vit_small_patch16_224")
