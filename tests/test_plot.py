"""Per-class IoU bar charts: size, sorted bars in their palette colours, the mIoU line."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from imagenets.cli import run_command
from imagenets.codec import write_mask
from imagenets.metadata import load_metadata
from imagenets.palette import colour_of
from imagenets.demo.synthetic import write_synthetic_meta
from imagenets.evaluation.plot import MIOU, Chart, draw_chart, plot_class_ious, sorted_classes


def test_classes_are_sorted_by_iou_then_id():
    assert sorted_classes([10.0, 50.0, None, 50.0, float("nan")]) == [(1, 50.0), (3, 50.0), (0, 10.0),
                                                                      (2, 0.0), (4, 0.0)]


def test_bars_have_their_class_colour_and_height():
    ious = [90.0, 20.0, 60.0, 40.0]
    image = draw_chart(ious, ["other", "a", "b", "c"], miou=52.5, title="t")
    chart = Chart(4)
    assert image.size == chart.size
    for rank, class_id in enumerate([0, 2, 3, 1]):
        x0, y0, x1, y1 = chart.bar_box(rank, ious[class_id])
        assert y0 == chart.y_of(ious[class_id])
        assert image.getpixel(((x0 + x1) // 2, y1 - 1)) == colour_of(class_id)
        assert image.getpixel(((x0 + x1) // 2, y0 - 3)) != colour_of(class_id)  # the bar ends there


def test_miou_line_is_drawn_at_its_value():
    image = draw_chart([100.0, 0.0], ["other", "a"], miou=50.0)
    chart = Chart(2)
    x0, _, x1, _ = chart.bar_box(1, 0.0)
    assert image.getpixel(((x0 + x1) // 2, chart.y_of(50.0))) == MIOU


def test_919_classes_fit_without_names(tmp_path):
    ious = list(np.random.default_rng(0).uniform(0, 100, 920))
    path = plot_class_ious(tmp_path / "c.png", ious, ["x"] * 920, miou=float(np.mean(ious)))
    with Image.open(path) as image:
        assert image.size == Chart(920).size
        assert not Chart(920).named and image.size[0] < 2100


def test_evaluate_plot_writes_the_chart(tmp_path):
    meta_dir = write_synthetic_meta(tmp_path / "meta", 50, validation=4, test=1, train_semi=1)
    meta = load_metadata(meta_dir)
    for _image, mask in meta.validation_names(50):
        ids = np.zeros((6, 8), dtype=np.int32)
        ids[2:, 2:] = meta.class_ids(50)[mask.split("/")[0]]
        write_mask(tmp_path / "gt" / mask, ids)
        write_mask(tmp_path / "pred" / mask, ids)
    plot = tmp_path / "iou.png"
    assert run_command(["evaluate", "--predict-dir", str(tmp_path / "pred"), "--gt-dir", str(tmp_path / "gt"),
                        "--mode", "50", "--meta-dir", str(meta_dir), "--workers", "0", "--quiet",
                        "--plot", str(plot), "--output", str(tmp_path / "r.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    chart = Chart(51)
    with Image.open(plot) as image:
        assert image.size == chart.size
        top = sorted_classes(result["IoUs"])[0]
        x0, y0, x1, y1 = chart.bar_box(0, top[1])
        assert image.getpixel(((x0 + x1) // 2, (y0 + y1) // 2)) == colour_of(top[0])
