"""Synthetic metadata and benchmarks: official layout, determinism, and masks that mean what they say."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagenets.codec import read_mask
from imagenets.errors import UserError
from imagenets.metadata import load_metadata
from imagenets.subsets import IGNORE, get_subset
from imagenets.demo.synthetic import (synthetic_pair, synthetic_photo, write_synthetic_benchmark, write_synthetic_dataset,
                                 write_synthetic_meta)


def _tree_bytes(root: Path):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A K=50 meta with 60 validation images and its metadata."""
    root = write_synthetic_meta(tmp_path_factory.mktemp("meta"), 50, validation=60, test=7, train_semi=20)
    return load_metadata(root)


def test_meta_defaults_to_the_official_counts(tmp_path):
    meta = load_metadata(write_synthetic_meta(tmp_path, 50))
    subset = get_subset(50)
    assert len(meta.categories(50)) == 50
    assert len(meta.validation_names(50)) == subset.validation == 752
    assert len(meta.mapping(50, "test")) == subset.test
    assert len(meta.train_semi_names(50)) == subset.train_semi
    assert meta.missing_lists(50) == []


def test_meta_files_follow_the_official_style(tmp_path):
    meta = load_metadata(write_synthetic_meta(tmp_path, 300, validation=400, test=30, train_semi=300))
    wnids = meta.categories(300)
    assert all(len(w) == 9 and w.startswith("n9") and w[1:].isdigit() for w in wnids)
    assert meta.class_names(300)[6] == "synthetic class 7"
    image, mask = meta.validation_names(300)[0]
    assert image.split("/")[0] in wnids and image.split("/")[1].startswith("ILSVRC2012_val_")
    assert mask == image[:-len("JPEG")] + "png"
    src, dst = meta.mapping(300, "validation")[0]
    assert dst == image and src.split("/")[1] == dst.split("/")[1]
    semi = meta.train_semi_names(300)[0][0]
    wnid, name = semi.split("/")
    assert name.startswith(wnid + "_") and name.endswith(".JPEG")
    for path in tmp_path.rglob("*.txt"):
        assert not path.read_bytes().endswith(b"\n"), path


def test_meta_validation_and_test_images_are_disjoint(tmp_path):
    meta = load_metadata(write_synthetic_meta(tmp_path, 919, validation=2000, test=3000, train_semi=919))
    val = {src.split("/")[1] for src, _ in meta.mapping(919, "validation")}
    test = {src.split("/")[1] for src, _ in meta.mapping(919, "test")}
    assert len(val) == 2000 and len(test) == 3000 and not val & test
    assert len(meta.categories(919)) == 919
    assert {image.split("/")[0] for image, _ in meta.validation_names(919)} == set(meta.categories(919))


def test_meta_is_the_same_for_the_same_seed(tmp_path):
    write_synthetic_meta(tmp_path / "a", 50, seed=3)
    write_synthetic_meta(tmp_path / "b", 50, seed=3)
    write_synthetic_meta(tmp_path / "c", 50, seed=4)
    assert _tree_bytes(tmp_path / "a") == _tree_bytes(tmp_path / "b")
    assert _tree_bytes(tmp_path / "a") != _tree_bytes(tmp_path / "c")


def test_meta_refuses_more_images_than_imagenet_val(tmp_path):
    with pytest.raises(UserError, match="validation"):
        write_synthetic_meta(tmp_path, 50, validation=40000, test=20000)


def test_benchmark_writes_a_pair_per_validation_line(tmp_path, small):
    result = write_synthetic_benchmark(tmp_path, small, 50, sides=(24, 48), quiet=True)
    assert result["images"] == 60
    for _image, mask in small.validation_names(50):
        gt, pred = read_mask(result["gt_dir"] / mask), read_mask(result["pred_dir"] / mask)
        assert gt.shape == pred.shape and 24 <= min(gt.shape) and max(gt.shape) <= 48
        assert set(np.unique(gt)) <= set(range(51)) | {IGNORE}
        assert pred.max() <= 50


def test_main_object_has_the_class_of_its_folder(small):
    class_ids = small.class_ids(50)
    for index, (_image, mask) in enumerate(small.validation_names(50)[:20]):
        cls = class_ids[mask.split("/")[0]]
        gt, _ = synthetic_pair(0, index, cls, 50, sides=(24, 64))
        assert (gt == cls).any()


def test_more_workers_give_the_same_files(tmp_path, small):
    write_synthetic_benchmark(tmp_path / "serial", small, 50, sides=(24, 48), seed=5, quiet=True,
                              out_of_range=0.5)
    write_synthetic_benchmark(tmp_path / "pool", small, 50, sides=(24, 48), seed=5, quiet=True,
                              out_of_range=0.5, workers=2)
    assert _tree_bytes(tmp_path / "serial") == _tree_bytes(tmp_path / "pool")


def test_perfect_quality_predicts_the_ground_truth_through_the_permutation(tmp_path, small):
    result = write_synthetic_benchmark(tmp_path, small, 50, sides=(24, 48), quality=1.0, quiet=True)
    permutation = result["permutation"]
    assert sorted(permutation.tolist()) == list(range(1, 51))
    assert (permutation != np.arange(1, 51)).any()
    lut = np.concatenate([[0], permutation])
    for _image, mask in small.validation_names(50):
        gt, pred = read_mask(result["gt_dir"] / mask), read_mask(result["pred_dir"] / mask)
        keep = gt != IGNORE
        assert (pred[keep] == lut[gt[keep]]).all()


def test_no_permutation_keeps_class_ids(tmp_path, small):
    result = write_synthetic_benchmark(tmp_path, small, 50, sides=(24, 32), quality=1.0, permute=False,
                                       quiet=True)
    assert result["permutation"].tolist() == list(range(1, 51))


def test_lower_quality_gets_more_pixels_wrong(small):
    def wrong(quality):
        total = 0.0
        for index in range(30):
            gt, pred = synthetic_pair(1, index, 1 + index % 50, 50, sides=(32, 64), quality=quality)
            keep = gt != IGNORE
            total += (gt[keep] != pred[keep]).mean()
        return total

    assert wrong(1.0) == 0 < wrong(0.9) < wrong(0.5)


def test_out_of_range_puts_ids_above_k(tmp_path, small):
    result = write_synthetic_benchmark(tmp_path, small, 50, sides=(24, 48), out_of_range=1.0, quiet=True)
    for _image, mask in small.validation_names(50):
        assert read_mask(result["pred_dir"] / mask).max() > 50


def test_bad_quality_is_a_user_error(tmp_path, small):
    with pytest.raises(UserError, match="quality"):
        write_synthetic_benchmark(tmp_path, small, 50, quality=1.5)


def test_benchmark_on_the_official_lists_uses_the_real_names(tmp_path, meta_dir):
    meta = load_metadata(meta_dir)
    result = write_synthetic_benchmark(tmp_path, meta, 50, sides=(24, 26), quiet=True, workers=2)
    assert result["images"] == 752
    first = meta.validation_names(50)[0][1]
    assert (result["gt_dir"] / first).is_file() and (result["pred_dir"] / first).is_file()


# ---- whole synthetic datasets -------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = write_synthetic_meta(tmp_path_factory.mktemp("tiny"), 50, validation=8, test=4, train_semi=5)
    return load_metadata(root)


def test_imagenet_layout_feeds_prepare(tmp_path, tiny):
    result = write_synthetic_dataset(tmp_path, tiny, 50, sides=(24, 40), train_per_class=1, quiet=True)
    imagenet = result["root"]
    with zipfile.ZipFile(result["annotations_zip"]) as archive:
        names = set(archive.namelist())
        assert names == {f"ImageNetS50/validation-segmentation/{m}" for _, m in tiny.validation_names(50)} | \
            {f"ImageNetS50/train-semi-segmentation/{m}" for _, m in tiny.train_semi_names(50)}
        src, dst = tiny.mapping(50, "validation")[0]
        mask = Image.open(io.BytesIO(archive.read(f"ImageNetS50/validation-segmentation/{dst[:-4]}png")))
        with Image.open(imagenet / "val" / src) as photo:
            assert photo.format == "JPEG" and photo.size == mask.size
    for src, _ in tiny.mapping(50, "test"):
        assert (imagenet / "val" / src).is_file()
    for image, _ in tiny.train_semi_names(50):
        assert (imagenet / "train" / image).is_file()
    assert len(list((imagenet / "train").rglob("*.JPEG"))) == 50 + 5
    assert result["images"] == {"validation": 8, "test": 4, "train-semi": 5, "train": 55}
    assert len(list(result["pred_dirs"]["test"].rglob("*.png"))) == 4


def test_prepared_layout_is_the_tree_prepare_builds(tmp_path, tiny):
    result = write_synthetic_dataset(tmp_path, tiny, 50, layout="prepared", sides=(24, 32), train_per_class=0,
                                     quiet=True, predictions_dir=tmp_path / "elsewhere")
    base = tmp_path / "ImageNetS50"
    assert result["root"] == base and result["annotations_zip"] is None
    for image, mask in tiny.validation_names(50):
        assert (base / "validation" / image).is_file() and (base / "validation-segmentation" / mask).is_file()
        assert (tmp_path / "elsewhere" / "validation" / mask).is_file()
    for image, mask in tiny.train_semi_names(50):
        assert (base / "train-semi" / image).is_file() and (base / "train" / image).is_file()
    assert len(list((base / "test").rglob("*.JPEG"))) == 4


def test_dataset_is_the_same_with_more_workers(tmp_path, tiny):
    for workers in (0, 2):
        write_synthetic_dataset(tmp_path / str(workers), tiny, 50, sides=(24, 32), train_per_class=1,
                                workers=workers, quiet=True)
    assert _tree_bytes(tmp_path / "0") == _tree_bytes(tmp_path / "2")


def test_photo_paints_each_class_in_its_own_colour():
    gt = np.zeros((30, 30), dtype=np.int32)
    gt[5:15, 5:15] = 3
    gt[18:28, 18:28] = 9
    photo = synthetic_photo(gt, 0, 1).astype(float)
    assert (synthetic_photo(gt, 0, 1) == photo).all()
    three, nine = photo[5:15, 5:15].mean((0, 1)), photo[18:28, 18:28].mean((0, 1))
    assert np.abs(three - nine).max() > 20
