"""Boxes with a label tag drawn on a copy of an image: the one drawing routine behind
``predict --annotate``, the app and the video stage.

Pillow is imported when something is drawn, so importing this module costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

Colour = str | tuple[int, int, int]


@dataclass(frozen=True)
class LabelledBox:
    """One box to draw: corners ``(x0, y0, x1, y1)`` in image pixels, its tag and colour.

    ``short_text`` replaces ``text`` when the tag would be much wider than the box; ``thin``
    draws a thinner outline (e.g. a box a tracker predicted rather than detected).
    """

    box: tuple[float, float, float, float]
    text: str
    colour: Colour
    short_text: str | None = None
    thin: bool = False


@lru_cache(maxsize=8)
def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def draw_boxes(image: np.ndarray, boxes: Sequence[LabelledBox], *,
               min_side: int = 0) -> np.ndarray:
    """An RGB copy of ``image`` with each box outlined and its tag in white on its colour,
    above the box where it fits, else inside it.

    Images smaller than ``min_side`` on their longer side are enlarged first (bicubic), so
    tags stay legible; boxes are scaled with them.
    """
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(image).convert("RGB")
    zoom = max(1.0, min_side / max(canvas.size))
    if zoom > 1.0:
        canvas = canvas.resize((round(canvas.width * zoom), round(canvas.height * zoom)),
                               Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(canvas)
    side = max(canvas.size)
    line = max(2, round(side / 240))
    font = _font(max(12, round(side / 28)))
    pad = line
    for item in boxes:
        x0, y0, x1, y1 = (float(v) * zoom for v in item.box)
        draw.rectangle((x0, y0, x1, y1), outline=item.colour,
                       width=max(1, line // 2) if item.thin else line)
        text = item.text
        too_wide = draw.textlength(text, font=font) > max(x1 - x0, 1) * 1.2
        if item.short_text is not None and too_wide:
            text = item.short_text
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        box_w, box_h = right - left + 2 * pad, bottom - top + 2 * pad
        tx = min(max(x0, 0), canvas.width - box_w)
        ty = y0 - box_h if y0 - box_h >= 0 else min(y1, canvas.height - box_h)
        draw.rectangle((tx, ty, tx + box_w, ty + box_h), fill=item.colour)
        draw.text((tx + pad - left, ty + pad - top), text, fill="white", font=font)
    return np.asarray(canvas)
