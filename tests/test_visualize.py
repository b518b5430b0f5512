"""``imagenets visualize``: per-image IoU, pictures with the expected size and colours, a sorted gallery."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from PIL import Image

from imagenets.cli import run_command
from imagenets.errors import UserError
from imagenets.metadata import load_metadata
from imagenets.palette import HATCH_COLOURS, UNKNOWN_COLOUR, colour_of, palette
from imagenets.subsets import IGNORE
from imagenets.demo.synthetic import write_synthetic_dataset, write_synthetic_meta
from imagenets.evaluation.visualize import Layout, image_iou, render, sort_scores
from imagenets.idmaps import resize_nearest as resize_ids


def test_image_iou_averages_the_ids_present_without_ignore():
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [IGNORE, IGNORE, 2, 2]])
    pred = np.array([[0, 0, 1, 1], [0, 1, 1, 1], [5, 5, 2, 99]])
    iou, gt_ids, pred_ids = image_iou(gt, pred, 50)
    # other 3/4, class 1 4/5, class 2 1/2 (the 99 is out of range: wrong, and not an id of its own)
    assert iou == pytest.approx(100 * (3 / 4 + 4 / 5 + 1 / 2) / 3)
    assert gt_ids == [0, 1, 2] and pred_ids == [0, 1, 2]


def test_image_iou_of_an_all_ignore_image_is_nan():
    iou, _, _ = image_iou(np.full((2, 2), IGNORE), np.zeros((2, 2), dtype=int), 50)
    assert math.isnan(iou)


def test_sorting_puts_images_without_pixels_last():
    scores = [{"mask": m, "iou": v} for m, v in (("a", 50.0), ("b", math.nan), ("c", 10.0), ("d", 90.0))]
    assert [s["mask"] for s in sort_scores(scores, "worst")] == ["c", "a", "d", "b"]
    assert [s["mask"] for s in sort_scores(scores, "best")] == ["d", "a", "c", "b"]
    assert [s["mask"] for s in sort_scores(scores, "name")] == ["a", "b", "c", "d"]


def test_picture_has_the_layout_size_and_the_palette_colours():
    gt = np.zeros((40, 60), dtype=np.int32)
    gt[10:30, 10:40] = 7
    gt[:, 55:] = IGNORE
    pred = np.zeros_like(gt)
    pred[10:30, 20:50] = 12
    pred[0:3, 0:3] = 4000  # an id without a class
    photo = Image.new("RGB", (60, 40), (10, 200, 30))
    picture = render(photo, gt, pred, 50, {0: "other", 7: "seven", 12: "twelve"}, "title")
    layout = Layout.for_image(40, 60, 5)
    assert picture.size == layout.size
    scale = layout.height / 40
    x_img, y = layout.panel_origin(0)
    x_gt, _ = layout.panel_origin(1)
    x_pred, _ = layout.panel_origin(2)

    def at(x0, col, row):
        return picture.getpixel((x0 + int((col + 0.5) * scale), y + int((row + 0.5) * scale)))

    assert at(x_img, 30, 20) == (10, 200, 30)
    assert at(x_gt, 25, 20) == colour_of(7) == tuple(palette()[7])
    assert at(x_gt, 5, 5) == colour_of(0)
    assert at(x_pred, 45, 20) == colour_of(12)
    assert at(x_pred, 1, 1) == UNKNOWN_COLOUR
    hatched = {at(x_gt, 57, row) for row in range(0, 40, 2)}
    assert hatched == set(HATCH_COLOURS)


def test_resize_ids_never_blends():
    ids = np.array([[1, 2], [3, 4]])
    assert set(np.unique(resize_ids(ids, 7, 5))) == {1, 2, 3, 4}
    assert (resize_ids(ids, 4, 4) == np.kron(ids, np.ones((2, 2), dtype=int))).all()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("vis")
    meta = load_metadata(write_synthetic_meta(root / "meta", 50, validation=10, test=1, train_semi=1))
    result = write_synthetic_dataset(root, meta, 50, layout="prepared", sides=(24, 40), train_per_class=0,
                                     quality=0.7, quiet=True)
    match = {"0": 0}
    match.update({str(int(cluster)): c for c, cluster in enumerate(result["permutation"], 1)})
    (root / "match.json").write_text(json.dumps(match))
    return root


def _visualize(prepared, out, *extra):
    subset = prepared / "ImageNetS50"
    return run_command(["visualize", "--images", str(subset / "validation"), "--gt-dir",
                        str(subset / "validation-segmentation"), "--predict-dir",
                        str(prepared / "predictions" / "validation"), "--match", str(prepared / "match.json"),
                        "--mode", "50", "--meta-dir", str(prepared / "meta"), "-o", str(out), "--workers", "0",
                        "--quiet", *extra])


def test_every_picture_is_drawn_and_the_gallery_shows_the_worst_first(prepared, tmp_path):
    assert _visualize(prepared, tmp_path / "out", "--limit", "0") == 0
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    ious = [s["iou"] for s in scores["images"]]
    assert len(ious) == 10 and ious == sorted(ious)
    page = (tmp_path / "out" / "index.html").read_text()
    linked = re.findall(r'<img src="([^"]+)"', page)
    assert linked == [s["picture"] for s in scores["images"]]
    for rel in linked:
        with Image.open(tmp_path / "out" / rel) as picture:
            assert picture.mode == "RGB" and picture.width >= 480


def test_limit_and_best_first(prepared, tmp_path):
    assert _visualize(prepared, tmp_path / "out", "--limit", "3", "--sort", "best") == 0
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())["images"]
    assert [s["picture"] is not None for s in scores] == [True] * 3 + [False] * 7
    assert scores[0]["iou"] >= scores[-1]["iou"]
    assert len(list((tmp_path / "out" / "pictures").rglob("*.png"))) == 3


def test_missing_images_are_a_clear_error(prepared, tmp_path, capsys):
    subset = prepared / "ImageNetS50"
    (tmp_path / "empty").mkdir()
    assert run_command(["visualize", "--images", str(tmp_path / "empty"), "--gt-dir", str(subset / "validation-segmentation"),
                        "--predict-dir", str(prepared / "predictions" / "validation"), "--mode", "50",
                        "--meta-dir", str(prepared / "meta"), "-o", str(tmp_path / "o"), "--quiet"]) == 2
    assert "10 of 10 images are missing" in capsys.readouterr().err


def test_negative_limit_is_refused(prepared, tmp_path):
    from imagenets.evaluation.visualize import visualize

    with pytest.raises(UserError, match="--limit"):
        visualize(tmp_path, tmp_path, tmp_path, tmp_path, "50", limit=-1)
