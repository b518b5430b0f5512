"""Inline SVG charts of the report: sorted per-class IoU, histograms, size buckets, the threshold curve.

Plain strings, no script: they scale with the page, stay sharp, and read at 919 classes (a curve of
sorted values with its extremes named, not one bar per class).
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

from imagenets.names import shown_html as escape

WIDTH, HEIGHT = 640, 280
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 36, 42
IOU_COLOUR, BOUNDARY_COLOUR, LINE_COLOUR = "#2b6cb0", "#dd6b20", "#c53030"
CURVE_SERIES = (("mIoU", "#c53030"), ("Acc", "#2b6cb0"), ("FMeasure", "#2f855a"))
#: Classes named at each end of the sorted curve.
NAMED = 5


class Frame:
    """A plot area with its axes: maps data to SVG coordinates and collects the elements."""

    def __init__(self, title: str, x_range: Tuple[float, float], y_range: Tuple[float, float],
                 x_label: str, y_label: str, width: int = WIDTH, height: int = HEIGHT):
        self.width, self.height = width, height
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range
        self.pw, self.ph = width - LEFT - RIGHT, height - TOP - BOTTOM
        self.parts: List[str] = [f'<text class="title" x="{LEFT}" y="14">{escape(title)}</text>',
                                 f'<text x="{LEFT + self.pw / 2:.1f}" y="{height - 6}" text-anchor="middle">'
                                 f'{escape(x_label)}</text>',
                                 f'<text transform="translate(12 {TOP + self.ph / 2:.1f}) rotate(-90)" '
                                 f'text-anchor="middle">{escape(y_label)}</text>']

    def x(self, value: float) -> float:
        span = self.x1 - self.x0
        return LEFT + (self.pw / 2 if span <= 0 else (value - self.x0) / span * self.pw)

    def y(self, value: float) -> float:
        span = self.y1 - self.y0
        clamped = min(max(value, self.y0), self.y1)
        return TOP + self.ph - (clamped - self.y0) / span * self.ph

    def y_ticks(self, ticks: Sequence[float], fmt: str = "{:g}") -> None:
        for t in ticks:
            y = self.y(t)
            self.parts.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + self.pw}" y1="{y:.1f}" y2="{y:.1f}"/>'
                              f'<text x="{LEFT - 5}" y="{y + 4:.1f}" text-anchor="end">{fmt.format(t)}</text>')

    def x_ticks(self, ticks: Sequence[float], labels: Optional[Sequence[str]] = None) -> None:
        for i, t in enumerate(ticks):
            x = self.x(t)
            text = labels[i] if labels is not None else f"{t:g}"
            self.parts.append(f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP + self.ph}" '
                              f'y2="{TOP + self.ph + 4}"/><text x="{x:.1f}" y="{TOP + self.ph + 16}" '
                              f'text-anchor="middle">{escape(text)}</text>')

    def legend(self, entries: Sequence[Tuple[str, str]]) -> None:
        """Swatches in the band under the title, above the plot (never over a line)."""
        x = LEFT
        for name, colour in entries:
            self.parts.append(f'<rect x="{x}" y="21" width="14" height="4" fill="{colour}"/>'
                              f'<text x="{x + 18}" y="27">{escape(name)}</text>')
            x += 30 + 6.5 * len(name)

    def svg(self, label: str) -> str:
        axes = (f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + self.ph}"/>'
                f'<line class="axis" x1="{LEFT}" x2="{LEFT + self.pw}" y1="{TOP + self.ph}" y2="{TOP + self.ph}"/>')
        return (f'<svg class="chart" viewBox="0 0 {self.width} {self.height}" role="img" '
                f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
                + "".join(self.parts) + axes + "</svg>")


def nice_ticks(top: float, count: int = 5) -> List[float]:
    """Round ticks (1, 2 or 5 times a power of ten, at least 1 apart) from 0 to at least ``top``."""
    if top <= 0:
        return [0.0, 1.0]
    raw = max(top / count, 1.0)
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if m * step >= raw)
    return [i * step for i in range(int(math.ceil(top / step - 1e-9)) + 1)]


def _short(text: str, size: int = 26) -> str:
    return text if len(text) <= size else text[:size - 1] + "\u2026"


def sorted_iou_chart(classes: Sequence[Tuple[str, float, float]], miou: float) -> str:
    """Per-class IoU sorted from best to worst (a line), each class's boundary IoU as a dot at its rank,
    the mIoU line, and the best and worst classes named. ``classes``: (name, IoU, boundary IoU)."""
    order = sorted(range(len(classes)), key=lambda i: (-classes[i][1], i))
    n = len(order)
    frame = Frame(f"Per-class IoU, {n} ids sorted", (0, max(n - 1, 1)), (0, 100),
                  "classes, best to worst", "percent")
    frame.legend([("IoU", IOU_COLOUR), ("boundary IoU of the same class", BOUNDARY_COLOUR), ("mIoU", LINE_COLOUR)])
    frame.y_ticks(range(0, 101, 20))
    frame.x_ticks(nice_ticks(n - 1, 6)[:-1] if n > 10 else range(n))
    dots = []
    for rank, i in enumerate(order):
        name, value, boundary = classes[i]
        dots.append(f'<circle cx="{frame.x(rank):.1f}" cy="{frame.y(boundary):.1f}" r="1.6"><title>'
                    f'{escape(name)}: IoU {value:.1f}, boundary {boundary:.1f}</title></circle>')
    frame.parts.append(f'<g fill="{BOUNDARY_COLOUR}" fill-opacity="0.45">' + "".join(dots) + "</g>")
    points = " ".join(f"{frame.x(r):.1f},{frame.y(classes[i][1]):.1f}" for r, i in enumerate(order))
    frame.parts.append(f'<polyline fill="none" stroke="{IOU_COLOUR}" stroke-width="2" points="{points}"/>')
    if not math.isnan(miou):
        y = frame.y(miou)
        frame.parts.append(f'<line x1="{LEFT}" x2="{LEFT + frame.pw}" y1="{y:.1f}" y2="{y:.1f}" '
                           f'stroke="{LINE_COLOUR}" stroke-dasharray="5 3"/>'
                           f'<text x="{LEFT + 4}" y="{y - 4:.1f}" fill="{LINE_COLOUR}">mIoU {miou:.2f}</text>')
    named = min(NAMED, n // 2)
    # The best classes are named below the start of the curve, the worst above its end: free space both.
    for j, rank in enumerate(range(named)):
        _label(frame, rank, classes[order[rank]], frame.x(named - 1) + 28, TOP + frame.ph * 0.5 + 13 * j, "start")
    for j, rank in enumerate(range(n - named, n)):
        _label(frame, rank, classes[order[rank]], frame.x(n - named) - 28, TOP + frame.ph * 0.08 + 13 * j, "end")
    zeros = sum(1 for _name, value, _b in classes if value == 0)
    if zeros > named:
        frame.parts.append(f'<text x="{LEFT + frame.pw - 4}" y="{TOP + frame.ph - 6}" text-anchor="end">'
                           f'{zeros} classes at IoU 0</text>')
    return frame.svg("per-class IoU sorted, with boundary IoU")


def _label(frame: Frame, rank: int, item: Tuple[str, float, float], x: float, y: float, anchor: str) -> None:
    name, value, _boundary = item
    px, py = frame.x(rank), frame.y(value)
    end = x - 3 if anchor == "start" else x + 3
    frame.parts.append(f'<line class="leader" x1="{px:.1f}" y1="{py:.1f}" x2="{end:.1f}" y2="{y - 4:.1f}"/>'
                       f'<text class="name" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">'
                       f'{escape(_short(name))} {value:.1f}</text>')


def histogram_chart(title: str, series: Sequence[Tuple[str, Sequence[float], str]], what: str,
                    bins: int = 20) -> str:
    """Side-by-side histograms over 0..100 of each series (name, values, colour); NaNs left out."""
    width = 100.0 / bins
    counts = []
    for _name, values, _colour in series:
        row = [0] * bins
        for v in values:
            if not math.isnan(v):
                row[min(int(v // width), bins - 1)] += 1
        counts.append(row)
    ticks = nice_ticks(max((max(r) for r in counts), default=1))
    frame = Frame(title, (0, 100), (0, ticks[-1]), "percent", what)
    frame.legend([(name, colour) for name, _v, colour in series])
    frame.y_ticks(ticks)
    frame.x_ticks(range(0, 101, 10))
    bar = frame.pw / bins / len(series)
    for s, ((name, _values, colour), row) in enumerate(zip(series, counts)):
        for b, count in enumerate(row):
            if count:
                x = frame.x(b * width) + s * bar
                y = frame.y(count)
                frame.parts.append(f'<rect x="{x + 0.5:.1f}" y="{y:.1f}" width="{max(bar - 1, 1):.1f}" '
                                   f'height="{TOP + frame.ph - y:.1f}" fill="{colour}"><title>{escape(name)} '
                                   f'{b * width:g}-{(b + 1) * width:g}: {count}</title></rect>')
    return frame.svg(title)


def bucket_chart(groups: Sequence[Tuple[str, Optional[float], Optional[float]]],
                 intervals: Dict[str, Tuple[Optional[Sequence[float]], Optional[Sequence[float]]]]) -> str:
    """IoU beside boundary IoU for all pixels and each size bucket, with 95% intervals when computed.
    ``groups``: (label, IoU, boundary IoU); ``intervals``: label -> (IoU interval, boundary interval)."""
    frame = Frame("Size buckets and boundaries", (0, len(groups)), (0, 100), "objects by their share of the image",
                  "percent")
    frame.legend([("IoU", IOU_COLOUR), ("boundary IoU", BOUNDARY_COLOUR), ("95% interval", "#222")])
    frame.y_ticks(range(0, 101, 20))
    slot = frame.pw / len(groups)
    for g, (label, value, boundary) in enumerate(groups):
        frame.parts.append(f'<text x="{LEFT + slot * (g + 0.5):.1f}" y="{TOP + frame.ph + 16}" '
                           f'text-anchor="middle">{escape(label)}</text>')
        for s, (v, colour, ci) in enumerate(((value, IOU_COLOUR, intervals.get(label, (None, None))[0]),
                                             (boundary, BOUNDARY_COLOUR, intervals.get(label, (None, None))[1]))):
            x = LEFT + slot * g + slot * (0.18 + 0.32 * s)
            w = slot * 0.3
            if v is None:
                frame.parts.append(f'<text x="{x + w / 2:.1f}" y="{TOP + frame.ph - 4}" text-anchor="middle">n/a</text>')
                continue
            y = frame.y(v)
            whisker = ci is not None and ci[0] is not None and ci[1] is not None
            label_y = min(y, frame.y(ci[1])) if whisker else y  # the value sits above its interval, not on it
            frame.parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{TOP + frame.ph - y:.1f}" '
                               f'fill="{colour}"/><text x="{x + w / 2:.1f}" y="{max(label_y - 3, TOP - 2):.1f}" '
                               f'text-anchor="middle">{v:.1f}</text>')
            if whisker:
                lo, hi, mid = frame.y(ci[0]), frame.y(ci[1]), x + w / 2
                frame.parts.append(f'<path class="ci" d="M{mid:.1f} {lo:.1f}V{hi:.1f}M{mid - 4:.1f} {lo:.1f}'
                                   f'h8M{mid - 4:.1f} {hi:.1f}h8"/>')
    return frame.svg("IoU and boundary IoU by object size")


def curve_chart(thresholds: Sequence[float], curve: Sequence[Dict[str, float]], best: float) -> str:
    """mIoU, Acc and FMeasure against the threshold, the best threshold marked (legend above the plot)."""
    lo, hi = min(thresholds), max(thresholds)
    frame = Frame("Threshold curve: 'other' where the score is below t", (lo, hi), (0, 100),
                  "threshold t", "percent")
    frame.legend([*CURVE_SERIES, (f"best t = {best:g}", "#718096")])
    frame.y_ticks(range(0, 101, 20))
    span = hi - lo
    step = next((s for s in (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0) if span / s <= 10), span or 1)
    first = math.ceil(lo / step - 1e-9) * step
    frame.x_ticks([round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)])
    x = frame.x(best)
    frame.parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + frame.ph}" stroke="#718096" '
                       f'stroke-dasharray="4 3"/>')
    for name, colour in CURVE_SERIES:
        points = " ".join(f"{frame.x(t):.1f},{frame.y(row[name]):.1f}" for t, row in zip(thresholds, curve))
        if len(thresholds) > 1:
            frame.parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        else:
            px, py = points.split(",")
            frame.parts.append(f'<circle cx="{px}" cy="{py}" r="3" fill="{colour}"/>')
    return frame.svg("threshold curve")
