"""Ready backbones for distance matching, on tiny modules shaped like torchvision's ResNet and a ViT,
and how a package that fails to import is named (tests against the real torchvision and timm:
test_real_backbones.py)."""

from __future__ import annotations

import importlib.util
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from imagenets.evaluation.distance_matching import model as dm_model
from imagenets.evaluation.distance_matching.backbones import PatchTokens, ResNetFeatures, resnet_features, vit_tokens
from imagenets.evaluation.distance_matching.model import load_model, load_tensors, load_weights
from imagenets.errors import UserError


class TinyResNet(nn.Module):
    """torchvision's ResNet layout (conv1, bn1, relu, maxpool, layer1..4, avgpool, fc), tiny."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU())
        self.layer3 = nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU())
        self.layer4 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def stages(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.stages(x)), 1))


class TinyViT(nn.Module):
    """A ViT-like module: patch embedding, a CLS token (plus ``registers``), final norm -> tokens."""

    def __init__(self, patch: int = 4, dim: int = 6, registers: int = 0, timm_style: bool = False):
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, patch, stride=patch)
        self.patch_embed.patch_size = (patch, patch) if timm_style else patch
        self.cls_token = nn.Parameter(torch.randn(1, 1 + registers, dim))
        self.norm = nn.LayerNorm(dim)
        if timm_style:  # timm: forward_features gives the tokens, forward the pooled head
            self.forward_features = self.tokens

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch_embed.proj(x).flatten(2).transpose(1, 2)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        prefix = self.cls_token.expand(x.shape[0], -1, -1)
        return self.norm(torch.cat([prefix, self.patches(x)], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tokens(x)


def test_resnet_features_stop_before_the_pooling_layer():
    torch.manual_seed(0)
    resnet = TinyResNet().eval()
    features = ResNetFeatures(resnet).eval()
    images = torch.randn(2, 3, 64, 96)
    out = features(images)
    assert out.shape == (2, 16, 2, 3)  # stride 32, as a ResNet-50's layer4
    assert torch.equal(out, resnet.stages(images))
    assert [name for name, _ in features.named_children()][-1] == "layer4"


def test_a_full_resnet_checkpoint_loads_into_the_cut_model(tmp_path, capsys):
    torch.manual_seed(0)
    trained = TinyResNet()
    checkpoint = tmp_path / "resnet.pth"
    # PASS's checkpoints: a 'state_dict' key with DataParallel's 'module.' prefixes
    torch.save({"state_dict": {f"module.{k}": v for k, v in trained.state_dict().items()}}, str(checkpoint))
    torch.manual_seed(1)
    model = resnet_features(model=TinyResNet())
    load_weights(model, checkpoint)
    assert torch.equal(model.layer4[0].weight, trained.layer4[0].weight)
    assert "2 entries of the file were not used (fc.weight, fc.bias)" in capsys.readouterr().err


def test_a_module_without_avgpool_is_refused():
    with pytest.raises(UserError, match="no 'avgpool' child"):
        ResNetFeatures(nn.Sequential(nn.Conv2d(3, 4, 3)))


@pytest.mark.parametrize("timm_style, registers", [(False, 0), (True, 4)])
def test_patch_tokens_drop_the_leading_tokens_and_make_a_grid(timm_style, registers):
    torch.manual_seed(0)
    vit = TinyViT(registers=registers, timm_style=timm_style)
    images = torch.randn(2, 3, 16, 24)
    grid = PatchTokens(vit)(images)
    assert grid.shape == (2, 6, 4, 6)
    tokens = vit.tokens(images)
    assert torch.equal(grid[1, :, 2, 3], tokens[1, 1 + registers + 2 * 6 + 3])


def test_patch_tokens_pad_to_whole_patches_so_every_pixel_is_seen():
    torch.manual_seed(0)
    vit = TinyViT()
    images = torch.randn(1, 3, 14, 23)  # neither side a multiple of the 4-pixel patch
    grid = PatchTokens(vit)(images)
    assert grid.shape == (1, 6, 4, 6)  # ceil(14/4) x ceil(23/4), as a strided conv net's ceil grid
    padded = F.pad(images, (0, 1, 0, 2))  # right and bottom, zeros (the mean colour once normalised)
    assert torch.equal(grid[0, :, 3, 5], vit.tokens(padded)[0, 1 + 3 * 6 + 5])


def test_patch_tokens_keep_the_vit_state_dict_keys(tmp_path):
    torch.manual_seed(0)
    trained = TinyViT()
    checkpoint = tmp_path / "vit.pth"
    torch.save(trained.state_dict(), str(checkpoint))
    model = vit_tokens(model=TinyViT())
    assert set(model.state_dict()) == set(trained.state_dict())
    load_weights(model, checkpoint)
    assert torch.equal(model.vit.cls_token, trained.cls_token)


def test_patch_tokens_need_a_patch_size():
    with pytest.raises(UserError, match="patch_size"):
        PatchTokens(nn.Identity())
    assert PatchTokens(nn.Identity(), patch_size=8).patch_size == 8


@pytest.mark.parametrize("factory, package", [("resnet50_features", "torchvision"),
                                              ("vit_small16_tokens", "timm")])
def test_ready_factories_name_the_missing_package(factory, package):
    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed")
    from imagenets.evaluation.distance_matching import backbones as dm_backbones

    with pytest.raises(UserError, match=f"needs {package}, which is not installed .*torchvision==0.29.1"):
        getattr(dm_backbones, factory)()


def test_model_option_passes_the_factory_explanation_on_unwrapped():
    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed")
    from imagenets.evaluation.distance_matching.model import load_model

    with pytest.raises(UserError) as caught:
        load_model("imagenets.evaluation.distance_matching.backbones:resnet50_features", torch.device("cpu"))
    assert str(caught.value).startswith("MODEL imagenets.evaluation.distance_matching.backbones:resnet50_features needs torchvision")


# ---- a package that is installed but does not import ---------------------------------------------------

#: torchvision 0.28.0 from PyPI beside a CPU torch: its import registers a fake kernel for an operator
#: that its (CUDA) extension should have defined, and torch says the operator does not exist.
BROKEN_TORCHVISION = {
    "torchvision/__init__.py": "from torchvision import _meta_registrations  # noqa\n",
    "torchvision/_meta_registrations.py": textwrap.dedent("""
        import torch
        raise RuntimeError("operator torchvision::nms does not exist")
    """),
    "torchvision/version.py": "__version__ = '0.28.0+cu130'\ngit_version = '8fb87713'\n",
    "torchvision-0.28.0.dist-info/METADATA": textwrap.dedent("""\
        Metadata-Version: 2.1
        Name: torchvision
        Version: 0.28.0
        Requires-Dist: numpy
        Requires-Dist: torch (=={torch})
        Requires-Dist: pillow (!=8.3.*,>=5.3.0)
        Requires-Dist: scipy ; extra == 'scipy'
    """),
    "timm/__init__.py": "import torchvision  # noqa: timm imports torchvision\n",
    "mymodels.py": "import torchvision\n\ndef make():\n    return torchvision.models.resnet50()\n",
}


@pytest.fixture
def broken_torchvision(tmp_path, monkeypatch):
    """A torchvision (and a timm and a user module importing it) that fails as PyPI's CUDA build does here."""
    for rel, text in BROKEN_TORCHVISION.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("{torch}", torch.__version__.partition("+")[0]))
    for name in [n for n in sys.modules if n.split(".")[0] in ("torchvision", "timm", "mymodels")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    return tmp_path


@pytest.mark.parametrize("spec, says", [
    ("imagenets.evaluation.distance_matching.backbones:resnet50_features",
     "backbones:resnet50_features needs torchvision, and torchvision 0.28.0+cu130 failed to import"),
    ("imagenets.evaluation.distance_matching.backbones:vit_small16_tokens",
     "backbones:vit_small16_tokens needs timm, and importing timm failed inside torchvision 0.28.0+cu130"),
    ("mymodels:make", "'mymodels:make': importing mymodels failed inside torchvision 0.28.0+cu130"),
])
def test_a_torchvision_that_does_not_import_is_named_with_its_build(broken_torchvision, spec, says):
    with pytest.raises(UserError) as caught:
        load_model(spec, torch.device("cpu"))
    line = str(caught.value)
    assert "\n" not in line and says in line
    assert "(RuntimeError: operator torchvision::nms does not exist)" in line
    local = torch.__version__.partition("+")[2]  # the build tag (cpu, cu130), if any
    if local and local != "cu130":
        assert f"torchvision 0.28.0+cu130 is a +cu130 build and torch {torch.__version__} a +{local} one" in line
    assert "must take no arguments" not in line and "must accept" not in line


def test_another_torch_version_pinned_by_torchvision_is_named(broken_torchvision):
    metadata = broken_torchvision / "torchvision-0.28.0.dist-info/METADATA"
    metadata.write_text(metadata.read_text().replace(torch.__version__.partition("+")[0], "1.0.0"))
    with pytest.raises(UserError, match=r"torchvision 0.28.0\+cu130 is built for torch 1.0.0, and this "
                                        rf"Python has torch {torch.__version__.replace('+', '.')}"):
        load_model("imagenets.evaluation.distance_matching.backbones:resnet50_features", torch.device("cpu"))


def test_a_factory_that_needs_arguments_is_told_so(tmp_path, monkeypatch):
    (tmp_path / "argmodels.py").write_text("def make(depth):\n    raise AssertionError('called')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UserError, match="the factory needs arguments"):
        load_model("argmodels:make", torch.device("cpu"))


# ---- torch.load never unpickles ---------------------------------------------------------------------

def test_a_torch_without_weights_only_is_refused_before_loading(tmp_path, monkeypatch):
    calls = []

    def old_load(f, map_location=None, pickle_module=None, **pickle_load_args):  # torch 1.12's signature
        calls.append(f)
        return {}

    monkeypatch.setattr(dm_model.torch, "load", old_load)
    checkpoint = tmp_path / "w.pth"
    checkpoint.write_bytes(b"PK\x03\x04")
    with pytest.raises(UserError, match=r"torch .* cannot load .* without unpickling .*torch>=1.13"):
        load_tensors(checkpoint)
    assert calls == []  # the unsafe load never ran
