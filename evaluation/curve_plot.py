"""The threshold curve as a line chart (Pillow only): mIoU, Acc and FMeasure against the threshold."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from PIL import Image, ImageDraw

from imagenets.fileio import PathLike, atomic_path
from imagenets.palette import default_font

from .plot import AXIS, BACKGROUND, GRID, LEFT, MIOU, PLOT_HEIGHT, RIGHT, TOP, _vertical_text

PLOT_WIDTH = 600
BOTTOM = 52
SERIES: Tuple[Tuple[str, Tuple[int, int, int]], ...] = (
    ("mIoU", MIOU), ("Acc", (30, 90, 200)), ("FMeasure", (20, 150, 60)))
BEST = (120, 120, 120)
#: Top of the legend row: below the title (at 8), above the plot (at TOP).
LEGEND_Y = TOP - 17


def _x_ticks(lo: float, hi: float) -> List[float]:
    """About six round ticks between ``lo`` and ``hi``."""
    span = hi - lo
    if span <= 0:
        return [lo]
    step = next(s for s in (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0) if span / s <= 8)
    first = -(-lo // step) * step
    count = int((hi - first) / step + 1e-9) + 1
    return [round(first + i * step, 10) for i in range(count)]


def draw_curve(thresholds: Sequence[float], curve: Sequence[Dict[str, float]], best: float,
               title: str = "") -> Image.Image:
    """One line per metric (percent, 0..100) over the thresholds, with the best threshold marked."""
    width, height = LEFT + PLOT_WIDTH + RIGHT, TOP + PLOT_HEIGHT + BOTTOM
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = default_font(11)
    lo, hi = float(min(thresholds)), float(max(thresholds))
    axis_y, right = TOP + PLOT_HEIGHT, LEFT + PLOT_WIDTH

    def x_of(t: float) -> int:
        return LEFT + (round((t - lo) / (hi - lo) * PLOT_WIDTH) if hi > lo else PLOT_WIDTH // 2)

    def y_of(value: float) -> int:
        return axis_y - round(min(max(value, 0.0), 100.0) / 100.0 * PLOT_HEIGHT)

    for tick in range(0, 101, 20):
        draw.line([(LEFT, y_of(tick)), (right, y_of(tick))], fill=GRID)
        text = str(tick)
        draw.text((LEFT - 6 - draw.textlength(text, font=font), y_of(tick) - 6), text, fill=AXIS, font=font)
    for tick in _x_ticks(lo, hi):
        x = x_of(tick)
        draw.line([(x, axis_y), (x, axis_y + 4)], fill=AXIS)
        text = f"{tick:g}"
        draw.text((x - draw.textlength(text, font=font) / 2, axis_y + 6), text, fill=AXIS, font=font)
    bx = x_of(best)
    for y in range(TOP, axis_y, 6):  # dashed marker of the best threshold
        draw.line([(bx, y), (bx, min(y + 3, axis_y))], fill=BEST)
    for name, colour in SERIES:
        points = [(x_of(t), y_of(row[name])) for t, row in zip(thresholds, curve)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        else:  # one threshold: a dot
            x, y = points[0]
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
    draw.line([(LEFT, TOP), (LEFT, axis_y)], fill=AXIS)
    draw.line([(LEFT, axis_y), (right, axis_y)], fill=AXIS)
    # The legend sits in the band between the title and the plot: inside the plot it hid the Acc line.
    legend_x = LEFT
    for name, colour in SERIES:
        draw.line([(legend_x, LEGEND_Y + 6), (legend_x + 16, LEGEND_Y + 6)], fill=colour, width=2)
        draw.text((legend_x + 20, LEGEND_Y), name, fill=AXIS, font=font)
        legend_x += 28 + int(draw.textlength(name, font=font))
    draw.text((LEFT, 8), title, fill=AXIS, font=default_font(13))
    _vertical_text(image, "percent", (12, TOP + PLOT_HEIGHT // 2), font, centre=True)
    draw.text((LEFT + PLOT_WIDTH // 2 - 80, height - 18), "threshold ('other' below it)", fill=AXIS, font=font)
    return image


def plot_curve(path: PathLike, result: Dict[str, object]) -> Path:
    """Write the chart of a ``threshold_curve`` result as a PNG, atomically; returns its path."""
    best = result["best"]
    how = "rematched at every t" if result.get("rematch") else (
        f"match {Path(str(result['match'])).name}" if result.get("match") else "no match")
    title = (f"{result['subset']}: {result['images']} images, {how}; best t={result['best_threshold']!r} "
             f"(mIoU {best['mIoU']:.2f})")  # type: ignore[index]
    image = draw_curve(result["thresholds"], result["curve"],  # type: ignore[arg-type]
                       result["best_threshold"], title)  # type: ignore[arg-type]
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)
