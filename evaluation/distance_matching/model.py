"""Loading the researcher's backbone for distance matching: TorchScript file or ``module:factory``.

The module maps a normalised image batch ``(N,3,H,W)`` to a feature map ``(N,C,h,w)``.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import pickle
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import torch
from torch import nn

from imagenets.errors import UserError, warn

MODEL_HINT = ("MODEL is a TorchScript file (torch.jit.save) or `package.module:factory` naming a "
              "function that returns an nn.Module mapping (N,3,H,W) images to (N,C,h,w) features; "
              "ready ones: imagenets.evaluation.distance_matching.backbones:resnet50_features (PASS's checkpoints, needs "
              "torchvision) and imagenets.evaluation.distance_matching.backbones:vit_small16_tokens (DINO ViT-S/16, needs timm)")


def sha256_of_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (streamed)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _import_factory(spec: str) -> Tuple[object, str]:
    """Import ``package.module:factory``; returns (factory, identity of its source)."""
    module_name, _, attr = spec.rpartition(":")
    if not module_name or not attr:
        raise UserError(f"MODEL {spec!r} is malformed: {MODEL_HINT}")
    # A console script does not put the working directory on sys.path; users expect
    # `mymodels:make` to find ./mymodels.py as `python -m` would.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or an error raised while executing the module
        raise UserError(f"MODEL {spec!r}: cannot import {module_name} ({type(exc).__name__}: {exc}); "
                        "install it or run from the directory that holds it") from None
    factory = module
    for part in attr.split("."):
        if not hasattr(factory, part):
            raise UserError(f"MODEL {spec!r}: {module_name} has no attribute {attr!r}; "
                            "name the function that builds the model")
        factory = getattr(factory, part)
    if not callable(factory):
        raise UserError(f"MODEL {spec!r}: {attr} is not callable; name a function returning an nn.Module")
    identity = spec
    try:
        source = inspect.getsourcefile(module)
    except TypeError:
        source = None
    if source and os.path.isfile(source):
        # Editing the factory's code must invalidate cached embeddings.
        identity += "@" + sha256_of_file(Path(source))
    return factory, identity


def load_model(spec: str, device: torch.device) -> Tuple[nn.Module, str]:
    """Build the model named by ``spec`` on ``device`` in eval mode; returns (model, identity).

    The identity (TorchScript bytes' SHA-256, or the factory name plus its source's SHA-256)
    keys the embedding cache.
    """
    path = Path(spec)
    if path.is_file():
        try:
            model = torch.jit.load(str(path), map_location=device)
        except Exception as exc:
            raise UserError(f"MODEL {path} is not a loadable TorchScript file "
                            f"({type(exc).__name__}); {MODEL_HINT}") from None
        identity = "torchscript:" + sha256_of_file(path)
    elif ":" in spec and not spec.endswith((".pt", ".pth", ".ts")):
        factory, identity = _import_factory(spec)
        try:
            model = factory()
        except UserError:  # the factory's own explanation (e.g. a missing optional package)
            raise
        except Exception as exc:
            raise UserError(f"MODEL {spec!r}: calling the factory failed ({type(exc).__name__}: {exc}); "
                            "it must take no arguments and return an nn.Module") from None
        if not isinstance(model, nn.Module):
            raise UserError(f"MODEL {spec!r}: the factory returned {type(model).__name__}, not an "
                            "nn.Module; return the backbone itself")
        identity = "factory:" + identity
    else:
        raise UserError(f"MODEL {spec!r} is neither an existing file nor `package.module:factory`: "
                        f"{MODEL_HINT}")
    return model.to(device).eval(), identity


def load_tensors(path: Path) -> object:
    """``torch.load`` of tensors and plain containers only (never arbitrary pickled objects), on the CPU."""
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except TypeError:  # torch < 1.13 has no weights_only
        return torch.load(str(path), map_location="cpu")


def _read_state_dict(path: Path) -> Dict[str, torch.Tensor]:
    """Load ``path`` as a state dict: unwrap a ``state_dict`` key, strip ``module.`` prefixes."""
    if not path.is_file():
        raise UserError(f"--weights {path} not found: check the path")
    try:
        obj = load_tensors(path)
    except pickle.UnpicklingError:
        raise UserError(f"--weights {path} holds Python objects beyond tensors and plain containers; "
                        "re-save only the state dict: torch.save(model.state_dict(), FILE)") from None
    except Exception as exc:
        raise UserError(f"--weights {path} is not a torch checkpoint ({type(exc).__name__}); "
                        "save one with torch.save(model.state_dict(), FILE)") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise UserError(f"--weights {path} is not a state dict (a dict of name -> tensor, possibly "
                        "under a 'state_dict' key); save one with torch.save(model.state_dict(), FILE)")
    prefix = "module."
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in obj.items()}


def _first_few(names: List[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown + (", ..." if len(names) > limit else "")


def load_weights(model: nn.Module, path: Path) -> str:
    """Load a state dict file into ``model``; returns the file's SHA-256 (for the cache key).

    Missing/unexpected keys are a warning; no key in common, or a shape mismatch, is an error.
    """
    state = _read_state_dict(path)
    expected = set(model.state_dict())
    if not expected & set(state):
        raise UserError(f"--weights {path}: none of its {len(state)} keys (e.g. {_first_few(sorted(state))}) "
                        f"matches the model's (e.g. {_first_few(sorted(expected))}); "
                        "is it the checkpoint of this model?")
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines()[1:3]) or str(exc)
        raise UserError(f"--weights {path} does not fit the model: {detail}") from None
    missing = list(result.missing_keys)
    unexpected = list(result.unexpected_keys)
    if missing:
        warn(f"--weights {path}: {len(missing)} model parameters were not in the file and keep "
             f"their initial values ({_first_few(missing)})")
    if unexpected:
        warn(f"--weights {path}: {len(unexpected)} entries of the file were not used "
             f"({_first_few(unexpected)})")
    return sha256_of_file(path)
