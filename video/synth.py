"""Synthetic test clips: a photo panned and zoomed over a gray background, encoded by PyAV.

Tests and the speed measurement make their own videos with :func:`make_clip`, so they need
no footage from outside. ``hidden`` frames cover the photo (the face disappears), to check
that tracks survive short misses.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

import numpy as np

from ..runtime.image import read_image
from .io import import_av

#: The default photo: Grace Hopper, from the app's public-domain examples.
DEFAULT_PHOTO = Path(str(files("emotion_edge.app") / "examples" / "grace_hopper.jpg"))


def clip_frames(photo: str | Path = DEFAULT_PHOTO, *, frames: int = 30, width: int = 640,
                height: int = 480, hidden: frozenset[int] = frozenset(),
                zoom: tuple[float, float] = (0.8, 1.0), crossing: bool = False,
                noise: float = 0.0, seed: int = 0) -> Iterator[np.ndarray]:
    """RGB frames: ``photo`` scaled from ``zoom[0]`` to ``zoom[1]`` of the frame height
    while it moves from the left third to the right third of the frame; frames in
    ``hidden`` show the background only. ``crossing`` adds a second, mirrored copy moving
    the other way a little lower, so two faces cross. ``noise`` adds Gaussian noise of that
    standard deviation (in 0-255 levels) to every frame, as a webcam's sensor does."""
    from PIL import Image, ImageOps

    image = Image.fromarray(read_image(photo)).convert("RGB")
    mirrored = ImageOps.mirror(image)
    rng = np.random.default_rng(seed)
    for i in range(frames):
        t = i / max(frames - 1, 1)
        canvas = Image.new("RGB", (width, height), (128, 128, 128))
        if i not in hidden:
            side = height * (zoom[0] + (zoom[1] - zoom[0]) * t)
            if crossing:
                _place(canvas, image, side / 2, width * (0.2 + 0.6 * t), height * 0.4)
                _place(canvas, mirrored, side / 2, width * (0.8 - 0.6 * t), height * 0.6)
            else:
                _place(canvas, image, side, width * (1 / 3 + t / 3), height / 2)
        pixels = np.asarray(canvas)
        if noise > 0:
            pixels = np.clip(pixels + rng.normal(0.0, noise, pixels.shape), 0, 255)
        yield pixels.astype(np.uint8)


def _place(canvas, image, side: float, centre_x: float, centre_y: float) -> None:
    """Paste ``image`` scaled to ``side`` pixels high, centred at (centre_x, centre_y)."""
    from PIL import Image

    size = (max(1, round(side * image.width / image.height)), max(1, round(side)))
    left, top = round(centre_x - size[0] / 2), round(centre_y - size[1] / 2)
    canvas.paste(image.resize(size, Image.Resampling.BILINEAR), (left, top))


def write_clip(path: str | Path, frames: Iterator[np.ndarray], fps: int = 30,
               codec: str = "libx264", pix_fmt: str = "yuv420p",
               faststart: bool = False) -> Path:
    """Encode RGB ``frames`` to ``path`` at ``fps`` with ``codec`` in ``pix_fmt``;
    ``faststart`` puts the MP4 index first (a cut file still opens)."""
    av = import_av()
    path = Path(path)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = None
        for rgb in frames:
            if stream is None:
                stream = container.add_stream(codec, rate=fps)
                stream.height, stream.width = rgb.shape[:2]
                stream.pix_fmt = pix_fmt
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return path


def make_clip(path: str | Path, *, photo: str | Path = DEFAULT_PHOTO, seconds: float = 1.0,
              fps: int = 30, width: int = 640, height: int = 480,
              hidden: frozenset[int] = frozenset(), noise: float = 0.0,
              codec: str = "libx264", pix_fmt: str = "yuv420p",
              faststart: bool = False, sideways: bool = False) -> Path:
    """A clip of ``photo`` panned and zoomed for ``seconds`` (see :func:`clip_frames`).

    ``sideways`` stores the frames turned a quarter left with an MP4 display matrix that
    turns them back, as phones record video held upright.
    """
    frames = clip_frames(photo, frames=round(seconds * fps), width=width, height=height,
                         hidden=hidden, noise=noise)
    if sideways:
        frames = (np.ascontiguousarray(np.rot90(f)) for f in frames)
    path = write_clip(path, frames, fps, codec, pix_fmt, faststart)
    if sideways:
        _turn_right_on_display(path)
    return path


def _turn_right_on_display(path: Path) -> None:
    """Set the MP4 track header's display matrix to a quarter turn clockwise."""
    data = bytearray(path.read_bytes())
    box = data.index(b"tkhd") - 4
    matrix_at = box + (48 if data[box + 8] == 0 else 60)  # after the version's fields
    data[matrix_at:matrix_at + 36] = struct.pack(
        ">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))
