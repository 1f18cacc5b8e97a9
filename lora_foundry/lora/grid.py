"""Composition grid: samples of a weight sweep laid out with the weights written on the axes.

With axes (from a sweep) the grid has one column per value of the last swept LoRA and one row per
combination of the others, headed by those weights; without axes every cell carries its own
label (one line per word, so cells stay narrow). Images are uint8 ``[H, W, 3]`` arrays (the node
converts ComfyUI's IMAGE with ``tensors``); cells of different sizes are centred on the largest cell size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
PAD = 6


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def _text_size(draw: Any, text: str, font: Any) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def _layout(count: int, axes: dict[str, Any] | None, columns: int) -> tuple[int, list[str], list[str]]:
    """(columns, column headers, row headers) for ``count`` cells."""
    x = (axes or {}).get("x")
    if x and count % len(x["values"]) == 0:
        cols = len(x["values"])
        col_heads = [f"{x['name']} {v:g}" for v in x["values"]]
        rows = count // cols
        y = (axes or {}).get("y")
        row_heads = ([f"{y['name']} {v:g}" for v in y["values"]]
                     if y and len(y["values"]) == rows else [str(r + 1) for r in range(rows)]
                     if rows > 1 else [])
        return cols, col_heads, row_heads
    cols = columns if columns > 0 else max(1, math.ceil(math.sqrt(count)))
    return cols, [], []


def make_grid(images: Sequence[Any], labels: Sequence[str], axes: dict[str, Any] | None = None,
              columns: int = 0, font_size: int = 14) -> Any:
    """One uint8 ``[H, W, 3]`` array holding every image, labelled; see the module docstring."""
    import numpy as np
    from PIL import Image, ImageDraw

    if not images:
        raise ValueError("the grid needs at least one image")
    cols, col_heads, row_heads = _layout(len(images), axes, columns)
    rows = math.ceil(len(images) / cols)
    font = _font(font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = _text_size(probe, "Ag0.9", font)[1] + PAD
    cell_lines = [] if col_heads else [label.split(" ") for label in labels]
    texts = col_heads + [line for lines in cell_lines for line in lines]
    cell_h = max(int(im.shape[0]) for im in images)
    cell_w = max([int(im.shape[1]) for im in images] + [_text_size(probe, t, font)[0] for t in texts])
    label_h = line_h * max((len(lines) for lines in cell_lines), default=0)
    left = max((_text_size(probe, t, font)[0] for t in row_heads), default=0) + (2 * PAD if row_heads else 0)
    top = line_h + PAD if col_heads else 0
    width = left + cols * (cell_w + PAD) + PAD
    height = top + rows * (cell_h + label_h + PAD) + PAD
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for c, text in enumerate(col_heads):
        draw.text((left + PAD + c * (cell_w + PAD), PAD), text, fill=INK, font=font)
    for r, text in enumerate(row_heads):
        draw.text((PAD, top + PAD + r * (cell_h + label_h + PAD) + cell_h // 2), text, fill=INK, font=font)
    for index, image in enumerate(images):
        r, c = divmod(index, cols)
        x0 = left + PAD + c * (cell_w + PAD)
        y0 = top + PAD + r * (cell_h + label_h + PAD)
        tile = Image.fromarray(np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[..., :3]))
        canvas.paste(tile, (x0 + (cell_w - tile.width) // 2, y0 + (cell_h - tile.height) // 2))
        for n, line in enumerate(cell_lines[index] if index < len(cell_lines) else []):
            draw.text((x0, y0 + cell_h + 2 + n * line_h), line, fill=INK, font=font)
    return np.asarray(canvas, dtype=np.uint8)
