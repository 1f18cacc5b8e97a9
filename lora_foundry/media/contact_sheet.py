"""One picture showing many: thumbnails on a grid, with optional labels under each."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .images import flatten, load_rgb, resize_image

BACKGROUND = (32, 32, 32)
LABEL_COLOUR = (230, 230, 230)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    pixels = np.asarray(image)
    if pixels.dtype != np.uint8:
        raise ValueError(f"contact sheet images must be uint8, got {pixels.dtype}")
    return flatten(pixels, BACKGROUND)  # transparency shows as the sheet's background


def _fit(image: np.ndarray, cell: int) -> np.ndarray:
    """Scale to fit a cell x cell square, aspect kept (enlarging small pictures too)."""
    height, width = image.shape[:2]
    scale = cell / max(height, width)
    return resize_image(np.ascontiguousarray(image), (max(1, round(height * scale)), max(1, round(width * scale))))


def contact_sheet(images: Sequence[np.ndarray], *, columns: int = 6, cell: int = 256,
                  labels: Sequence[str] | None = None) -> np.ndarray:
    """A grid of ``images`` (each fitted into ``cell`` px, centred), labels under them; RGB uint8."""
    from PIL import Image, ImageDraw, ImageFont

    if not images:
        raise ValueError("a contact sheet needs at least one image")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    label_height = 16 if labels is not None else 0
    pitch_x, pitch_y = cell + 4, cell + 4 + label_height
    sheet = np.empty((rows * pitch_y, columns * pitch_x, 3), np.uint8)
    sheet[:] = BACKGROUND
    for position, image in enumerate(images):
        thumb = _fit(_as_rgb(image), cell)
        top = (position // columns) * pitch_y + 2 + (cell - thumb.shape[0]) // 2
        left = (position % columns) * pitch_x + 2 + (cell - thumb.shape[1]) // 2
        sheet[top:top + thumb.shape[0], left:left + thumb.shape[1]] = thumb
    if labels is None:
        return sheet
    canvas = Image.fromarray(sheet)
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    for position, label in enumerate(labels):
        x = (position % columns) * pitch_x + 3
        y = (position // columns) * pitch_y + cell + 4
        draw.text((x, y), str(label)[: max(4, cell // 7)], fill=LABEL_COLOUR, font=font)
    return np.asarray(canvas)


def titled_sheet(paths: Sequence[Path], title: str, thumb: int = 128, columns: int = 6) -> np.ndarray:
    """One RGB sheet of image files: a title bar over up to ``columns * 4`` thumbnails (cut-outs on
    grey), for choosing clusters or checking crops by eye."""
    from PIL import Image, ImageDraw

    shown = [load_rgb(Path(p)) for p in list(paths)[: columns * 4]]
    grid = contact_sheet(shown, columns=columns, cell=thumb) if shown else np.zeros((thumb, thumb, 3), np.uint8)
    canvas = Image.new("RGB", (grid.shape[1], grid.shape[0] + 22), (24, 24, 24))
    canvas.paste(Image.fromarray(grid), (0, 22))
    ImageDraw.Draw(canvas).text((6, 5), title, fill=(240, 240, 240))
    return np.asarray(canvas)
