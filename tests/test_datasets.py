"""``imagenets.datasets.ImageNetS`` and the joint transforms over a small synthetic prepared tree;
torchvision v2 transforms when torchvision imports (CI runs these in its backbones venv, .ci/run)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader

from imagenets import SegmentationMetrics
from imagenets.codec import decode, encode, read_mask
from imagenets.datasets import ImageNetS, collate_list, collate_padded, save_prediction
from imagenets.errors import UserError
from imagenets.metadata import load_metadata
from imagenets.subsets import IGNORE
from imagenets.demo.synthetic import write_synthetic_dataset, write_synthetic_meta
from imagenets.transforms import (CenterCrop, Compose, Normalize, RandomCrop, RandomHorizontalFlip, Resize,
                                  ToTensor, evaluation_transforms, training_transforms)
from helpers import hardlink_copy


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """DEST with ImageNetS50/ (12 validation, 5 test, 6 train-semi images, 1 train image per class)."""
    root = tmp_path_factory.mktemp("tree")
    meta = load_metadata(write_synthetic_meta(root / "meta", 50, validation=12, test=5, train_semi=6))
    write_synthetic_dataset(root / "dest", meta, 50, layout="prepared", sides=(24, 40), train_per_class=1,
                            quiet=True)
    return root


def _data(tree, split, **kwargs):
    return ImageNetS(tree / "dest", 50, split, meta_dir=str(tree / "meta"), **kwargs)


def test_validation_yields_images_and_int64_masks(tree):
    data = _data(tree, "validation")
    assert len(data) == 12
    image, mask = data[3]
    assert isinstance(image, Image.Image) and image.mode == "RGB"
    assert mask.dtype == torch.int64 and tuple(mask.shape) == (image.height, image.width)
    assert torch.equal(mask, torch.from_numpy(read_mask(data.samples[3][1]).astype(np.int64)))
    assert set(mask.unique().tolist()) <= set(range(51)) | {IGNORE}


def test_train_semi_yields_masks_too(tree):
    data = _data(tree, "train-semi")
    assert len(data) == 6
    _image, mask = data[0]
    assert mask.dtype == torch.int64


def test_test_yields_where_its_prediction_goes(tree):
    data = _data(tree, "test")
    image, target = data[0]
    assert len(data) == 5 and isinstance(image, Image.Image)
    # The submission's names: the test mapping's dst with .JPEG -> .png.
    dst = load_metadata(tree / "meta").split_images(50, "test")[0]
    assert target == {"name": dst[:-len("JPEG")] + "png", "size": (image.height, image.width)}
    assert data.prediction_name(0) == target["name"]


def test_train_class_index_follows_the_sorted_categories(tree):
    data = _data(tree, "train")
    assert len(data) == 50 + 6  # one image per class plus the train-semi images
    for path, index in data.samples:
        assert path.split("/")[-2] == data.classes[index]
    assert data[0][1] == data.samples[0][1]


def test_root_may_be_the_subset_folder(tree):
    assert len(ImageNetS(tree / "dest" / "ImageNetS50", 50, "validation", meta_dir=str(tree / "meta"))) == 12


def test_works_in_a_dataloader_with_workers(tree):
    data = _data(tree, "validation", transforms=training_transforms(crop=32, resize=36))
    images, masks = next(iter(DataLoader(data, batch_size=4, num_workers=2)))
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.float32
    assert masks.shape == (4, 32, 32) and masks.dtype == torch.int64


def test_missing_masks_are_named(tree, tmp_path):
    import shutil

    dest = tmp_path / "dest"
    shutil.copytree(tree / "dest", dest)
    data = _data(tree, "validation")
    victim = dest / "ImageNetS50" / "validation-segmentation" / data.samples[0][1].split(
        "validation-segmentation/")[1]
    victim.unlink()
    with pytest.raises(UserError, match=r"1 of 12 validation masks are missing.*imagenets prepare"):
        ImageNetS(dest, 50, "validation", meta_dir=str(tree / "meta"))
    shutil.rmtree(dest / "ImageNetS50" / "test")
    with pytest.raises(UserError, match="test"):
        ImageNetS(dest, 50, "test", meta_dir=str(tree / "meta"))


def test_a_folder_without_the_subset_is_a_user_error(tmp_path, tree):
    with pytest.raises(UserError, match="ImageNetS50"):
        ImageNetS(tmp_path, 50, "validation", meta_dir=str(tree / "meta"))


def test_unknown_split_is_a_user_error(tree):
    with pytest.raises(UserError, match="split"):
        _data(tree, "val")


# ---- from the tree alone (no metadata at hand) ----------------------------------------------------

def test_the_tree_alone_gives_the_official_class_ids_and_samples(tree):
    for split in ("train", "validation", "test", "train-semi"):
        listed, alone = _data(tree, split), ImageNetS(tree / "dest", 50, split)
        assert alone.source == "tree" and listed.source == "--meta-dir"
        assert alone.classes == listed.classes and alone.class_names == alone.classes  # wnids stand in
        # Same samples (the tree's are sorted, the lists' in list order), same prediction names.
        assert sorted(zip(alone.samples, alone.prediction_names)) == \
            sorted(zip(listed.samples, listed.prediction_names))
    train = ImageNetS(tree / "dest", 50, "train")
    assert all(path.split("/")[-2] == train.classes[index] for path, index in train.samples)


def test_the_tree_alone_never_downloads_and_warns_about_counts(tree, monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr("imagenets.metadata.fill_cache", refuse)
    assert len(ImageNetS(tree / "dest", 50, "validation")) == 12
    err = capsys.readouterr().err
    assert "holds 12 images, the official ImageNetS50 validation split 752" in err


def test_without_train_the_class_list_is_unknown_but_masks_still_load(tree, tmp_path):
    import shutil

    dest = tmp_path / "dest"
    shutil.copytree(tree / "dest", dest, ignore=lambda folder, names: ["train"] if folder.endswith("50") else [])
    data = ImageNetS(dest, 50, "validation")
    assert data[0][1].dtype == torch.int64
    with pytest.raises(UserError, match="class list .* unknown.*--steps train"):
        data.classes
    with pytest.raises(UserError, match="--steps train"):
        ImageNetS(dest, 50, "train")


# ---- batches and predictions --------------------------------------------------------------------

def test_collate_list_keeps_variable_sizes(tree):
    data = _data(tree, "validation", transforms=Compose([ToTensor()]))
    images, masks = next(iter(DataLoader(data, batch_size=5, collate_fn=collate_list)))
    assert len(images) == len(masks) == 5
    assert all(tuple(i.shape[1:]) == tuple(m.shape) for i, m in zip(images, masks))
    assert len({tuple(m.shape) for m in masks}) > 1  # the tree's sizes differ


def test_collate_padded_pads_with_ignore_and_keeps_the_metrics(tree):
    data = _data(tree, "validation", transforms=evaluation_transforms(resize=30))
    batch = [data[i] for i in range(6)]
    images, masks = collate_padded(batch)
    h, w = max(m.shape[0] for _, m in batch), max(m.shape[1] for _, m in batch)
    assert images.shape == (6, 3, h, w) and masks.shape == (6, h, w)
    for (image, mask), padded, padded_image in zip(batch, masks, images):
        assert torch.equal(padded[:mask.shape[0], :mask.shape[1]], mask)
        assert (padded == IGNORE).sum() == (mask == IGNORE).sum() + h * w - mask.numel()
        assert torch.equal(padded_image[:, :mask.shape[0], :mask.shape[1]], image)
    alone, together = SegmentationMetrics(50), SegmentationMetrics(50)
    guess = lambda m: (m * 7 + 1) % 51  # noqa: E731  (pixel by pixel: padding changes nothing of it)
    for _, mask in batch:
        alone.update(preds=guess(mask), target=mask)
    together.update(preds=guess(masks), target=masks)
    ours, theirs = alone.compute(), together.compute()
    for key in ("mIoU", "S", "MS", "ML", "L", "Acc", "FMeasure"):
        assert ours[key] == pytest.approx(theirs[key], nan_ok=True), key


def test_collate_padded_needs_tensors(tree):
    with pytest.raises(TypeError, match="ToTensor"):
        collate_padded([_data(tree, "validation")[0]])


def test_save_prediction_writes_a_mask_png_of_the_asked_size(tmp_path):
    ids = torch.tensor([[1, 2], [300, 0]])
    path = save_prediction(tmp_path / "out", "n01234567/ILSVRC2012_val_00000001.png", ids, size=(4, 6))
    assert path == tmp_path / "out" / "n01234567" / "ILSVRC2012_val_00000001.png"
    expected = np.repeat(np.repeat(ids.numpy(), 2, axis=0), 3, axis=1)
    assert (read_mask(path) == expected).all()
    save_prediction(tmp_path / "out", "a/b.png", np.array([[7]], dtype=np.uint8))
    assert read_mask(tmp_path / "out" / "a" / "b.png").tolist() == [[7]]
    for name in ("../x.png", "/abs/x.png", "a/x.jpg"):
        with pytest.raises(ValueError, match="prediction name"):
            save_prediction(tmp_path, name, ids)
    with pytest.raises(TypeError, match="argmax"):
        save_prediction(tmp_path, "a/x.png", torch.rand(2, 2))
    with pytest.raises(ValueError, match="HxW"):
        save_prediction(tmp_path, "a/x.png", ids[None])
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["ILSVRC2012_val_00000001.png", "b.png"]


# ---- joint transforms -----------------------------------------------------------------------------

def _coded_sample(h=20, w=30, seed=0):
    """An image whose colour encodes its mask id, so alignment can be checked pixel by pixel."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 51, size=(h, w))
    return Image.fromarray(encode(ids), "RGB"), torch.from_numpy(ids.astype(np.int64))


def _ids_of(tensor_image):
    rgb = (tensor_image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return decode(rgb)


@pytest.mark.parametrize("seed", range(5))
def test_crop_and_flip_keep_image_and_mask_aligned(seed):
    torch.manual_seed(seed)
    image, mask = _coded_sample(seed=seed)
    out_image, out_mask = Compose([RandomCrop(24), RandomHorizontalFlip(), ToTensor()])(image, mask)
    assert out_image.shape == (3, 24, 24) and out_mask.shape == (24, 24)
    ids = _ids_of(out_image)
    real = out_mask != IGNORE
    assert (ids[real.numpy()] == out_mask[real].numpy()).all()
    # 20 rows padded to 24: the padding is IGNORE in the mask, 0 in the image.
    assert (out_mask == IGNORE).sum() == 4 * 24


def test_resize_sets_the_shorter_side_and_keeps_mask_ids():
    image, mask = _coded_sample(20, 30)
    out_image, out_mask = Resize(40)(image, mask)
    assert (out_image.height, out_image.width) == (40, 60) and out_mask.shape == (40, 60)
    assert set(out_mask.unique().tolist()) <= set(mask.unique().tolist())
    assert out_mask[0, 0] == mask[0, 0] and out_mask[-1, -1] == mask[-1, -1]


def test_resize_and_center_crop_work_on_tensors_too():
    image, mask = _coded_sample(20, 30)
    tensor, _ = ToTensor()(image)
    out_image, out_mask = Compose([Resize((10, 15)), CenterCrop(8)])(tensor, mask)
    assert out_image.shape == (3, 8, 8) and out_mask.shape == (8, 8)


def test_flip_mirrors_both():
    torch.manual_seed(0)
    image, mask = _coded_sample()
    out_image, out_mask = RandomHorizontalFlip(p=1.0)(image, mask)
    assert torch.equal(out_mask, mask.flip(-1))
    assert (decode(np.asarray(out_image)) == out_mask.numpy()).all()


def test_normalize_needs_a_tensor():
    image, mask = _coded_sample()
    with pytest.raises(TypeError, match="ToTensor"):
        Normalize()(image, mask)
    tensor, _ = ToTensor()(image)
    normalized, same = Normalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))(tensor, mask)
    assert same is mask and torch.allclose(normalized, tensor * 2 - 1)


# ---- image and mask stay aligned, whatever transforms (torchvision v2 included) ------------------------

def _image_only_resize(image, mask):
    """A joint transform that forgets the mask: the silent misalignment to refuse."""
    return image.resize((16, 16)), mask


def test_transforms_that_leave_the_mask_behind_are_refused(tree):
    data = _data(tree, "validation", transforms=_image_only_resize)
    with pytest.raises(UserError, match=r"the transforms made the image of sample 0 16x16 but its mask \d+x\d+"):
        data[0]
    image, target = _data(tree, "test", transforms=_image_only_resize)[0]  # no mask: nothing to compare
    assert image.size == (16, 16) and "name" in target


def test_without_torchvision_loaded_the_mask_stays_a_plain_tensor(tree, monkeypatch):
    for name in [name for name in sys.modules if name.split(".")[0] == "torchvision"]:
        monkeypatch.delitem(sys.modules, name)  # not loaded: the mask is not wrapped, nothing imported
    seen = []

    def spy(image, mask):
        seen.append(type(mask))
        return image, mask

    _data(tree, "validation", transforms=spy)[0]
    assert seen == [torch.Tensor] and "torchvision" not in sys.modules


def _torchvision_v2():
    """torchvision's v2 transforms and tv_tensors, or a skip saying why."""
    try:
        v2 = importlib.import_module("torchvision.transforms.v2")
        return v2, importlib.import_module("torchvision.tv_tensors")
    except Exception as exc:  # absent, or a build that does not load beside this torch
        pytest.skip(f"torchvision v2 transforms do not import here ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else ''}); CI runs these in its backbones venv")


@pytest.fixture(scope="module")
def coded_tree(tree, tmp_path_factory):
    """The tree with each validation image replaced by its mask's ids as colours (id = R + 256 G, PNG)."""
    root = hardlink_copy(tree, tmp_path_factory.mktemp("coded") / "tree")
    for image, mask in _data(root, "validation").samples:
        Path(image).unlink()  # a hard link: replace, never edit
        Image.fromarray(encode(read_mask(mask)), "RGB").save(image, format="PNG")
    return root


def test_v2_resize_resizes_the_mask_with_the_image(tree):
    v2, tv_tensors = _torchvision_v2()
    plain = _data(tree, "validation")
    data = _data(tree, "validation", transforms=v2.Compose(
        [v2.Resize((224, 224)), v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]))
    image, mask = data[0]
    assert image.shape == (3, 224, 224) and mask.shape == (224, 224)
    assert type(mask) is torch.Tensor and mask.dtype == torch.int64  # unwrapped for collate and losses
    original = plain[0][1]
    expected = F.interpolate(original[None, None].float(), size=(224, 224), mode="nearest")[0, 0].long()
    assert torch.equal(mask, expected)  # resized as a mask: nearest, never blended ids


@pytest.mark.parametrize("seed", range(3))
def test_v2_random_crops_and_flips_keep_every_pixel_aligned(coded_tree, seed):
    v2, _ = _torchvision_v2()
    nearest = v2.InterpolationMode.NEAREST  # the image's colours are ids: never blend them either
    data = _data(coded_tree, "validation", transforms=v2.Compose([
        v2.ToImage(), v2.RandomResizedCrop(32, scale=(0.2, 1.0), interpolation=nearest),
        v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True)]))
    torch.manual_seed(seed)
    images, masks = next(iter(DataLoader(data, batch_size=4, collate_fn=collate_padded)))
    assert images.shape == (4, 3, 32, 32) and masks.shape == (4, 32, 32)
    for image, mask in zip(images, masks):
        assert (_ids_of(image) == mask.numpy()).all()


def test_v2_image_only_transform_is_refused(tree):
    v2, _ = _torchvision_v2()
    data = _data(tree, "validation", transform=v2.Resize((224, 224)))
    with pytest.raises(UserError, match="the transforms made the image of sample 0 224x224 but its mask"):
        data[0]


def test_our_joint_transforms_give_the_same_with_torchvision_loaded(tree):
    _torchvision_v2()
    torch.manual_seed(0)
    with_tv = _data(tree, "validation", transforms=training_transforms(crop=32, resize=36))[2]
    modules = {name: sys.modules.pop(name) for name in list(sys.modules) if name.split(".")[0] == "torchvision"}
    try:
        torch.manual_seed(0)
        without = _data(tree, "validation", transforms=training_transforms(crop=32, resize=36))[2]
    finally:
        sys.modules.update(modules)
    assert torch.equal(with_tv[0], without[0]) and torch.equal(with_tv[1], without[1])
    assert type(with_tv[1]) is torch.Tensor
