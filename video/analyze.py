"""One pass over a video: decode, follow faces in stream mode, draw, encode, report.

:func:`analyze_video` reads frames with :class:`VideoReader`, gives them to a
:class:`StreamRecognizer` with their times, and writes what was asked for: the annotated
video, the per-face CSV, the JSON summary and the timeline plot. Outputs are staged under
temporary names and renamed at the end. Ctrl-C (which stops after the frame in hand, so
every output holds the same frames; or a KeyboardInterrupt from ``on_frame``) and a file
that is truncated part-way both end the pass early with complete outputs for the frames
read; the first is reported in the summary, the second re-raised after the outputs are
written.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runtime.errors import ConfigError
from ..runtime.stream import StreamOptions, StreamRecognizer, StreamResult
from .errors import TruncatedVideoError
from .io import VIDEO_SUFFIXES, VideoReader, VideoWriter, writable_planes
from .outputs import FaceLog, RunStats, StagedOutputs
from .render import draw_tracks, draw_tracks_yuv

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoOptions:
    """What part of the video to analyse and how.

    stream: the stream mode's options (model, detector, ``detect_every``, smoothing ...).
    start_s, end_s: analyse only frames in this time range (seconds; None: to the end).
    threads: decoder and encoder threads (None: FFmpeg's choice).
    """

    stream: StreamOptions = field(default_factory=StreamOptions)
    start_s: float = 0.0
    end_s: float | None = None
    threads: int | None = None


@dataclass(frozen=True)
class VideoTargets:
    """Where to write: annotated video, CSV, JSON summary, timeline plot (None: skip)."""

    out: Path | None = None
    csv: Path | None = None
    json: Path | None = None
    plot: Path | None = None
    overwrite: bool = False


class _Clock:
    """Wall-clock and CPU seconds spent on each step of the loop, lap by lap."""

    STEPS = ("decode", "recognize", "track", "draw_encode")

    def __init__(self) -> None:
        self.wall = dict.fromkeys(self.STEPS, 0.0)
        self.cpu = dict.fromkeys(self.STEPS, 0.0)
        self.start()

    def start(self) -> None:
        self._mark = (time.perf_counter(), time.process_time())

    def lap(self, step: str) -> None:
        """Add the time since the last lap (or start) to ``step``."""
        now = (time.perf_counter(), time.process_time())
        self.wall[step] += now[0] - self._mark[0]
        self.cpu[step] += now[1] - self._mark[1]
        self._mark = now

    def move(self, wall_s: float, cpu_s: float, source: str, target: str) -> None:
        """Book that much of ``source``'s time to ``target`` instead."""
        for book, seconds in ((self.wall, wall_s), (self.cpu, cpu_s)):
            book[source] -= seconds
            book[target] += seconds

    def per_frame_ms(self, frames: int, book: dict[str, float]) -> dict[str, float]:
        return {k: round(v / max(frames, 1) * 1e3, 3) for k, v in book.items()}


@dataclass
class VideoRun:
    """The result of :func:`analyze_video`: its summary and the files written."""

    summary: dict[str, Any]
    written: dict[str, str]

    @property
    def interrupted(self) -> bool:
        return bool(self.summary.get("interrupted"))


class _Pass:
    """The state of one pass; :meth:`frame` handles one decoded frame."""

    def __init__(self, stream: StreamRecognizer, staged: StagedOutputs, fps: float,
                 threads: int | None) -> None:
        self.stream, self.staged = stream, staged
        self._fps, self._threads = fps, threads
        self.writer: VideoWriter | None = None
        self.size: tuple[int, int] | None = None  # (width, height) as displayed
        self.stats, self.clock = RunStats(), _Clock()
        self.read = self.analysed = 0
        self.first_s: float | None = None
        self.last_s = 0.0
        self._csv = None
        self.log = None
        if "csv" in staged:
            self._csv = staged.temporary["csv"].open("w", newline="", encoding="utf-8")
            self.log = FaceLog(self._csv, stream.labels)

    def frame(self, pixels: Any, time_s: float, decoded: Any) -> StreamResult:
        if self.size is None:
            self._start(pixels)
        result = self.stream.process(pixels, timestamp_s=time_s)
        self.clock.lap("recognize")
        self.clock.move(self.stream.tracking_ms / 1e3, self.stream.tracking_cpu_ms / 1e3,
                        "recognize", "track")
        if result.analysed:
            self.analysed += 1
            self.stats.add(result)
            if self.log is not None:
                self.log.write(self.read, result)
        if self.writer is not None:
            self._write(pixels, decoded, result)
        self.clock.lap("draw_encode")
        self.first_s = time_s if self.first_s is None else self.first_s
        self.last_s = time_s
        self.read += 1
        return result

    def _start(self, pixels: Any) -> None:
        """Open the annotated video at the first frame's size as displayed (a phone video
        recorded sideways is turned upright)."""
        self.size = (pixels.shape[1], pixels.shape[0])
        if "out" in self.staged:
            self.writer = VideoWriter(self.staged.temporary["out"], *self.size, self._fps,
                                      threads=self._threads)

    def _write(self, pixels: Any, decoded: Any, result: StreamResult) -> None:
        """Draw on the decoded YUV frame and encode it as it is when the encoder takes it
        (saves converting RGB back to YUV), else draw on the RGB copy."""
        if self.writer.takes_as_is(decoded):
            draw_tracks_yuv(writable_planes(decoded), result.faces)
            self.writer.write_decoded(decoded)
        else:
            self.writer.write(draw_tracks(pixels, result.faces))

    def close(self) -> None:
        if self._csv is not None:
            self._csv.close()
        if self.writer is not None:
            self.writer.close()


def analyze_video(source: str | Path, options: VideoOptions | None = None,
                  targets: VideoTargets | None = None, *,
                  progress: Callable[[int | None], Any] | None = None,
                  on_frame: Callable[[StreamResult], None] | None = None) -> VideoRun:
    """Analyse ``source`` (file, webcam index or URL); see the module docstring.

    ``progress(total)`` makes a bar (``update(n)``, ``close()``) counting the frames once
    the video is open; ``on_frame`` sees every frame's result.
    Raises the errors of :mod:`.errors` for bad input, ConfigError for bad targets.
    """
    options = options or VideoOptions()
    targets = targets or VideoTargets()
    if targets.out is not None and targets.out.suffix.lower() not in VIDEO_SUFFIXES:
        raise ConfigError(f"--out {targets.out}: name a video file ending in "
                          f"{', '.join(VIDEO_SUFFIXES)}")
    staged = StagedOutputs({"out": targets.out, "csv": targets.csv, "json": targets.json,
                            "plot": targets.plot}, overwrite=targets.overwrite)
    try:
        return _run(source, options, staged, progress, on_frame)
    except BaseException:
        staged.discard()
        raise


def _run(source: str | Path, options: VideoOptions, staged: StagedOutputs,
         progress: Callable[[int | None], Any] | None,
         on_frame: Callable[[StreamResult], None] | None) -> VideoRun:
    with VideoReader(source, threads=options.threads) as reader, \
            StreamRecognizer(options.stream) as stream:
        info = reader.info
        run = _Pass(stream, staged, info.fps, options.threads)
        bar = progress(info.frames) if progress is not None else None
        interrupted, truncated = False, None
        wall, cpu = time.perf_counter(), time.process_time()
        ctrl_c = _CtrlC()
        try:
            frames = reader.frames(options.start_s, options.end_s)
            while not ctrl_c.pressed:
                run.clock.start()
                item = next(frames, None)
                run.clock.lap("decode")
                if item is None:
                    break
                result = run.frame(*item)
                if bar is not None:
                    bar.update(1)
                if on_frame is not None:
                    on_frame(result)
        except KeyboardInterrupt:
            interrupted = True
            log.warning("interrupted after %d frames; writing what was processed", run.read)
        except TruncatedVideoError as exc:
            if run.read == 0:
                run.close()
                raise
            truncated = exc
        except BaseException:
            run.close()
            raise
        finally:
            ctrl_c.restore()
            if bar is not None:
                bar.close()
        interrupted = interrupted or ctrl_c.pressed
        if ctrl_c.pressed:
            log.warning("interrupted after %d frames; writing what was processed", run.read)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        run.close()
        summary = _summary(reader, stream, options, run, (wall, cpu), interrupted, truncated)
        written = _finish(staged, run, summary, stream.labels)
    if truncated is not None:
        raise TruncatedVideoError(f"{truncated}; the outputs cover the first {run.read} "
                                  "frames") from None
    return VideoRun(summary, written)


class _CtrlC:
    """While it is installed (main thread only), Ctrl-C sets ``pressed`` so the loop stops
    after the frame in hand and every output holds the same frames; a second Ctrl-C
    interrupts at once."""

    def __init__(self) -> None:
        self.pressed = False
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def _summary(reader: VideoReader, stream: StreamRecognizer, options: VideoOptions,
             run: _Pass, seconds_spent: tuple[float, float], interrupted: bool,
             truncated: Exception | None) -> dict[str, Any]:
    info = reader.info
    wall, cpu = seconds_spent
    predictor = stream.recognizer.predictor.info
    seconds = 0.0 if run.first_s is None else run.last_s - run.first_s + 1.0 / info.fps
    return {
        "source": info.source,
        "video": {"width": (run.size or (info.width, info.height))[0],
                  "height": (run.size or (info.width, info.height))[1],
                  "fps": round(info.fps, 3), "codec": info.codec, "frames": info.frames},
        "model": predictor.path.name, "backend": predictor.backend,
        "detector": options.stream.recognizer.detector,
        "detect_every": options.stream.detect_every, "smoothing_s": options.stream.smoothing_s,
        "encoder": run.writer.encoder if run.writer is not None else None,
        "frames_read": run.read, "frames_analysed": run.analysed,
        "video_seconds": round(seconds, 3), "wall_seconds": round(wall, 3),
        "processing_fps": round(run.read / wall, 2) if wall > 0 else None,
        # CPU time of the whole process (all its threads): with one thread each, its fps is
        # the speed on one free core, whatever else shares the machine.
        "cpu_seconds": round(cpu, 3), "cpu_fps": round(run.read / cpu, 2) if cpu > 0 else None,
        "ms_per_frame": run.clock.per_frame_ms(run.read, run.clock.wall),
        "cpu_ms_per_frame": run.clock.per_frame_ms(run.read, run.clock.cpu),
        "interrupted": interrupted, "truncated": truncated is not None,
        "tracks": run.stats.summaries(stream.labels),
    }


def _finish(staged: StagedOutputs, run: _Pass, summary: dict[str, Any],
            labels: tuple[str, ...]) -> dict[str, str]:
    """Write the JSON and the plot, then rename every output to its target."""
    try:
        if "plot" in staged:
            from .plot import plot_timeline

            plot_timeline(run.stats.tracks, labels, staged.temporary["plot"],
                          title=f"{Path(summary['source']).name}: emotions per track")
        if "json" in staged:
            staged.temporary["json"].write_text(json.dumps(summary, indent=2) + "\n",
                                                encoding="utf-8")
    except BaseException:
        staged.discard()
        raise
    return staged.commit()
