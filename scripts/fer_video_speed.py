"""The `fer` package's per-frame speed on the same clip, for comparison with ours.

Runs in its own virtual environment, never in emotion-edge's (fer pins TensorFlow and
OpenCV builds of its own)::

    python3 -m venv /work/fer-venv
    /work/fer-venv/bin/pip install --no-deps fer==25.10.3
    /work/fer-venv/bin/pip install "setuptools<82" "opencv-python-headless<5" requests \
        pillow tensorflow-cpu==2.21.0
    /work/fer-venv/bin/python scripts/fer_video_speed.py build/clip_640x480.mp4

Frames are decoded first with OpenCV (not timed); then ``FER().detect_emotions`` (its Haar
face detector and emotion model) runs on each, on one thread. Prints wall-clock and
CPU-time frames per second.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip")
    parser.add_argument("--frames", type=int, default=150, help="frames to time")
    args = parser.parse_args()
    import cv2
    import tensorflow as tf
    from fer.fer import FER

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    cv2.setNumThreads(1)
    capture = cv2.VideoCapture(args.clip)
    frames = []
    while len(frames) < args.frames:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    detector = FER()
    detector.detect_emotions(frames[0])  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    found = sum(bool(detector.detect_emotions(frame)) for frame in frames)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n = len(frames)
    print(f"fer detect_emotions, {n} frames of {args.clip}: {n / wall:.1f} fps wall clock, "
          f"{n / cpu:.1f} fps CPU time, a face in {found}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
