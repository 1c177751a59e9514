"""The Video tab and the webcam's stream mode.

``analyze_clip`` (no Gradio) runs an uploaded clip through ``emotion_edge.video`` on the
selected backend and returns the annotated video, the timeline plot, the CSV and a status
line with the processing time; ``video_tab`` lays the tab out. ``live_stream`` wraps the
service's webcam function with one :class:`FaceTracks` per viewer (kept in ``gr.State``),
so faces keep their ids and labels do not flicker from frame to frame.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from ..runtime.detectors import DEFAULT_DETECTOR
from ..runtime.errors import BadImageError
from ..runtime.recognizer import RecognizerOptions
from ..runtime.stream import FaceTracks, StreamOptions
from .catalog import MAX_FACES

#: The webcam's stream mode: frames arrive a few times a second, so tracks live longer.
LIVE_OPTIONS = StreamOptions(smoothing_s=0.5, max_miss_s=1.0)
#: Uploaded clips are analysed up to this many seconds.
MAX_CLIP_SECONDS = 120.0
#: Result folders older than this are removed when a new clip is analysed.
KEEP_RESULTS_S = 3600.0
RESULTS_DIR = Path(tempfile.gettempdir()) / "emotion-edge-video"


@dataclass(frozen=True)
class ClipResult:
    """An analysed clip: its output files and a Markdown status line."""

    video: str
    plot: str
    csv: str
    status: str


def _status(summary: dict, cut: bool) -> str:
    tracks = ", ".join(f"#{t['track_id']} mostly **{t['dominant']}** "
                       f"({t['share'][t['dominant']]:.0%})" for t in summary["tracks"])
    note = f" · first {MAX_CLIP_SECONDS:.0f} s only" if cut else ""
    return (f"{summary['frames_read']} frames ({summary['video_seconds']:.1f} s of video) "
            f"processed in {summary['wall_seconds']:.1f} s: **{summary['processing_fps']:.0f} "
            f"fps**{note} · {tracks or 'no faces found'}")


def _results_folder() -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    for old in RESULTS_DIR.iterdir():
        if old.is_dir() and time.time() - old.stat().st_mtime > KEEP_RESULTS_S:
            shutil.rmtree(old, ignore_errors=True)
    folder = RESULTS_DIR / uuid.uuid4().hex
    folder.mkdir()
    return folder


def analyze_clip(service: Any, clip: Any, backend: str | None,
                 detector: str = "blazeface") -> ClipResult:
    """Run ``clip`` (a path or Gradio file payload) through the video stage on ``backend``."""
    from ..video import VideoOptions, VideoTargets, analyze_video

    path = clip.get("path") if isinstance(clip, dict) else clip
    if not path:
        raise BadImageError("no video: upload a clip first")
    choice = service.pool.choice(backend)
    if choice.unavailable:
        choice.engine.require()
    whole = detector == "whole-image"
    recognizer = RecognizerOptions(model=choice.path, backend=choice.backend,
                                   threads=service.pool.threads,
                                   detect_faces=not whole,
                                   detector="blazeface" if whole else detector,
                                   max_faces=MAX_FACES)
    options = VideoOptions(StreamOptions(recognizer), end_s=MAX_CLIP_SECONDS)
    folder = _results_folder()
    name = Path(path).stem
    targets = VideoTargets(out=folder / f"{name}_emotions.mp4", csv=folder / f"{name}.csv",
                           plot=folder / f"{name}_timeline.png")
    run = analyze_video(path, options, targets)
    summary = run.summary
    cut = summary["video_seconds"] >= MAX_CLIP_SECONDS
    return ClipResult(run.written["out"], run.written["plot"], run.written["csv"],
                      _status(summary, cut))


def video_tab(service: Any, backend: gr.Dropdown, detector: gr.Dropdown,
              shielded: Callable) -> None:
    """The tab's components and its ``/video`` endpoint (``shielded`` shows errors)."""
    gr.Markdown("Upload a clip: every face is followed with a track id, its emotions "
                f"smoothed over time (the first {MAX_CLIP_SECONDS:.0f} s are analysed).")
    with gr.Row():
        with gr.Column(min_width=300):
            clip = gr.Video(label="Clip", sources=["upload"], elem_id="ee-clip")
            run = gr.Button("Analyze video", variant="primary", elem_id="ee-video-run")
        with gr.Column(min_width=300):
            annotated = gr.Video(label="Annotated", interactive=False,
                                 elem_id="ee-video-annotated")
            status = gr.Markdown(elem_id="ee-video-status")
    timeline = gr.Image(label="Emotions over time", interactive=False,
                        elem_id="ee-video-timeline")
    table = gr.File(label="Per-face CSV", interactive=False, elem_id="ee-video-csv")

    @shielded(lambda message: (None, None, None, f"⚠️ {message}"))
    def analyze(video: Any, key: str, detector_name: str) -> tuple[str, str, str, str]:
        result = analyze_clip(service, video, key, detector_name)
        return result.video, result.plot, result.csv, result.status

    run.click(analyze, [clip, backend, detector], [annotated, timeline, table, status],
              api_name="video")


def live_stream(service: Any) -> Callable:
    """The webcam handler: ``(frame, backend, detector, tracks) -> (image, status, tracks)``."""
    def stream(frame: Any, backend: str | None, detector: str | None,
               tracks: FaceTracks | None) -> tuple[Any, str, FaceTracks]:
        tracks = tracks if tracks is not None else FaceTracks(LIVE_OPTIONS)
        image, status = service.stream(frame, backend, tracks,
                                       detector=detector or DEFAULT_DETECTOR)
        return image, status, tracks
    return stream
