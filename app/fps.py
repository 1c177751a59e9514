"""Frame rate of the webcam stream, measured without a camera.

Recorded frames (an example photo placed in a 640x480 frame, moved and brightened a little
from frame to frame, as a webcam would) go through the same function the Webcam tab
streams to, on the TFLite int8 model by default::

    python -m emotion_edge.app.fps [--model PATH] [--frames 100] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..runtime.image import read_image, resize

log = logging.getLogger(__name__)

EXAMPLE = Path(__file__).resolve().parent / "examples" / "grace_hopper.jpg"


@dataclass(frozen=True)
class FrameRate:
    """Frames per second of the streaming function, and per-frame latency in ms."""

    backend: str
    model: str
    frames: int
    face_found: float   # share of frames in which a face was found
    fps: float
    median_ms: float
    p90_ms: float


def recorded_frames(photo: str | Path = EXAMPLE, count: int = 100, width: int = 640,
                    height: int = 480, seed: int = 0) -> list[np.ndarray]:
    """``count`` RGB frames: ``photo`` scaled to the frame's height, centred, then shifted by
    up to 12 pixels and brightened or darkened by up to 6% per frame."""
    image = read_image(photo)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    side = round(image.shape[1] * height / image.shape[0])
    scaled = resize(image, min(side, width), height).astype(np.float32)
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        frame = np.full((height, width, 3), 128, np.float32)
        dx, dy = rng.integers(-12, 13, 2)
        left = (width - scaled.shape[1]) // 2 + int(dx)
        src = scaled[max(0, -dy):height - max(0, dy)]
        x0, x1 = max(left, 0), min(left + scaled.shape[1], width)
        frame[max(0, dy):max(0, dy) + src.shape[0], x0:x1] = src[:, x0 - left:x1 - left]
        frame *= 1.0 + rng.uniform(-0.06, 0.06)
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return frames


def measure_fps(model: str | Path | None = None, frames: int = 100,
                photo: str | Path = EXAMPLE, warmup: int = 5) -> FrameRate:
    """Stream ``frames`` recorded frames through the Webcam tab's function on ``model``
    (default: the bundled TFLite int8 model) and time each call."""
    from .ui import make_service

    service = make_service([model]) if model is not None else make_service(model="default")
    backend = service.default.key
    clip = recorded_frames(photo, frames + warmup)
    try:
        for frame in clip[:warmup]:
            service.stream(frame, backend)
        times, found = [], 0
        for frame in clip[warmup:]:
            start = time.perf_counter()
            _, status = service.stream(frame, backend)
            times.append((time.perf_counter() - start) * 1e3)
            found += not status.startswith(("No face", "⚠️"))
    finally:
        service.close()
    total = sum(times) / 1e3
    return FrameRate(backend=backend, model=service.default.path.name, frames=frames,
                     face_found=found / frames, fps=frames / total,
                     median_ms=statistics.median(times),
                     p90_ms=float(np.percentile(times, 90)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emotion_edge.app.fps",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: the bundled TFLite int8 model)")
    parser.add_argument("--frames", type=int, default=100, help="frames to time (default 100)")
    parser.add_argument("--photo", default=str(EXAMPLE), help="photo to record frames from")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from ..runtime.errors import EmotionEdgeError

    try:
        rate = measure_fps(args.model, args.frames, args.photo)
    except EmotionEdgeError as exc:
        print(f"fps: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(asdict(rate), indent=2))
    else:
        print(f"{rate.fps:.1f} fps ({rate.median_ms:.1f} ms median, {rate.p90_ms:.1f} ms p90 "
              f"per frame) over {rate.frames} frames of 640x480, "
              f"a face found in {rate.face_found:.0%} of them, {rate.backend} ({rate.model})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
