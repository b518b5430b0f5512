"""Pictures every consumer shares: distinguishable palette colours, titles that wrap instead of being cut, the
curve legend outside the plot, the report's thumbnails and error map."""

from __future__ import annotations

import itertools

import numpy as np
from PIL import Image, ImageDraw

from imagenets.palette import (MIN_PICTURE_DELTA, UNKNOWN_COLOUR, colorize, colour_of, default_font, lab, palette,
                               picture_colours)
from imagenets.subsets import IGNORE
from imagenets.evaluation.curve_plot import LEGEND_Y, SERIES, draw_curve
from imagenets.evaluation.plot import LEFT, TOP
from imagenets.evaluation.visualize import Layout, render, wrap
from imagenets.evaluation.html_report.pictures import ERRORS, error_map, indexed, thumbnail_size


def delta(a, b) -> float:
    return float(np.sqrt(((lab(np.array(a)) - lab(np.array(b))) ** 2).sum()))


def test_the_50_classes_have_clearly_different_colours():
    colours = [colour_of(i) for i in range(51)]
    assert min(delta(a, b) for a, b in itertools.combinations(colours, 2)) > MIN_PICTURE_DELTA
    assert delta(colour_of(6), colour_of(50)) > MIN_PICTURE_DELTA  # the two magentas of the old palette
    assert all(delta(c, UNKNOWN_COLOUR) > MIN_PICTURE_DELTA for c in colours)


def test_ids_alike_in_the_palette_get_apart_in_one_picture():
    table = lab(palette()[1:])
    d = np.sqrt(((table[:, None] - table[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    a, b = (int(i) + 1 for i in np.unravel_index(np.argmin(d), d.shape))
    assert delta(colour_of(a), colour_of(b)) < MIN_PICTURE_DELTA  # 919 colours cannot all be far apart...
    shown = picture_colours([0, a, b])
    assert shown[min(a, b)] == colour_of(min(a, b))                 # ...so the larger id moves, here only
    assert delta(shown[a], shown[b]) >= MIN_PICTURE_DELTA
    ids = np.array([[a, b]])
    assert [tuple(c) for c in colorize(ids, 919, shown)[0]] == [shown[a], shown[b]]


def test_a_long_title_wraps_on_a_narrow_picture_instead_of_being_cut():
    title = "#12  n01234567/ILSVRC2012_val_00012345.png   image IoU 12.3   (matched) and a long tail of words"
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines = wrap(draw, title, 200, default_font(13))
    assert len(lines) > 1 and "".join(lines).replace(" ", "") == title.replace(" ", "")
    assert all(draw.textlength(line, font=default_font(13)) <= 200 for line in lines)
    gt = np.ones((200, 20), dtype=np.int32)
    picture = render(Image.new("RGB", (20, 200)), gt, gt, 50, {1: "one"}, title)
    assert picture.size == Layout.for_image(200, 20, 1, len(wrap(draw, title, picture.size[0] - 16,
                                                                  default_font(13)))).size


def test_narrow_panels_keep_room_for_their_caption():
    layout = Layout.for_image(160, 10, 1)
    assert layout.width == 10 and layout.slot >= 90
    assert layout.panel_origin(1)[0] - layout.panel_origin(0)[0] >= layout.slot


def test_curve_legend_sits_above_the_plot_not_over_a_line():
    thresholds = [0.0, 0.5, 1.0]
    curve = [{"mIoU": 99.0, "Acc": 99.0, "FMeasure": 99.0}] * 3  # lines along the top, where the legend was
    image = np.asarray(draw_curve(thresholds, curve, 0.5, "t"))
    colours = {name: np.array(colour) for name, colour in SERIES}
    assert LEGEND_Y + 12 <= TOP
    band = image[LEGEND_Y:TOP, LEFT:LEFT + 300]
    assert all((band == c).all(-1).any() for c in colours.values())
    # Inside the plot, the top rows hold the lines' own pixels only: no legend text among them.
    plot_top = image[TOP:TOP + 20, LEFT + 2:LEFT + 200]
    assert not (plot_top < 100).all(-1).any()


def test_error_map_colours_each_kind_of_error_and_hatches_ignore():
    gt = np.array([[1, 1, 0, 0, IGNORE, 2]])
    pred = np.array([[1, 2, 0, 3, 1, 4000]])
    out = error_map(gt, pred, 50, None)
    colours = dict((key, colour) for key, colour, _t in ERRORS)
    assert tuple(out[0, 1]) == colours["wrong"] and tuple(out[0, 3]) == colours["extra"]
    assert tuple(out[0, 5]) == colours["unmatched"]
    assert tuple(out[0, 0]) == tuple(out[0, 2]) == (200, 200, 200)  # right: grey
    missed = error_map(np.array([[1]]), np.array([[0]]), 50, None)
    assert tuple(missed[0, 0]) == colours["missed"]


def test_thumbnails_keep_the_aspect_and_masks_stay_exact():
    assert thumbnail_size(500, 375) == (120, 90) and thumbnail_size(30, 24, enlarge=False) == (30, 24)
    assert thumbnail_size(100, 2000)[1] == 240
    rgb = colorize(np.arange(12).reshape(3, 4), 50)
    assert (np.asarray(indexed(rgb).convert("RGB")) == rgb).all()
