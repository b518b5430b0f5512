"""The distance-matching protocol on a fake prepared tree whose right label is known for every pixel.

The fake backbone maps each pixel to a soft one-hot of its nearest palette colour and pools 4x4
(a stride-4 feature map), so regions of palette colours are exactly recoverable.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import textwrap
import zipfile
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest
import torch
from PIL import Image

import torch.nn.functional as F

from helpers import exit_status
from imagenets.evaluation.distance_matching import command as dm
from imagenets.evaluation.distance_matching import vote as dm_vote
from imagenets.evaluation.distance_matching.bank import cache_path, file_stamps, resized_size, upsample
from imagenets.idmaps import nearest_sources, resize_nearest
from imagenets.evaluation.distance_matching.vote import CHUNK_ELEMENTS, VoteBank, knn_vote, vote_map
from imagenets.codec import encode, read_mask
from imagenets.subsets import IGNORE

#: Colour of each label in the fake images; YELLOW marks train-semi regions labelled 1000.
WHITE, RED, GREEN, BLUE, YELLOW = (255, 255, 255), (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)
PALETTE = [WHITE, RED, GREEN, BLUE, YELLOW]
COLOUR_OF = {0: WHITE, 1: RED, 2: GREEN, 3: BLUE, IGNORE: YELLOW}
MODULE = "dm_fake_models"

MODEL_SOURCE = textwrap.dedent(f'''
    import torch
    from torch import nn

    PALETTE = {PALETTE!r}
    MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


    class PaletteNet(nn.Module):
        """Soft one-hot of the nearest palette colour, pooled 4x4."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, len(PALETTE), 1)
            self.pool = nn.AvgPool2d(4)

        def forward(self, x):
            return self.pool(torch.softmax(self.conv(x), dim=1))


    def palette_weights():
        colours = (torch.tensor(PALETTE, dtype=torch.float32) / 255 - torch.tensor(MEAN)) / torch.tensor(STD)
        # score = -20/2 |x - colour|^2 up to a per-pixel constant: nearest colour wins the softmax
        return {{"conv.weight": (20 * colours)[:, :, None, None], "conv.bias": -10 * (colours ** 2).sum(1)}}


    def make_model():
        model = PaletteNet()
        model.load_state_dict(palette_weights())
        return model


    def make_untrained():
        torch.manual_seed(0)
        return PaletteNet()


    def make_number():
        return 3


    def make_flat():
        return nn.Flatten()


    class NaNNet(PaletteNet):
        """A diverged checkpoint's features: NaN wherever the image is green."""

        def forward(self, x):
            out = super().forward(x)
            return torch.where(out[:, 2:3] > 0.5, torch.full_like(out, float("nan")), out)


    def make_nan():
        model = NaNNet()
        model.load_state_dict(palette_weights())
        return model


    class NoChannels(nn.Module):
        """A backbone cut at the wrong place: (N, 0, h, w)."""

        def forward(self, x):
            return x[:, :0, ::4, ::4]


    def make_empty():
        return NoChannels()
''')


def _labels(height: int, width: int, boxes: List[Tuple[int, int, int, int, int]]) -> np.ndarray:
    """A label map: background 0 with (label, top, left, bottom, right) boxes painted in order."""
    ids = np.zeros((height, width), dtype=np.int32)
    for label, top, left, bottom, right in boxes:
        ids[top:bottom, left:right] = label
    return ids


def _write_image(path: Path, ids: np.ndarray) -> None:
    rgb = np.zeros(ids.shape + (3,), dtype=np.uint8)
    for label, colour in COLOUR_OF.items():
        rgb[ids == label] = colour
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, format="JPEG", quality=95, subsampling=0)


def _write_mask(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(encode(ids), "RGB").save(path)


class Tree:
    """A prepared ImageNetS50 tree (3 classes used), its metadata dir and the fake models."""

    def __init__(self, base: Path, official_meta: Path):
        self.base = base
        self.meta = base / "meta"
        self.root = base / "ImageNetS50"
        self.models = base / "models"
        (self.meta / "categories").mkdir(parents=True)
        shutil.copy(official_meta / "categories/ImageNetS_categories_im50.txt", self.meta / "categories")
        (self.meta / "classnames").mkdir()
        shutil.copy(official_meta / "classnames/ImageNetS_classnames_im50.txt", self.meta / "classnames")
        wnids = sorted((self.meta / "categories/ImageNetS_categories_im50.txt").read_text().split())[:3]
        self.expected: Dict[str, Dict[str, np.ndarray]] = {"validation": {}, "test": {}}
        semi = []
        for cls, wnid in enumerate(wnids, 1):
            for n, box in enumerate([(8, 16, 48, 72), (16, 8, 56, 56)]):
                ids = _labels(64, 96, [(cls,) + box])
                if n == 0:
                    ids[48:64, 80:96] = IGNORE  # an unlabelled region in yellow
                rel = f"{wnid}/{wnid}_{n}"
                _write_image(self.root / "train-semi" / f"{rel}.JPEG", ids)
                _write_mask(self.root / "train-semi-segmentation" / f"{rel}.png", ids)
                semi.append(f"{rel}.JPEG {rel}.png")
        scenes = {
            "validation": [(64, 96, [(1, 8, 8, 40, 48), (3, 24, 56, 56, 88)]),
                           (64, 96, [(2, 0, 0, 32, 96)]),
                           (96, 64, [(1, 8, 8, 48, 56), (2, 56, 16, 88, 48)])],
            "test": [(48, 80, [(3, 8, 8, 40, 40), (2, 16, 48, 40, 72)]),
                     (64, 64, [(1, 16, 16, 48, 48)])],
        }
        for split, images in scenes.items():
            mapping, names = [], []
            for n, (height, width, boxes) in enumerate(images):
                ids = _labels(height, width, boxes)
                rel = f"{wnids[n % 3]}/ILSVRC2012_val_{n + 1:08d}"
                _write_image(self.root / split / f"{rel}.JPEG", ids)
                if split == "validation":
                    _write_mask(self.root / "validation-segmentation" / f"{rel}.png", ids)
                mapping.append(f"{rel}.JPEG {rel}.JPEG")
                names.append(f"{rel}.JPEG {rel}.png")
                self.expected[split][f"{rel}.png"] = ids
            (self.meta / "mapping").mkdir(exist_ok=True)
            (self.meta / f"mapping/ImageNetS_im50_mapping_{split}.txt").write_text("\n".join(mapping))
            if split == "validation":
                (self.meta / "names").mkdir(exist_ok=True)
                (self.meta / "names/ImageNetS_im50_validation.txt").write_text("\n".join(names))
        (self.meta / "names/ImageNetSemi_im50_train.txt").write_text("\n".join(semi))
        self.models.mkdir()
        (self.models / f"{MODULE}.py").write_text(MODEL_SOURCE)

    def argv(self, out: Path, split: str = "validation", model: str = f"{MODULE}:make_model",
             *extra: str) -> List[str]:
        method = ["--train-data", "colour palettes", "--link", "none"] if split == "test" else []
        return ["--dataset", str(self.root), "--mode", "50", "--meta-dir", str(self.meta),
                "--model", model, "--split", split, "--output-dir", str(out), "--workers", "0",
                "--quiet", *method, *extra]

    def check_predictions(self, out: Path, split: str, border: int = 0) -> None:
        """Every pixel right, or all but ``border`` pixels per image (on region borders)."""
        for rel, ids in self.expected[split].items():
            predicted = read_mask(out / split / rel)
            assert predicted.shape == ids.shape
            wrong = int((predicted != ids).sum())
            assert wrong <= border, f"{rel}: {wrong} pixels mislabelled"


@pytest.fixture(scope="module")
def tree(tmp_path_factory, meta_dir) -> Tree:
    return Tree(tmp_path_factory.mktemp("dm"), meta_dir)


class StepThree:
    """Step 3's library calls (evaluation, match, submission), recorded instead of run."""

    REAL = {"evaluate_predictions": dm.evaluate_predictions, "compute_match": dm.compute_match,
            "build_submission": dm.build_submission, "publish": dm.publish}

    def __init__(self, monkeypatch):
        self.monkeypatch = monkeypatch
        self.calls: List[Dict[str, object]] = []
        for name, function in self.REAL.items():
            monkeypatch.setattr(dm, name, self._recorder(name, function))

    def _recorder(self, name, function):
        signature = inspect.signature(function)

        def record(*args, **kwargs):
            self.calls.append({"call": name, **signature.bind(*args, **kwargs).arguments})
            return {"objective": 0, "assignment": np.arange(1, 51)} if name == "compute_match" else {}
        return record

    def use_real(self) -> None:
        for name, function in self.REAL.items():
            self.monkeypatch.setattr(dm, name, function)


@pytest.fixture(autouse=True)
def steps_three(monkeypatch, tree) -> StepThree:
    monkeypatch.syspath_prepend(str(tree.models))
    return StepThree(monkeypatch)


@pytest.fixture
def pruned(monkeypatch):
    """vote_map's pruned path even for the small banks of these tests."""
    monkeypatch.setattr(dm_vote, "PRUNE_MIN_EMBEDDINGS", 0)


def _main(argv: List[str]) -> int:
    return dm.COMMAND.main(argv, prog="imagenets distance-matching")


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


# ---- end to end ----------------------------------------------------------------------------

def test_factory_model_labels_every_validation_pixel_exactly(tree, tmp_path, steps_three):
    out = tmp_path / "out"
    assert _main(tree.argv(out)) == 0
    tree.check_predictions(out, "validation")
    call = steps_three.calls[0]
    assert call["call"] == "evaluate_predictions"
    gt_dir = tree.root / "validation-segmentation"
    assert (call["predict_dir"], call["gt_dir"]) == (out / "validation", gt_dir)
    assert call["subset"].name == "ImageNetS50" and call["match_file"] is None
    assert call["meta"].categories(call["subset"])  # the --meta-dir lists


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_torchscript_model_labels_test_split_and_builds_the_submission(tree, tmp_path, steps_three):
    scripted = tree.models / "palette.pt"
    if not scripted.exists():
        import dm_fake_models  # noqa: F401 -- the module written by the fixture
        torch.jit.script(dm_fake_models.make_model()).save(str(scripted))
    out = tmp_path / "out"
    assert _main(tree.argv(out, "test", str(scripted), "--workers", "2", "--batch-size", "2")) == 0
    tree.check_predictions(out, "test")
    (call,) = steps_three.calls
    assert call["call"] == "build_submission"
    assert call["protocol_name"] == "distance-matching"
    assert call["output"] == out / "submission.zip"
    assert call["method"]["method_name"] == "distance matching with palette"
    assert call["method"]["train_data"] == "colour palettes"
    assert call["images"] == tree.root


def test_test_split_needs_the_method_fields_up_front(tree, tmp_path, capsys):
    argv = tree.argv(tmp_path / "out", "test")
    del argv[argv.index("--link"):argv.index("--link") + 2]
    assert _main(argv) == 2
    assert "--train-data TEXT and --link URL" in _error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_embeddings_cover_each_labelled_region_but_not_1000(tree, tmp_path):
    out = tmp_path / "out"
    assert _main(tree.argv(out)) == 0
    (cache,) = out.glob("embeddings-*.pt")
    saved = torch.load(str(cache), weights_only=True)
    # 6 train-semi images: each gives its background (0) and its class; yellow (1000) gives none.
    assert sorted(saved["labels"].tolist()) == [0] * 6 + [1, 1, 2, 2, 3, 3]
    assert saved["embeddings"].shape == (12, len(PALETTE))


def test_weights_are_unwrapped_stripped_and_loaded(tree, tmp_path):
    import dm_fake_models

    weights = tmp_path / "checkpoint.pth"
    state = {f"module.{k}": v for k, v in dm_fake_models.palette_weights().items()}
    torch.save({"state_dict": state, "epoch": 7}, str(weights))
    out = tmp_path / "out"
    assert _main(tree.argv(out, "validation", f"{MODULE}:make_untrained", "--weights", str(weights))) == 0
    tree.check_predictions(out, "validation")


def test_partial_weights_warn_with_counts(tree, tmp_path, capsys):
    import dm_fake_models

    weights = tmp_path / "partial.pth"
    state = dict(dm_fake_models.palette_weights(), extra=torch.zeros(1))
    del state["conv.bias"]
    torch.save(state, str(weights))
    assert _main(tree.argv(tmp_path / "out", "validation", f"{MODULE}:make_untrained",
                           "--weights", str(weights))) == 0
    err = capsys.readouterr().err
    assert "1 model parameters were not in the file" in err and "conv.bias" in err
    assert "1 entries of the file were not used (extra)" in err


@pytest.mark.parametrize("content, says", [
    ({"conv.weight": torch.zeros(7, 3, 1, 1), "conv.bias": torch.zeros(7)}, "does not fit the model"),
    ({"backbone.weight": torch.zeros(1)}, "none of its 1 keys"),
    ([1, 2, 3], "is not a state dict"),
    (None, "not found"),
])
def test_wrong_weights_exit_2_with_one_line_naming_the_file(tree, tmp_path, capsys, content, says):
    weights = tmp_path / "bad.pth"
    if content is not None:
        torch.save(content, str(weights))
    assert _main(tree.argv(tmp_path / "out", "validation", f"{MODULE}:make_untrained",
                           "--weights", str(weights))) == 2
    line = _error_line(capsys)
    assert str(weights) in line and says in line


def test_an_html_page_as_weights_says_what_it_is(tree, tmp_path, capsys):
    page = tmp_path / "dino_deitsmall16_pretrain.pth"  # what `wget URL` keeps of a 404
    page.write_text("<!DOCTYPE html>\n<html lang=en><head><title>404 Not Found</title></head>\n"
                    "<body><h1>Not Found</h1></body></html>\n")
    assert _main(tree.argv(tmp_path / "out", "validation", f"{MODULE}:make_untrained", "--weights", str(page))) == 2
    line = _error_line(capsys)
    assert f"--weights {page} is an HTML page, not a checkpoint" in line
    assert "Python objects" not in line and not (tmp_path / "out").exists()


@pytest.mark.parametrize("content, says", [(b"", "is empty"), (b'{"a": 1}', "is not a torch checkpoint")])
def test_other_files_as_weights_say_what_they_are(tree, tmp_path, capsys, content, says):
    weights = tmp_path / "w.pth"
    weights.write_bytes(content)
    assert _main(tree.argv(tmp_path / "out", "validation", f"{MODULE}:make_untrained", "--weights", str(weights))) == 2
    assert f"--weights {weights} {says}" in _error_line(capsys)


@pytest.mark.parametrize("model, says", [
    (f"{MODULE}:make_nan", "NaN or infinite feature values"),
    (f"{MODULE}:make_empty", "an empty feature map (6, 0, 64, 96)"),
])
def test_unusable_features_are_refused_and_nothing_is_cached(tree, tmp_path, capsys, model, says):
    out = tmp_path / "out"
    assert _main(tree.argv(out, "validation", model)) == 2
    assert says in _error_line(capsys)
    assert not list(out.glob("embeddings-*.pt")) and not list(out.rglob("*.png"))


def test_a_cached_bank_of_nan_is_rebuilt(tree, tmp_path, capsys):
    out = tmp_path / "out"
    assert _main(tree.argv(out)) == 0
    (cache,) = out.glob("embeddings-*.pt")
    saved = torch.load(str(cache), weights_only=True)  # as an older imagenets cached a NaN model's bank
    saved["embeddings"][:] = float("nan")
    torch.save(saved, str(cache))
    capsys.readouterr()
    assert _main(tree.argv(out, "validation", f"{MODULE}:make_model", "--overwrite")) == 0
    assert "holds no usable embeddings (empty, misshapen or not finite); rebuilding it" in capsys.readouterr().err
    assert torch.isfinite(torch.load(str(cache), weights_only=True)["embeddings"]).all()
    tree.check_predictions(out, "validation")


@pytest.mark.parametrize("model, says", [
    ("no/such/model.pt", "neither an existing file nor"),
    ("no_such_package_xyz:make", "cannot import no_such_package_xyz"),
    (f"{MODULE}:missing", "has no attribute 'missing'"),
    (f"{MODULE}:make_number", "returned int, not an nn.Module"),
    (f"{MODULE}:make_flat", "must return one (N,C,h,w) feature map"),
])
def test_unusable_model_exits_2_with_the_fix(tree, tmp_path, capsys, model, says):
    assert _main(tree.argv(tmp_path / "out", "validation", model)) == 2
    assert says in _error_line(capsys)


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_file_that_is_not_torchscript_is_refused(tree, tmp_path, capsys):
    bogus = tmp_path / "model.pt"
    bogus.write_bytes(b"not a model")
    assert _main(tree.argv(tmp_path / "out", "validation", str(bogus))) == 2
    assert "is not a loadable TorchScript file" in _error_line(capsys)


# ---- reruns and caching ----------------------------------------------------------------------

def test_rerun_reuses_embeddings_and_skips_written_images(tree, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert _main(tree.argv(out)) == 0
    pngs = sorted((out / "validation").rglob("*.png"))
    stamps = {p: p.stat().st_mtime_ns for p in pngs}
    pngs[0].unlink()

    def no_rebuild(*args, **kwargs):
        raise AssertionError("embeddings rebuilt although model and data are unchanged")

    monkeypatch.setattr(dm, "build_bank", no_rebuild)
    assert _main(tree.argv(out)) == 0
    assert pngs[0].exists()
    assert all(p.stat().st_mtime_ns == stamps[p] for p in pngs[1:])
    tree.check_predictions(out, "validation")


def test_changed_weights_rebuild_the_embeddings(tree, tmp_path):
    import dm_fake_models

    out = tmp_path / "out"
    weights = tmp_path / "w.pth"
    torch.save(dm_fake_models.palette_weights(), str(weights))
    assert _main(tree.argv(out, "validation", f"{MODULE}:make_untrained", "--weights", str(weights))) == 0
    assert _main(tree.argv(out, "validation", f"{MODULE}:make_model", "--overwrite")) == 0
    assert len(list(out.glob("embeddings-*.pt"))) == 2


@pytest.mark.parametrize("setting, caches", [(["-k", "3"], 1), (["--compat", "pass"], 2)])
def test_other_settings_over_old_predictions_are_refused(tree, tmp_path, capsys, setting, caches):
    out = tmp_path / "out"
    assert _main(tree.argv(out)) == 0
    assert _main(tree.argv(out, "validation", f"{MODULE}:make_model", *setting)) == 2
    assert "--overwrite" in _error_line(capsys)
    assert len(list(out.glob("embeddings-*.pt"))) == 1  # refused before any embedding was built
    assert _main(tree.argv(out, "validation", f"{MODULE}:make_model", *setting, "--overwrite")) == 0
    # (torch's nearest, under --compat pass, shifts region borders by a pixel)
    tree.check_predictions(out, "validation", border=16 if "pass" in setting else 0)
    assert len(list(out.glob("embeddings-*.pt"))) == caches  # pass shrinks masks its own way


def test_a_compat_change_is_refused_before_the_embeddings_naming_every_change(tree, tmp_path, capsys,
                                                                            monkeypatch):
    import dm_fake_models

    out = tmp_path / "out"
    assert _main(tree.argv(out)) == 0
    weights = tmp_path / "w.pth"
    torch.save(dm_fake_models.palette_weights(), str(weights))

    def no_rebuild(*args, **kwargs):
        raise AssertionError("embeddings rebuilt before the refusal")

    monkeypatch.setattr(dm, "build_bank", no_rebuild)
    argv = tree.argv(out, "validation", f"{MODULE}:make_untrained", "--weights", str(weights),
                     "--compat", "pass", "-T", "0.1")
    assert _main(argv) == 2
    line = _error_line(capsys)
    assert "already holds 3 predictions made with other settings:" in line
    for change in ("--model (another model, or its code changed)", "--weights (another file, or none)",
                   "--compat pass (was ours)", "-T 0.1 (was 0.07)"):
        assert change in line
    assert "-k" not in line.split("settings:")[1].split("; pass")[0]  # only what differs
    assert "--overwrite" in line and "another --output-dir" in line


def test_a_record_of_an_older_imagenets_still_guards_the_predictions(tree, tmp_path, capsys):
    out = tmp_path / "out"
    assert _main(tree.argv(out)) == 0
    record = out / "predictions-validation.json"
    new = json.loads(record.read_text())
    record.write_text(json.dumps({"embeddings": new["embeddings"], "k": 10, "temperature": 0.07}))
    assert _main(tree.argv(out)) == 0  # the same settings
    record.write_text(json.dumps({"embeddings": "0" * 64, "k": 10, "temperature": 0.07}))
    assert _main(tree.argv(out)) == 2
    assert "the embeddings (--model, --weights or the train-semi data" in _error_line(capsys)


def test_limit_looks_at_n_images_of_each_split_spread_over_the_lists(tree, tmp_path, steps_three, capsys):
    steps_three.use_real()
    out = tmp_path / "out"
    argv = tree.argv(out, "validation", f"{MODULE}:make_model", "--limit", "2")
    argv.remove("--quiet")
    assert _main(argv) == 0
    captured = capsys.readouterr()
    assert ("warning: --limit 2: embeddings from 2 of 6 train-semi images and predictions for 2 of 3 "
            "validation images, spread evenly over the lists: a quick look, NOT the benchmark's scores") in captured.err
    assert "--limit 2: 2 validation images, NOT the benchmark's scores" in captured.out
    written = sorted(p.relative_to(out / "validation").as_posix() for p in (out / "validation").rglob("*.png"))
    assert written == sorted(list(tree.expected["validation"])[i] for i in (0, 1))  # every 3/2-th: 0, 1
    (cache,) = out.glob("embeddings-*.pt")
    assert sorted(torch.load(str(cache), weights_only=True)["labels"].tolist()) == [0, 0, 1, 2]  # images 0, 3
    assert _main(tree.argv(out)) == 2  # the full run over the quick look's predictions: named
    assert "--limit none (was 2)" in _error_line(capsys)


def test_limit_on_the_test_split_builds_no_submission(tree, tmp_path, steps_three, capsys):
    out = tmp_path / "out"
    assert _main(tree.argv(out, "test", f"{MODULE}:make_model", "--limit", "1")) == 0
    assert steps_three.calls == [] and not (out / "submission.zip").exists()
    assert "no " + str(out / "submission.zip") in capsys.readouterr().err
    assert len(list((out / "test").rglob("*.png"))) == 1


def test_missing_images_are_reported_before_any_work(tree, tmp_path, capsys):
    copy = tmp_path / "ImageNetS50"
    shutil.copytree(tree.root, copy)
    for image in list((copy / "test").rglob("*.JPEG")):
        image.unlink()
    argv = tree.argv(tmp_path / "out", "test")
    argv[argv.index("--dataset") + 1] = str(copy)
    assert _main(argv) == 2
    line = _error_line(capsys)
    assert "2 test images are missing" in line
    assert not (tmp_path / "out").exists()


def test_parent_folder_is_accepted_as_dataset(tree, tmp_path):
    argv = tree.argv(tmp_path / "out", "test")
    argv[argv.index("--dataset") + 1] = str(tree.base)
    assert _main(argv) == 0
    tree.check_predictions(tmp_path / "out", "test")


@pytest.mark.parametrize("inside", ["ImageNetS50/out", "ImageNetS50/validation"])
def test_output_dir_inside_the_dataset_is_refused_before_any_work(tree, capsys, inside):
    out = tree.base / inside
    existed = out.exists()
    assert _main(tree.argv(out, "validation")) == 2
    assert "--output-dir" in _error_line(capsys) and out.exists() == existed


@pytest.mark.parametrize("flag, value", [("-k", "0"), ("-T", "0"), ("--batch-size", "0"), ("--limit", "0")])
def test_nonsense_options_exit_2(tree, tmp_path, capsys, flag, value):
    argv = tree.argv(tmp_path / "out", "validation", f"{MODULE}:make_model", flag, value)
    assert exit_status(_main, argv) == 2
    assert flag in _error_line(capsys)


# ---- step 3 for real ----------------------------------------------------------------------------

def test_real_submission_builder_zips_the_test_predictions(tree, tmp_path, steps_three):
    steps_three.use_real()
    out = tmp_path / "out"
    assert _main(tree.argv(out, "test")) == 0
    with zipfile.ZipFile(out / "submission.zip") as archive:
        names = archive.namelist()
        method = archive.read(next(n for n in names if n.endswith("method.txt"))).decode()
    assert sum(n.endswith(".png") for n in names) == len(tree.expected["test"])
    assert "distance matching with dm_fake_models:make_model" in method


def test_real_evaluator_scores_the_exact_predictions(tree, tmp_path, steps_three, capsys):
    steps_three.use_real()
    argv = tree.argv(tmp_path / "out")
    argv.remove("--quiet")
    assert _main(argv) == 0
    tables = capsys.readouterr().out
    assert any(line.split()[:2] == ["Acc", "100.00"] for line in tables.splitlines()), tables


# ---- --compat pass, progress ------------------------------------------------------------------

def test_compat_pass_rematches_validation_predictions_before_scoring(tree, tmp_path, steps_three):
    out = tmp_path / "out"
    assert _main(tree.argv(out, "validation", f"{MODULE}:make_model", "--compat", "pass")) == 0
    tree.check_predictions(out, "validation", border=16)  # torch's nearest shifts borders by a pixel
    match, evaluate = steps_three.calls[:2]
    assert match["call"] == "compute_match" and match["method"] == "image"
    gt_dir = tree.root / "validation-segmentation"
    assert (match["predict_dir"], match["gt_dir"]) == (out / "validation", gt_dir)
    assert evaluate["call"] == "evaluate_predictions"
    assert evaluate["match_file"] == out / "match-validation.json" and evaluate["match_file"].is_file()


def test_compat_pass_scores_through_the_real_match_and_evaluator(tree, tmp_path, steps_three, capsys):
    steps_three.use_real()
    argv = tree.argv(tmp_path / "out", "validation", f"{MODULE}:make_model", "--compat", "pass")
    argv.remove("--quiet")
    assert _main(argv) == 0
    captured = capsys.readouterr()
    assert "re-matched to classes" in captured.err
    assert any(line.split()[:2] == ["Acc", "100.00"] for line in captured.out.splitlines()), captured.out


def test_help_tells_the_two_compat_modes_apart():
    text = " ".join(dm.COMMAND.build_parser("imagenets distance-matching").format_help().split())
    assert "--compat {ours,pass}" in text
    assert "floor(i * in/out)" in text and "re-matched to classes" in text


def test_long_cpu_run_suggests_a_gpu_after_the_first_batch(tree, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dm, "LONG_RUN_S", 0.0)
    argv = tree.argv(tmp_path / "out", "validation", f"{MODULE}:make_model", "--device", "cpu",
                     "--batch-size", "1")
    argv.remove("--quiet")
    assert _main(argv) == 0
    hints = [line for line in capsys.readouterr().err.splitlines() if "--device cuda" in line]
    assert len(hints) == 1 and "more minutes on CPU for the other 2 images" in hints[0]


# ---- the pieces --------------------------------------------------------------------------------

def test_vote_ties_go_to_the_smallest_label(pruned):
    bank = VoteBank(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), torch.tensor([7, 3, 5]),
                    torch.device("cpu"))
    # equally similar to the two first embeddings (labels 7 and 3), k=2
    assert knn_vote(torch.tensor([[2.0, 0.0]]), bank, k=2, temperature=0.07).tolist() == [3]
    assert vote_map(torch.tensor([[[2.0]], [[0.0]]]), bank, k=2, temperature=0.07).unique().tolist() == [3]


def test_vote_weights_favour_near_embeddings_over_many_far_ones():
    embeddings = torch.tensor([[1.0, 0.0]] + [[0.6, 0.8]] * 9)
    bank = VoteBank(embeddings, torch.tensor([4] + [2] * 9), torch.device("cpu"))
    assert knn_vote(torch.tensor([[1.0, 0.1]]), bank, k=10, temperature=0.07).tolist() == [4]
    # with a hot temperature the nine far ones outvote it
    assert knn_vote(torch.tensor([[1.0, 0.1]]), bank, k=10, temperature=10.0).tolist() == [2]


def test_chunked_vote_equals_one_chunk_and_survives_tiny_temperatures():
    generator = torch.Generator().manual_seed(0)
    bank = VoteBank(torch.randn(300, 16, generator=generator),
                    torch.randint(0, 51, (300,), generator=generator), torch.device("cpu"))
    features = torch.randn(200, 16, generator=generator)
    whole = knn_vote(features, bank, k=10, temperature=0.07)
    assert torch.equal(knn_vote(features, bank, k=10, temperature=0.07, chunk_elements=300 * 7), whole)
    assert torch.equal(knn_vote(features, bank, k=1, temperature=1e-6),
                       knn_vote(features, bank, k=1, temperature=0.07))
    assert knn_vote(features, bank, k=500, temperature=1e-4).min() >= 0  # k clamped, no NaN


@pytest.mark.parametrize("prune_from", [dm_vote.PRUNE_MIN_EMBEDDINGS, 0])
def test_vote_map_equals_the_per_pixel_vote_on_upsampled_features(monkeypatch, prune_from):
    monkeypatch.setattr(dm_vote, "PRUNE_MIN_EMBEDDINGS", prune_from)
    generator = torch.Generator().manual_seed(1)
    bank = VoteBank(torch.randn(500, 24, generator=generator),
                    torch.randint(0, 920, (500,), generator=generator), torch.device("cpu"))
    features = torch.randn(24, 5, 7, generator=generator)
    per_pixel = knn_vote(upsample(features).reshape(24, -1).t(), bank, k=10, temperature=0.07)
    for chunk in (1, 20 * 28 * 64, CHUNK_ELEMENTS):
        mapped = vote_map(features, bank, k=10, temperature=0.07, chunk_elements=chunk)
        assert mapped.shape == (20, 28)
        assert torch.equal(mapped.reshape(-1), per_pixel)
    features[:, 0, 0] = 0  # an all-zero feature: every similarity 0, still a label (no NaN)
    assert set(vote_map(features, bank, k=10, temperature=0.07).unique().tolist()) <= set(bank.values.tolist())


@pytest.mark.parametrize("height, width, scale", [(5, 7, 4), (1, 1, 4), (1, 6, 4), (4, 1, 4),
                                                  (2, 2, 4), (3, 4, 3), (3, 3, 2), (2, 3, 1)])
def test_vote_map_equals_the_per_pixel_vote_at_every_map_shape_and_scale(height, width, scale, pruned):
    generator = torch.Generator().manual_seed(height * 10 + width)
    bank = VoteBank(torch.randn(400, 12, generator=generator),
                    torch.randint(0, 30, (400,), generator=generator), torch.device("cpu"))
    features = torch.randn(12, height, width, generator=generator)
    upsampled = F.interpolate(features[None], scale_factor=scale, mode="bilinear", align_corners=False)[0]
    per_pixel = knn_vote(upsampled.reshape(12, -1).t(), bank, k=10, temperature=0.07)
    for chunk in (1, 600, CHUNK_ELEMENTS):
        mapped = vote_map(features, bank, k=10, temperature=0.07, scale=scale, chunk_elements=chunk)
        assert mapped.shape == (height * scale, width * scale)
        assert torch.equal(mapped.reshape(-1), per_pixel)


def test_vote_map_in_bands_of_rows_equals_one_band(monkeypatch, pruned):
    generator = torch.Generator().manual_seed(5)
    bank = VoteBank(torch.randn(300, 8, generator=generator),
                    torch.randint(0, 20, (300,), generator=generator), torch.device("cpu"))
    # smooth features (neighbouring cells alike): few survivors, as with a real backbone
    features = F.interpolate(torch.randn(1, 8, 3, 3, generator=generator), size=(9, 6), mode="bilinear")[0]
    whole = vote_map(features, bank, k=10, temperature=0.07)
    monkeypatch.setattr(dm_vote, "BAND_ELEMENTS", 301 * 6 * 2)  # one row of quads per band
    assert torch.equal(vote_map(features, bank, k=10, temperature=0.07), whole)
    assert torch.equal(whole.reshape(-1), knn_vote(upsample(features).reshape(8, -1).t(), bank, 10, 0.07))


def _torch_nearest(ids: np.ndarray, height: int, width: int) -> np.ndarray:
    resized = F.interpolate(torch.from_numpy(ids)[None, None].float(), size=(height, width), mode="nearest")
    return resized[0, 0].long().numpy()


def test_pass_sampling_shrinks_a_mask_as_torch_nearest_does():
    mask = np.arange(35).reshape(5, 7)  # every pixel its own id: the sampled pixel shows
    legacy = resize_nearest(mask, 2, 3, "legacy")
    assert legacy.tolist() == [[0, 2, 4], [14, 16, 18]] == _torch_nearest(mask, 2, 3).tolist()
    assert resize_nearest(mask, 2, 3).tolist() == [[8, 10, 12], [22, 24, 26]]  # cell centres


def test_pass_sampling_grows_labels_as_torch_nearest_does():
    labels = np.array([[1, 2, 3], [4, 5, 6]])
    legacy = resize_nearest(labels, 5, 7, "legacy")
    assert legacy.tolist() == _torch_nearest(labels, 5, 7).tolist()
    assert legacy[:, 2].tolist() == [1, 1, 1, 4, 4]
    assert resize_nearest(labels, 5, 7)[:, 2].tolist() == [2, 2, 5, 5, 5]  # cell centres
    assert legacy[0].tolist() == [1, 1, 1, 2, 2, 3, 3] != resize_nearest(labels, 5, 7)[0].tolist()


def test_pass_sampling_equals_torch_nearest_for_all_small_and_some_large_sizes():
    pairs = [(s, t) for s in range(1, 40) for t in range(1, 40)]
    pairs += [(64, 375), (84, 500), (500, 84), (341, 256), (1000, 2049), (2049, 1000), (97, 3001)]
    for source, target in pairs:
        column = torch.arange(source, dtype=torch.float32)[None, None, :, None]
        expected = F.interpolate(column, size=(target, 1), mode="nearest")[0, 0, :, 0].long().numpy()
        assert nearest_sources(source, target, "legacy").tolist() == expected.tolist(), (source, target)


def test_nearest_resize_samples_pixel_centres():
    ids = np.arange(6).reshape(2, 3)
    assert resize_nearest(ids, 2, 3).tolist() == ids.tolist()
    assert resize_nearest(ids, 4, 6).tolist() == np.repeat(np.repeat(ids, 2, 0), 2, 1).tolist()
    assert resize_nearest(np.repeat(np.repeat(ids, 4, 0), 4, 1), 2, 3).tolist() == ids.tolist()


def test_shorter_side_becomes_256():
    assert resized_size(500, 375) == (341, 256)
    assert resized_size(375, 500) == (256, 341)
    assert resized_size(256, 256) == (256, 256)


def test_cache_file_name_is_keyed(tmp_path):
    assert cache_path(tmp_path, "ab" * 32).name == "embeddings-" + "ab" * 8 + ".pt"


def test_a_train_semi_file_replaced_with_its_times_kept_changes_the_cache_key(tmp_path):
    """``cp -p`` / ``rsync -a`` keep size and modification time: the embeddings' key must still move."""
    image = tmp_path / "x.JPEG"
    image.write_bytes(b"A" * 64)
    (before,), _ = file_stamps([image])
    times = image.stat()
    replacement = tmp_path / "y.JPEG"
    replacement.write_bytes(b"B" * 64)
    os.utime(replacement, ns=(times.st_atime_ns, times.st_mtime_ns))
    replacement.replace(image)
    (after,), _ = file_stamps([image])
    assert image.stat().st_size == times.st_size and image.stat().st_mtime_ns == times.st_mtime_ns
    assert after != before
