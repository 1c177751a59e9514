"""Processing speed of ``emotion-edge video`` on one thread, decoding and encoding included.

Makes the 640x480, 30 fps test clip (scripts/make_test_clip.py) if it is missing, then runs
``emotion-edge video CLIP --threads 1 --out ... --json ...`` with detection on every frame
and with ``--every 3``, ``--repeats`` times each, and prints a Markdown table of the median
wall-clock and CPU-time frame rates with the machine's load average (other work sharing
the cores slows the wall clock; CPU time is what one free core would take)::

    python scripts/video_speed.py [--clip build/clip_640x480.mp4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import tempfile
from pathlib import Path

from emotion_edge.video.synth import make_clip

from emotion_edge.cli import main as emotion_edge


def measure(clip: Path, every: int, repeats: int, folder: Path) -> dict[str, float]:
    runs = []
    for i in range(repeats):
        summary = folder / f"every{every}-{i}.json"
        with contextlib.redirect_stdout(io.StringIO()):  # its own summary: not needed here
            code = emotion_edge(["video", str(clip), "--threads", "1", "--every",
                                 str(every),
                                 "--out", str(folder / f"every{every}-{i}.mp4"),
                                 "--json", str(summary), "--no-progress"])
        if code != 0:
            raise SystemExit(f"emotion-edge video failed with exit code {code}")
        runs.append(json.loads(summary.read_text()))
    steps = runs[0]["cpu_ms_per_frame"]
    return {"wall_fps": statistics.median(r["processing_fps"] for r in runs),
            "cpu_fps": statistics.median(r["cpu_fps"] for r in runs),
            "ms": {k: statistics.median(r["cpu_ms_per_frame"][k] for r in runs)
                   for k in steps},
            "frames": runs[0]["frames_read"], "encoder": runs[0]["encoder"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=Path("build/clip_640x480.mp4"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if not args.clip.is_file():
        args.clip.parent.mkdir(parents=True, exist_ok=True)
        make_clip(args.clip, seconds=10.0, fps=30, width=640, height=480)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        rows = {every: measure(args.clip, every, args.repeats, Path(folder))
                for every in (1, 3)}
    load_after = os.getloadavg()[0]
    print(f"{args.clip} ({rows[1]['frames']} frames, 640x480, 30 fps), one thread, "
          f"encoder {rows[1]['encoder']}, median of {args.repeats} runs, "
          f"load average {load_before:.1f} -> {load_after:.1f} on {os.cpu_count()} cores\n")
    steps = list(rows[1]["ms"])
    print("| detection | fps (wall clock) | fps (CPU time) | "
          + " | ".join(f"{k} ms" for k in steps) + " |")
    print("| --- | ---: | ---: | " + " | ".join("---:" for _ in steps) + " |")
    for every, row in rows.items():
        name = "every frame" if every == 1 else f"`--every {every}`"
        print(f"| {name} | {row['wall_fps']:.0f} | {row['cpu_fps']:.0f} | "
              + " | ".join(f"{row['ms'][k]:.2f}" for k in steps) + " |")
    print("\n(ms: CPU milliseconds per frame of each step)")


if __name__ == "__main__":
    main()
