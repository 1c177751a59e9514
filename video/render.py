"""Drawing tracked faces on video frames: one colour per track, ``#id label score%``.

Drawn in NumPy straight into the frame: boxes are four array slices, and each label is
rendered once by Pillow and then reused from a cache, so drawing costs a small fraction
of a millisecond per frame instead of a round trip through a Pillow image.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

#: Track colours, cycled by track id, so a face keeps its colour as its label changes.
TRACK_COLOURS = ((230, 72, 77), (62, 99, 221), (48, 164, 108), (245, 165, 36),
                 (142, 78, 198), (233, 61, 130), (18, 165, 148), (0, 145, 255))


def track_colour(track_id: int) -> tuple[int, int, int]:
    return TRACK_COLOURS[(track_id - 1) % len(TRACK_COLOURS)]


@lru_cache(maxsize=512)
def label_tile(text: str, size: int, colour: tuple[int, int, int], pad: int) -> np.ndarray:
    """``text`` in white on a ``colour`` background, as an RGB array (cached)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=size)
    left, top, right, bottom = font.getbbox(text)
    tile = Image.new("RGB", (right - left + 2 * pad, bottom - top + 2 * pad), colour)
    ImageDraw.Draw(tile).text((pad - left, pad - top), text, fill=(255, 255, 255), font=font)
    array = np.asarray(tile)
    array.flags.writeable = False
    return array


def _outline(frame: np.ndarray, box: Sequence[float], colour: np.ndarray, width: int) -> None:
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, x1 = max(min(x0, x1), 0), min(max(x0, x1), w)
    y0, y1 = max(min(y0, y1), 0), min(max(y0, y1), h)
    if x1 <= x0 or y1 <= y0:
        return
    frame[y0:min(y0 + width, y1), x0:x1] = colour
    frame[max(y1 - width, y0):y1, x0:x1] = colour
    frame[y0:y1, x0:min(x0 + width, x1)] = colour
    frame[y0:y1, max(x1 - width, x0):x1] = colour


def _paste(frame: np.ndarray, tile: np.ndarray, x: int, y: int) -> None:
    h, w = frame.shape[:2]
    th, tw = tile.shape[:2]
    x, y = min(max(x, 0), max(w - tw, 0)), min(max(y, 0), max(h - th, 0))
    frame[y:y + th, x:x + tw] = tile[:h - y, :w - x]


def draw_tracks(frame: np.ndarray, faces: Sequence) -> np.ndarray:
    """Box and label (``#id label score%``) each tracked face on ``frame``, a writable
    uint8 RGB array drawn on in place and returned. Boxes the tracker predicted (the face
    was not detected in this frame) are drawn thinner."""
    out = frame
    side = min(out.shape[:2])
    line = max(2, round(side / 240))
    size = max(12, round(side / 32))
    for face in faces:
        colour = track_colour(face.track_id)
        width = line if face.detection_score is not None else max(1, line // 2)
        _outline(out, face.box, np.array(colour, np.uint8), width)
        tile = label_tile(f"#{face.track_id} {face.label} {face.score:.0%}", size, colour, line)
        x0, y0, _, y1 = (int(round(v)) for v in face.box)
        above = y0 - tile.shape[0]
        _paste(out, tile, x0, above if above >= 0 else y1)
    return out
