"""Per-class IoU as a bar chart (Pillow only): classes sorted by IoU, with the mIoU line."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from PIL import Image, ImageDraw

from imagenets.fileio import PathLike, atomic_path
from imagenets.palette import colour_of, default_font

LEFT, RIGHT, TOP = 64, 24, 44
PLOT_HEIGHT = 300
#: Below the axis: rotated class names when there are few bars, else only the axis label.
NAMES_HEIGHT, AXIS_HEIGHT = 120, 36
MAX_NAMED_BARS = 60
BACKGROUND = (255, 255, 255)
GRID = (225, 225, 225)
AXIS = (0, 0, 0)
MIOU = (220, 0, 0)


@dataclass(frozen=True)
class Chart:
    """Geometry of a chart of ``bars`` bars."""

    bars: int

    @property
    def bar_width(self) -> int:
        return min(24, max(2, 1200 // max(self.bars, 1)))

    @property
    def gap(self) -> int:
        return 1 if self.bar_width >= 4 else 0

    @property
    def named(self) -> bool:
        return self.bars <= MAX_NAMED_BARS

    @property
    def size(self) -> Tuple[int, int]:
        width = LEFT + self.bars * (self.bar_width + self.gap) + RIGHT
        below = NAMES_HEIGHT if self.named else AXIS_HEIGHT
        return max(width, 360), TOP + PLOT_HEIGHT + below

    @property
    def axis_y(self) -> int:
        """Row of IoU 0."""
        return TOP + PLOT_HEIGHT

    def y_of(self, value: float) -> int:
        """Row of an IoU value (percent, clamped to 0..100)."""
        return self.axis_y - round(min(max(value, 0.0), 100.0) / 100.0 * PLOT_HEIGHT)

    def bar_box(self, rank: int, value: float) -> Tuple[int, int, int, int]:
        """(x0, y0, x1, y1), inclusive, of the bar at ``rank`` (0 = leftmost, highest IoU)."""
        x0 = LEFT + rank * (self.bar_width + self.gap)
        return x0, self.y_of(value), x0 + self.bar_width - 1, self.axis_y - 1


def sorted_classes(ious: Sequence[Optional[float]]) -> List[Tuple[int, float]]:
    """(id, IoU) by decreasing IoU, ties by id; missing values count as 0."""
    clean = [(i, 0.0 if v is None or math.isnan(v) else float(v)) for i, v in enumerate(ious)]
    return sorted(clean, key=lambda item: (-item[1], item[0]))


def draw_chart(ious: Sequence[Optional[float]], labels: Sequence[str], miou: Optional[float] = None,
               title: str = "") -> Image.Image:
    """The chart: one bar per id (its palette colour), sorted, grid every 20 points, the mIoU line."""
    order = sorted_classes(ious)
    chart = Chart(len(order))
    image = Image.new("RGB", chart.size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = default_font(11)
    right = chart.size[0] - RIGHT
    for tick in range(0, 101, 20):
        y = chart.y_of(tick)
        draw.line([(LEFT, y), (right, y)], fill=GRID)
        text = str(tick)
        draw.text((LEFT - 6 - draw.textlength(text, font=font), y - 6), text, fill=AXIS, font=font)
    for rank, (class_id, value) in enumerate(order):
        x0, y0, x1, y1 = chart.bar_box(rank, value)
        if y0 <= y1:
            draw.rectangle([x0, y0, x1, y1], fill=colour_of(class_id))
        if chart.named:
            name = labels[class_id] if class_id < len(labels) else str(class_id)
            _vertical_text(image, f"{name[:18]}", (x0 + chart.bar_width // 2, chart.axis_y + 4), font)
    draw.line([(LEFT, TOP), (LEFT, chart.axis_y)], fill=AXIS)
    draw.line([(LEFT, chart.axis_y), (right, chart.axis_y)], fill=AXIS)
    if miou is not None and not math.isnan(miou):
        y = chart.y_of(miou)
        draw.line([(LEFT, y), (right, y)], fill=MIOU, width=2)
        text = f"mIoU {miou:.2f}"
        draw.text((right - draw.textlength(text, font=font), y - 14), text, fill=MIOU, font=font)
    draw.text((LEFT, 8), title, fill=AXIS, font=default_font(13))
    _vertical_text(image, "IoU (%)", (12, TOP + PLOT_HEIGHT // 2), font, centre=True)
    what = f"{len(order)} ids (0 = other) sorted by IoU"
    draw.text((LEFT, chart.size[1] - 16), what, fill=AXIS, font=font)
    return image


def _vertical_text(image: Image.Image, text: str, anchor: Tuple[int, int], font, centre: bool = False) -> None:
    """Paste ``text`` rotated a quarter turn (reading upwards) with its top centred on ``anchor``."""
    probe = ImageDraw.Draw(image)
    width = int(math.ceil(probe.textlength(text, font=font))) + 2
    strip = Image.new("RGB", (width, 14), BACKGROUND)
    ImageDraw.Draw(strip).text((1, 0), text, fill=AXIS, font=font)
    turned = strip.rotate(90, expand=True)
    x = anchor[0] - turned.width // 2
    y = anchor[1] - turned.height // 2 if centre else anchor[1]
    image.paste(turned, (x, y))


def plot_class_ious(path: PathLike, ious: Sequence[Optional[float]], labels: Sequence[str],
                    miou: Optional[float] = None, title: str = "") -> Path:
    """Write the chart as a PNG, atomically; returns its path."""
    image = draw_chart(ious, labels, miou, title)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)


def plot_result(path: PathLike, result: Dict[str, object], meta, subset) -> Path:
    """The chart of an ``evaluate_predictions`` result, labelled with the class names."""
    labels = ["other"] + list(meta.class_names(subset))
    title = f"{subset.name}: per-class IoU, {result['images']} images" + (
        f", match {Path(str(result['match'])).name}" if result.get("match") else "")
    return plot_class_ious(path, result["IoUs"], labels, result["mIoU"], title)  # type: ignore[arg-type]
