"""Loading the researcher's backbone for distance matching: TorchScript file or ``module:factory``.

The module maps a normalised image batch ``(N,3,H,W)`` to a feature map ``(N,C,h,w)``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import pickle
import re
import sys
from pathlib import Path
from types import TracebackType
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from imagenets.errors import UserError, failing_module, first_few, warn

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


# ---- naming what failed: which package, which build --------------------------------------------

def _top(module: str) -> str:
    return module.split(".")[0]


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message ("" when it has none): what a one-line error quotes."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def installed_version(package: str) -> str:
    """``package``'s version as it says itself (``version.py``, which keeps the build tag such as
    ``+cu130``) without importing it, else its distribution's; "" when unknown."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        try:
            text = (Path(folder) / "version.py").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
        if found:
            return found.group(1)
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return ""


def torch_pin(package: str) -> Optional[str]:
    """The torch version ``package``'s distribution requires exactly (``torch==X``), if any."""
    try:
        requires = importlib.metadata.requires(package) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for line in requires:
        found = re.match(r"torch\s*\(?\s*==\s*([^\s,;)]+)", line)
        if found and "extra" not in line:
            return found.group(1)
    return None


def build_mismatch(package: str) -> str:
    """Why ``package`` may not load beside this torch ("" when nothing tells): another torch version
    pinned, or the same version in another build (PyPI's Linux torchvision is a CUDA build)."""
    if package == "torch":
        return ""
    version, pin = installed_version(package), torch_pin(package)
    here = torch.__version__
    base, _, local = here.partition("+")
    if pin and pin.partition("+")[0] != base:
        return f"{package} {version} is built for torch {pin}, and this Python has torch {here}"
    other_local = version.partition("+")[2]
    if local and other_local and local != other_local:
        return (f"{package} {version} is a +{other_local} build and torch {here} a +{local} one: "
                "builds that do not go together")
    return ""


def import_failure(package: str, exc: BaseException) -> str:
    """One line on why importing ``package`` failed: which package broke, how, and the fix."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        missing = _top(exc.name)
        if missing == package:
            return f"{package} is not installed"
        return f"{package} needs {missing}, which is not installed: install it"
    culprit = _top(failing_module(exc.__traceback__) or package)
    reason = first_line(exc)
    version = installed_version(culprit)
    where = f"{culprit} {version}".strip()
    said = f"importing {package} failed inside {where}" if culprit != package else f"{where} failed to import"
    mismatch = build_mismatch(culprit)
    fix = (f"{mismatch}; install torch and {culprit} builds made for each other into one environment "
           "(see the README, Ready backbones)") if mismatch else f"reinstall {culprit}"
    return f"{said} ({type(exc).__name__}: {reason}): {fix}"


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
        raise UserError(f"MODEL {spec!r}: {_module_failure(module_name, exc)}") from None
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


def _module_failure(module_name: str, exc: BaseException) -> str:
    """The user's module could not be imported: not found, its own code raised, or a package it imports broke."""
    if isinstance(exc, ModuleNotFoundError) and exc.name and (module_name + ".").startswith(exc.name + "."):
        return (f"cannot import {module_name}: no such module; install it or run from the directory "
                "that holds it")
    culprit = failing_module(exc.__traceback__)
    if isinstance(exc, ModuleNotFoundError) or (culprit and _top(culprit) != _top(module_name)):
        return import_failure(module_name, exc)
    return f"cannot import {module_name}: its code raised {type(exc).__name__}: {first_line(exc)}"


def _call_factory(spec: str, factory) -> object:
    """Call the factory; a failure names where it happened, and its own explanation passes unwrapped."""
    try:
        inspect.signature(factory).bind()
    except TypeError:
        raise UserError(f"MODEL {spec!r}: the factory needs arguments; name a function that takes none "
                        "and returns the nn.Module (wrap yours: def make(): return build(...))") from None
    except ValueError:  # no signature to inspect (a builtin): just call it
        pass
    try:
        return factory()
    except UserError:  # the factory's own explanation (e.g. a missing optional package)
        raise
    except Exception as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            raise UserError(f"MODEL {spec!r}: the factory imports {exc.name}, which is not installed: "
                            "install it") from None
        culprit = failing_module(exc.__traceback__)
        if culprit:  # an import inside the factory broke: name the package, not the factory
            raise UserError(f"MODEL {spec!r}: the factory imports {_top(culprit)}, and "
                            f"{import_failure(_top(culprit), exc)}") from None
        origin = traceback_module(exc.__traceback__)
        raise UserError(f"MODEL {spec!r}: the factory raised {type(exc).__name__}"
                        f"{f' in {origin}' if origin else ''}: {first_line(exc)}") from None


def traceback_module(tb: Optional[TracebackType]) -> Optional[str]:
    """The module of a traceback's innermost frame (where an exception was raised)."""
    name = None
    while tb is not None:
        name = tb.tb_frame.f_globals.get("__name__", name)
        tb = tb.tb_next
    return name if isinstance(name, str) else None


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
        model = _call_factory(spec, factory)
        if not isinstance(model, nn.Module):
            raise UserError(f"MODEL {spec!r}: the factory returned {type(model).__name__}, not an "
                            "nn.Module; return the backbone itself")
        identity = "factory:" + identity
    else:
        raise UserError(f"MODEL {spec!r} is neither an existing file nor `package.module:factory`: "
                        f"{MODEL_HINT}")
    return model.to(device).eval(), identity


#: torch.load(weights_only=True) (an unpickler that builds only tensors and plain containers) came with
#: torch 1.13; pyproject.toml asks for it. Files are never unpickled in full.
WEIGHTS_ONLY_TORCH = "1.13"


def require_weights_only() -> None:
    """Refuse a torch whose ``torch.load`` would run the code a file carries (no ``weights_only``)."""
    if "weights_only" not in inspect.signature(torch.load).parameters:
        raise UserError(f"torch {torch.__version__} cannot load --weights or the embedding cache without "
                        "unpickling arbitrary Python objects (torch.load has no weights_only before torch "
                        f"{WEIGHTS_ONLY_TORCH}); upgrade: pip install 'torch>={WEIGHTS_ONLY_TORCH}'")


def load_tensors(path: Path) -> object:
    """``torch.load`` of tensors and plain containers only (never arbitrary pickled objects), on the CPU."""
    require_weights_only()
    return torch.load(str(path), map_location="cpu", weights_only=True)


#: How much of a --weights file is read to tell what it is.
SNIFF_BYTES = 512


def not_a_checkpoint(head: bytes) -> Optional[str]:
    """What a file is when its first bytes show it is not a torch checkpoint (None: it may be one).

    torch.save writes a zip archive (``PK``); files of torch < 1.6 are a pickle (opcode 0x80).
    """
    if not head:
        return "is empty (0 bytes)"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<") and any(tag in text for tag in (b"<!doctype html", b"<html", b"<head", b"<body")):
        return ("is an HTML page, not a checkpoint (a download that saved an error or login page, e.g. "
                "wget or curl of a wrong URL); download the checkpoint again")
    if len(head) > 8 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < (1 << 27):
        return ("is a safetensors file; convert it: torch.save(safetensors.torch.load_file(FILE), "
                "'weights.pth')")
    if not head.startswith((b"PK\x03\x04", b"\x80")):
        return (f"is not a torch checkpoint (it starts with {head[:16]!r}; torch.save writes a zip "
                "archive); save one with torch.save(model.state_dict(), FILE)")
    return None


def _read_state_dict(path: Path) -> Dict[str, torch.Tensor]:
    """Load ``path`` as a state dict: unwrap a ``state_dict`` key, strip ``module.`` prefixes."""
    if not path.is_file():
        what = "not found: check the path" if not path.exists() else (
            "is a folder, FIFO or device, not a checkpoint: give the file torch.save wrote")
        raise UserError(f"--weights {path} {what}")
    with open(path, "rb") as handle:
        what = not_a_checkpoint(handle.read(SNIFF_BYTES))
    if what:
        raise UserError(f"--weights {path} {what}")
    try:
        obj = load_tensors(path)
    except UserError:
        raise
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


def load_weights(model: nn.Module, path: Path) -> str:
    """Load a state dict file into ``model``; returns the file's SHA-256 (for the cache key).

    Missing/unexpected keys are a warning; no key in common, or a shape mismatch, is an error.
    """
    state = _read_state_dict(path)
    expected = set(model.state_dict())
    if not expected & set(state):
        raise UserError(f"--weights {path}: none of its {len(state)} keys (e.g. {first_few(sorted(state), 3)}) "
                        f"matches the model's (e.g. {first_few(sorted(expected), 3)}); "
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
             f"their initial values ({first_few(missing, 3)})")
    if unexpected:
        warn(f"--weights {path}: {len(unexpected)} entries of the file were not used "
             f"({first_few(unexpected, 3)})")
    return sha256_of_file(path)
