"""Small charts drawn with Pillow: the pack does not depend on matplotlib (ComfyUI does not ship
it), and a line chart and a bar chart are all the evaluation and the tuner show."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

BACKGROUND = (250, 250, 250)
INK = (30, 30, 30)
GRID = (220, 220, 220)
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75))
VERDICT_COLOURS = {"balanced": (44, 160, 44), "over-fit": (214, 39, 40), "under-fit": (255, 127, 14)}
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 56, 16, 30, 44
LEGEND_WIDTH = 170


def _canvas(width: int, height: int, title: str):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN_LEFT, 8), title, fill=INK)
    return image, draw


def _span(values: Sequence[float]) -> tuple[float, float]:
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    pad = (high - low) * 0.08
    return low - pad, high + pad


def _axes(draw, box: tuple[float, float, float, float], x_span: tuple[float, float],
          y_span: tuple[float, float], x_ticks: Sequence[float], labels: tuple[str, str]) -> None:
    left, right, top, bottom = box
    for i in range(5):
        y = bottom - (bottom - top) * i / 4
        draw.line([(left, y), (right, y)], fill=GRID)
        draw.text((4, y - 6), f"{y_span[0] + (y_span[1] - y_span[0]) * i / 4:.3g}", fill=INK)
    for tick in x_ticks:
        x = left + (tick - x_span[0]) / (x_span[1] - x_span[0]) * (right - left)
        draw.line([(x, bottom), (x, bottom + 3)], fill=INK)
        draw.text((x - 8, bottom + 5), f"{tick:.3g}", fill=INK)
    draw.rectangle([left, top, right, bottom], outline=INK)
    draw.text(((left + right) // 2 - 3 * len(labels[0]), bottom + 22), labels[0], fill=INK)
    draw.text((left + 4, top + 2), labels[1], fill=INK)


def line_chart(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], title: str, x_label: str,
               y_label: str, size: tuple[int, int] = (600, 340), markers_only: Sequence[str] = ()) -> np.ndarray:
    """Lines (or dots, for names in ``markers_only``) with a legend at the right; RGB uint8."""
    width, height = size
    image, draw = _canvas(width, height, title)
    xs = [x for xs_, _ in series.values() for x in xs_]
    ys = [y for _, ys_ in series.values() for y in ys_]
    x_span, y_span = _span(xs), _span(ys)
    plot_right = width - LEGEND_WIDTH
    unique = sorted(set(xs))
    ticks = unique if len(unique) <= 8 else [x_span[0] + (x_span[1] - x_span[0]) * (i + 0.5) / 6 for i in range(6)]
    _axes(draw, (MARGIN_LEFT, plot_right, MARGIN_TOP, height - MARGIN_BOTTOM), x_span, y_span, ticks,
          (x_label, y_label))

    def at(x: float, y: float) -> tuple[float, float]:
        px = MARGIN_LEFT + (x - x_span[0]) / (x_span[1] - x_span[0]) * (plot_right - MARGIN_LEFT)
        py = height - MARGIN_BOTTOM - (y - y_span[0]) / (y_span[1] - y_span[0]) * (height - MARGIN_TOP - MARGIN_BOTTOM)
        return px, py

    for index, (name, (xs_, ys_)) in enumerate(series.items()):
        colour = PALETTE[index % len(PALETTE)]
        points = [at(x, y) for x, y in zip(xs_, ys_, strict=True)]
        if name not in markers_only and len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for px, py in points:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        legend_y = MARGIN_TOP + 6 + 14 * index
        draw.rectangle([plot_right + 8, legend_y + 3, plot_right + 16, legend_y + 11], fill=colour)
        draw.text((plot_right + 20, legend_y), name[:26], fill=INK)
    return np.asarray(image)


def bar_chart(labels: Sequence[str], values: Sequence[float], title: str, size: tuple[int, int] = (420, 340),
              colours: Sequence[tuple[int, int, int]] | None = None, notes: Sequence[str] | None = None,
              top: float | None = None) -> np.ndarray:
    """Vertical bars from 0, value written on each, an optional note (a verdict) under each label."""
    width, height = size
    image, draw = _canvas(width, height, title)
    high = top if top is not None else max([*values, 1e-9]) * 1.1
    left, right, upper, bottom = MARGIN_LEFT, width - MARGIN_RIGHT, MARGIN_TOP, height - MARGIN_BOTTOM
    _axes_y_only(draw, left, right, upper, bottom, high)
    pitch = (right - left) / max(1, len(values))
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        x0 = left + pitch * index + pitch * 0.2
        x1 = left + pitch * (index + 1) - pitch * 0.2
        y = bottom - (bottom - upper) * max(0.0, value) / high
        colour = colours[index] if colours else PALETTE[index % len(PALETTE)]
        draw.rectangle([x0, y, x1, bottom], fill=colour)
        draw.text((x0, y - 13), f"{value:.3f}", fill=INK)
        draw.text((x0, bottom + 4), label[:16], fill=INK)
        if notes:
            draw.text((x0, bottom + 18), notes[index][:16], fill=colour)
    return np.asarray(image)


def _axes_y_only(draw, left: float, right: float, upper: float, bottom: float, high: float) -> None:
    for i in range(5):
        y = bottom - (bottom - upper) * i / 4
        draw.line([(left, y), (right, y)], fill=GRID)
        draw.text((4, y - 6), f"{high * i / 4:.3g}", fill=INK)
    draw.rectangle([left, upper, right, bottom], outline=INK)


def side_by_side(*images: np.ndarray) -> np.ndarray:
    """Charts next to each other on one canvas (heights padded to the tallest)."""
    height = max(image.shape[0] for image in images)
    padded = [np.pad(image, ((0, height - image.shape[0]), (0, 0), (0, 0)), constant_values=250) for image in images]
    return np.concatenate(padded, axis=1)
