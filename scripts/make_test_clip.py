"""Make the synthetic clip the video speed figures are measured on.

A demo photo panned and zoomed over a gray 640x480 background, 30 fps, H.264::

    python scripts/make_test_clip.py build/clip_640x480.mp4 [--seconds 10] [--photo PATH]
        [--noise SIGMA]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from emotion_edge.video.synth import DEFAULT_PHOTO, make_clip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the .mp4 to write")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO)
    parser.add_argument("--noise", type=float, default=0.0,
                        help="Gaussian noise per frame (standard deviation, 0-255 levels)")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    make_clip(args.out, photo=args.photo, seconds=args.seconds, fps=args.fps,
              width=args.width, height=args.height, noise=args.noise)
    print(args.out)


if __name__ == "__main__":
    main()
