"""``emotion-edge video``: follow the faces in a video, webcam or stream and their emotions.

Writes any of ``--out`` (annotated video), ``--csv`` (one row per face per analysed
frame), ``--json`` (summary: frames, processing speed, per-track emotions) and ``--plot``
(timeline), and prints a short summary. Ctrl-C stops early with complete outputs.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..runtime.bundled import model_help
from ..runtime.errors import ConfigError
from ..runtime.formats import BACKENDS, backend_help

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT",
                        help="a video file, a webcam index (0) or a stream URL (rtsp://...)")
    parser.add_argument("--out", type=Path, help="write the annotated video (.mp4) here")
    parser.add_argument("--csv", type=Path, help="write one row per face per analysed frame")
    parser.add_argument("--json", type=Path, help="write the run's summary as JSON")
    parser.add_argument("--plot", type=Path, help="write each track's emotions over time (.png)")
    parser.add_argument("--every", type=int, default=1, metavar="N",
                        help="analyse every N-th frame and track the faces between (default 1)")
    parser.add_argument("--start", type=float, default=0.0, metavar="SECONDS",
                        help="begin at this time")
    parser.add_argument("--end", type=float, default=None, metavar="SECONDS",
                        help="stop after this time")
    parser.add_argument("--smoothing", type=float, default=0.5, metavar="SECONDS",
                        help="time constant of the moving average of each face's "
                             "probabilities (0: off; default 0.5)")
    parser.add_argument("--max-faces", type=int, default=20, help="faces per frame at most")
    parser.add_argument("--model", default=None,
                        help=model_help())
    parser.add_argument("--backend", choices=sorted(BACKENDS), default=None,
                        help=backend_help())
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for the model, the detector, the decoder and encoder")
    parser.add_argument("--detector", default="blazeface",
                        help="face detector (default blazeface, the fastest, for faces that "
                             "fill a good part of the frame; blazeface-pyramid and "
                             "blazeface-full also find small ones)")
    parser.add_argument("--score-threshold", type=float, default=None,
                        help="minimum face detection score (default: the detector's own)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace output files that already exist")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _options(args: argparse.Namespace):
    from ..runtime.recognizer import RecognizerOptions
    from ..runtime.stream import StreamOptions
    from .analyze import VideoOptions

    if args.start < 0:
        raise ConfigError(f"--start must be >= 0 seconds, got {args.start}")
    if args.end is not None and args.end <= args.start:
        raise ConfigError(f"--end ({args.end}) must come after --start ({args.start})")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    recognizer = RecognizerOptions(model=args.model, backend=args.backend,
                                   threads=args.threads, detector=args.detector,
                                   max_faces=args.max_faces,
                                   score_threshold=args.score_threshold)
    stream = StreamOptions(recognizer=recognizer, detect_every=args.every,
                           smoothing_s=args.smoothing)
    return VideoOptions(stream=stream, start_s=args.start, end_s=args.end,
                        threads=args.threads)


def run(args: argparse.Namespace) -> int:
    from .analyze import VideoTargets, analyze_video
    from .progress import progress_bar

    options = _options(args)
    targets = VideoTargets(out=args.out, csv=args.csv, json=args.json, plot=args.plot,
                           overwrite=args.overwrite)
    name = Path(args.input).name or "video"
    bar = None if args.no_progress else (lambda total: progress_bar(total, name))
    result = analyze_video(args.input, options, targets, progress=bar)
    _print_summary(result.summary, result.written)
    return 130 if result.interrupted else 0


def _print_summary(summary: dict, written: dict[str, str]) -> None:
    state = " (interrupted)" if summary["interrupted"] else ""
    print(f"{summary['frames_read']} frames read, {summary['frames_analysed']} analysed, "
          f"{summary['video_seconds']:.1f} s of video in {summary['wall_seconds']:.1f} s: "
          f"{summary['processing_fps']} fps{state}")
    for track in summary["tracks"]:
        print(f"  track {track['track_id']}: {track['first_s']:.2f}-{track['last_s']:.2f} s, "
              f"mostly {track['dominant']} ({track['share'][track['dominant']]:.0%})")
    for kind, path in written.items():
        print(f"  {kind}: {path}")
