"""The ready backbones on the real torchvision and timm (random weights: nothing is downloaded).

Skipped, saying why, where they do not import (not installed, or a torchvision built for another torch);
CI runs this module in a venv with a matching pair (.ci/run). Checkpoints are written in the shapes of
the real ones: PASS's ResNet-50 (``{"epoch", "state_dict": {"module.<name>": ...}, "optimizer"}``, its
heads beside the backbone) and DINO's ``dino_deitsmall16_pretrain.pth`` (a plain ViT-S/16 state dict).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from imagenets.cli import main as imagenets_main
from imagenets.codec import read_mask
from imagenets.demo.synthetic import write_synthetic_dataset, write_synthetic_meta
from imagenets.evaluation.distance_matching.backbones import resnet50_features, vit_small16_tokens
from imagenets.evaluation.distance_matching.model import load_weights
from imagenets.metadata import load_metadata


def _real(package: str):
    try:
        return importlib.import_module(package)
    except Exception as exc:  # absent, or installed as a build that does not load beside this torch
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        pytest.skip(f"the real {package} does not import here ({type(exc).__name__}: {reason}): these tests "
                    "run in CI's backbones venv (.ci/run); README, Ready backbones, gives the pair to install",
                    allow_module_level=True)


torchvision = _real("torchvision")
timm = _real("timm")

FACTORIES = "imagenets.evaluation.distance_matching.backbones"


# ---- the checkpoints' shapes --------------------------------------------------------------------------

def _values(shapes: Dict[str, Tuple[int, ...]], seed: int) -> Dict[str, torch.Tensor]:
    """Random values of the given shapes (BatchNorm counters as the int64 scalars they are)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in shapes.items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(1000, dtype=torch.int64)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[name] = torch.randn(shape, generator=generator) * 0.05
    return state


def _batchnorm(prefix: str, channels: int, affine: bool = True) -> Dict[str, Tuple[int, ...]]:
    names = (["weight", "bias"] if affine else []) + ["running_mean", "running_var"]
    shapes = {f"{prefix}.{name}": (channels,) for name in names}
    shapes[f"{prefix}.num_batches_tracked"] = ()
    return shapes


def resnet50_shapes() -> Dict[str, Tuple[int, ...]]:
    """ResNet-50's entries in torchvision's layout (PASS's ResNet keeps it): conv1 ... layer4, no fc."""
    shapes: Dict[str, Tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7), **_batchnorm("bn1", 64)}
    inplanes = 64
    for stage, (planes, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], 1):
        for block in range(blocks):
            at = f"layer{stage}.{block}"
            shapes.update({f"{at}.conv1.weight": (planes, inplanes, 1, 1), **_batchnorm(f"{at}.bn1", planes),
                           f"{at}.conv2.weight": (planes, planes, 3, 3), **_batchnorm(f"{at}.bn2", planes),
                           f"{at}.conv3.weight": (4 * planes, planes, 1, 1),
                           **_batchnorm(f"{at}.bn3", 4 * planes)})
            if block == 0:
                shapes.update({f"{at}.downsample.0.weight": (4 * planes, inplanes, 1, 1),
                               **_batchnorm(f"{at}.downsample.1", 4 * planes)})
            inplanes = 4 * planes
    return shapes


#: PASS's pre-training heads (src/resnet.py, hidden_mlp 2048, output_dim 128, 500 prototypes): in the
#: checkpoint beside the backbone, unused by distance matching.
PASS_HEADS = {"projection_head.0.weight": (2048, 2048), "projection_head.0.bias": (2048,),
              **_batchnorm("projection_head.1", 2048), "projection_head.3.weight": (128, 2048),
              "projection_head.3.bias": (128,), **_batchnorm("projection_head.4", 128, affine=False),
              "projection_head_pixel.0.weight": (2048, 2048, 1, 1), "prototypes.weight": (500, 128)}


def pass_checkpoint(path: Path) -> Dict[str, torch.Tensor]:
    """A PASS ResNet-50 checkpoint as its training saves it (DataParallel's ``module.`` prefixes)."""
    state = _values({**resnet50_shapes(), **PASS_HEADS}, seed=1)
    torch.save({"epoch": 400, "state_dict": {f"module.{k}": v for k, v in state.items()},
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.6, "momentum": 0.9, "weight_decay": 1e-6,
                                                             "params": list(range(len(state)))}]}}, str(path))
    return state


def dino_vits16_shapes() -> Dict[str, Tuple[int, ...]]:
    """dino_deitsmall16_pretrain.pth: DINO's vit_small (patch 16, 384 wide, 12 blocks, no head)."""
    dim, hidden = 384, 1536
    shapes: Dict[str, Tuple[int, ...]] = {"cls_token": (1, 1, dim), "pos_embed": (1, 1 + 14 * 14, dim),
                                          "patch_embed.proj.weight": (dim, 3, 16, 16),
                                          "patch_embed.proj.bias": (dim,)}
    for block in range(12):
        at = f"blocks.{block}"
        shapes.update({f"{at}.norm1.weight": (dim,), f"{at}.norm1.bias": (dim,),
                       f"{at}.attn.qkv.weight": (3 * dim, dim), f"{at}.attn.qkv.bias": (3 * dim,),
                       f"{at}.attn.proj.weight": (dim, dim), f"{at}.attn.proj.bias": (dim,),
                       f"{at}.norm2.weight": (dim,), f"{at}.norm2.bias": (dim,),
                       f"{at}.mlp.fc1.weight": (hidden, dim), f"{at}.mlp.fc1.bias": (hidden,),
                       f"{at}.mlp.fc2.weight": (dim, hidden), f"{at}.mlp.fc2.bias": (dim,)})
    shapes.update({"norm.weight": (dim,), "norm.bias": (dim,)})
    return shapes


def dino_checkpoint(path: Path) -> Dict[str, torch.Tensor]:
    state = _values(dino_vits16_shapes(), seed=2)
    torch.save(state, str(path))
    return state


# ---- the factories ------------------------------------------------------------------------------------

def test_vit_tokens_cover_images_whose_sides_are_not_patch_multiples():
    torch.manual_seed(0)
    model = vit_small16_tokens().eval()
    images = torch.randn(2, 3, 256, 282)  # a 500x441 photo with its shorter side resized to 256
    with torch.inference_mode():
        grid = model(images)
        assert grid.shape == (2, 384, 16, 18)  # ceil(282 / 16): the last column holds pixels 272..281
        padded = F.pad(images, (0, 6))  # the same image padded by hand: the same tokens
        tokens = model.vit.forward_features(padded)
        assert torch.allclose(grid[1, :, 15, 17], tokens[1, 1 + 15 * 18 + 17], atol=1e-5)
        square = torch.randn(1, 3, 224, 224)  # the size it was trained at: position embeddings unchanged
        assert torch.allclose(model(square)[0, :, 0, 0], model.vit.forward_features(square)[0, 1], atol=1e-5)
    assert model.vit.patch_embed.patch_size == (16, 16) and torch.isfinite(grid).all()


def test_resnet50_features_are_torchvision_resnet50_before_its_pooling():
    torch.manual_seed(0)
    model = resnet50_features().eval()
    reference = torchvision.models.resnet50().eval()
    reference.load_state_dict(model.state_dict(), strict=False)  # the cut keeps the names: fc alone differs
    images = torch.randn(1, 3, 256, 282)
    with torch.inference_mode():
        features = model(images)
        x = reference.maxpool(reference.relu(reference.bn1(reference.conv1(images))))
        expected = reference.layer4(reference.layer3(reference.layer2(reference.layer1(x))))
    assert features.shape == (1, 2048, 8, 9) and torch.equal(features, expected)


def test_a_pass_checkpoint_loads_into_resnet50_features(tmp_path, capsys):
    path = tmp_path / "pass50.pth.tar"
    state = pass_checkpoint(path)
    model = resnet50_features()
    load_weights(model, path)
    assert torch.equal(model.layer4[2].conv3.weight, state["layer4.2.conv3.weight"])
    assert torch.equal(model.bn1.running_var, state["bn1.running_var"])
    err = capsys.readouterr().err
    assert "were not in the file" not in err  # every backbone parameter came from the checkpoint
    assert f"{len(PASS_HEADS)} entries of the file were not used" in err


def test_a_dino_checkpoint_loads_into_vit_small16_tokens_exactly(tmp_path, capsys):
    path = tmp_path / "dino_deitsmall16_pretrain.pth"
    state = dino_checkpoint(path)
    model = vit_small16_tokens()
    load_weights(model, path)
    assert capsys.readouterr().err == ""  # every key used, none missing: DINO's names are timm's
    assert torch.equal(model.vit.pos_embed, state["pos_embed"])
    assert torch.equal(model.vit.blocks[11].mlp.fc2.weight, state["blocks.11.mlp.fc2.weight"])


# ---- end to end: `imagenets distance-matching` on a tiny prepared tree ----------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Dict[str, Path]:
    """A prepared ImageNet-S50 of 3 train-semi, 2 validation and 1 test image (made-up lists), and the
    two checkpoints."""
    root = tmp_path_factory.mktemp("real_backbones")
    meta = write_synthetic_meta(root / "meta", 50, validation=2, test=1, train_semi=3)
    write_synthetic_dataset(root / "dest", load_metadata(meta), 50, layout="prepared", sides=(24, 40),
                            train_per_class=0, quiet=True)
    pass_checkpoint(root / "pass50.pth.tar")
    dino_checkpoint(root / "dino_deitsmall16_pretrain.pth")
    return {"meta": meta, "dataset": root / "dest" / "ImageNetS50", "root": root}


@pytest.mark.parametrize("factory, weights", [
    ("resnet50_features", None), ("resnet50_features", "pass50.pth.tar"),
    ("vit_small16_tokens", None), ("vit_small16_tokens", "dino_deitsmall16_pretrain.pth"),
])
def test_distance_matching_runs_with_the_ready_backbone(tiny, tmp_path, capsys, factory, weights):
    out = tmp_path / "out"
    argv = ["distance-matching", "--dataset", str(tiny["dataset"]), "--mode", "50", "--meta-dir",
            str(tiny["meta"]), "--model", f"{FACTORIES}:{factory}", "--split", "validation",
            "--output-dir", str(out), "--workers", "0", "--quiet"]
    if weights:
        argv += ["--weights", str(tiny["root"] / weights)]
    assert imagenets_main(argv) == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    assert "error" not in captured.err and "mIoU" in captured.out  # --quiet: the one summary line
    images = sorted((tiny["dataset"] / "validation").rglob("*.JPEG"))
    for image in images:
        rel = image.relative_to(tiny["dataset"] / "validation").with_suffix(".png")
        predicted = read_mask(out / "validation" / rel)
        truth = read_mask(tiny["dataset"] / "validation-segmentation" / rel)
        assert predicted.shape == truth.shape  # grown back to the image's own size
        assert set(np.unique(predicted)) <= set(range(51))
    assert len(list(out.glob("embeddings-*.pt"))) == 1
