"""Drawing tracked faces on video frames: one colour per track, ``#id label score%``.

Drawn in NumPy straight into the frame: boxes are four array slices, and each label is
rendered once by Pillow and then reused from a cache, so drawing costs a small fraction
of a millisecond per frame instead of a round trip through a Pillow image.
:func:`draw_tracks_yuv` draws the same into the planes of a decoded YUV 4:2:0 frame, so the
annotated video can be encoded from the decoder's own frames without converting every
frame from RGB back to YUV.
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


#: RGB -> Y'CbCr, ITU-R BT.601 limited range (what FFmpeg assumes for untagged video).
_BT601 = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0],
                   [112.0, -93.786, -18.214]]) / 255.0
_BT601_OFFSET = np.array([16.0, 128.0, 128.0])


def rgb_to_yuv(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (..., 3) -> uint8 Y'CbCr (..., 3), BT.601 limited range."""
    yuv = rgb.astype(np.float32) @ _BT601.T.astype(np.float32) + _BT601_OFFSET
    return np.clip(np.rint(yuv), 0, 255).astype(np.uint8)


@lru_cache(maxsize=512)
def _yuv_tile(text: str, size: int, colour: tuple[int, int, int],
              pad: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The label tile as a luma plane and two half-resolution chroma planes (cached)."""
    tile = label_tile(text, size, colour, pad)
    tile = tile[:tile.shape[0] // 2 * 2, :tile.shape[1] // 2 * 2]
    yuv = rgb_to_yuv(tile).astype(np.float32)
    h, w = yuv.shape[:2]
    chroma = yuv[..., 1:].reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3))
    planes = (yuv[..., 0], chroma[..., 0], chroma[..., 1])
    return tuple(np.rint(p).astype(np.uint8) for p in planes)  # type: ignore[return-value]


def draw_tracks_yuv(planes: tuple[np.ndarray, np.ndarray, np.ndarray],
                    faces: Sequence) -> None:
    """:func:`draw_tracks` into the Y, U, V planes of a 4:2:0 frame (writable views; U and
    V at half the size of Y)."""
    luma, cb, cr = planes
    side = min(luma.shape[:2])
    line = max(2, round(side / 240)) // 2 * 2
    size = max(12, round(side / 32))
    for face in faces:
        colour = track_colour(face.track_id)
        y, u, v = (np.array([c], np.uint8) for c in rgb_to_yuv(np.array(colour, np.uint8)))
        width = line if face.detection_score is not None else max(2, line // 2)
        box = [int(round(c)) // 2 * 2 for c in face.box]
        _outline(luma, box, y, width)
        half = [c // 2 for c in box]
        _outline(cb, half, u, max(1, width // 2))
        _outline(cr, half, v, max(1, width // 2))
        tile = _yuv_tile(f"#{face.track_id} {face.label} {face.score:.0%}", size, colour,
                         line)
        th = tile[0].shape[0]
        ty = box[1] - th if box[1] - th >= 0 else box[3]
        x, y0 = _clamp_even(box[0], ty, tile[0].shape, luma.shape)
        _paste(luma, tile[0], x, y0)
        _paste(cb, tile[1], x // 2, y0 // 2)
        _paste(cr, tile[2], x // 2, y0 // 2)


def _clamp_even(x: int, y: int, tile_shape: tuple[int, ...],
                frame_shape: tuple[int, ...]) -> tuple[int, int]:
    """The tile's corner kept inside the frame and on even pixels (chroma alignment)."""
    x = min(max(x, 0), max(frame_shape[1] - tile_shape[1], 0))
    y = min(max(y, 0), max(frame_shape[0] - tile_shape[0], 0))
    return x // 2 * 2, y // 2 * 2
