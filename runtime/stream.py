"""Video and live streams: frames with timestamps in, faces with stable track ids out.

The stream (``VIDEO``) running mode of the recognizer, as in MediaPipe Tasks: feed frames in
time order with their timestamps; every ``detect_every``-th frame is analysed (faces found
and classified by :class:`EmotionRecognizer`), the frames between follow the faces with the
tracker's prediction. :class:`FaceTracks` holds the state without any model (ids from
:class:`IoUTracker`, and per track an exponential moving average of the probabilities), so a
caller that runs its own recognizer (the app's webcam) can keep one per viewer.

Smoothing: when a track's new probabilities ``p`` arrive ``dt`` seconds after its previous
ones, its average ``s`` becomes ``s + a * (p - s)`` with ``a = 1 - exp(-dt / tau)``, ``tau``
being ``smoothing_s``. Tying ``a`` to elapsed time rather than to a frame count makes the
result independent of the frame rate: a label change shows after the same number of
seconds at 10 or 60 fps. The raw per-frame result stays on every face as ``raw``.

    from emotion_edge.runtime import StreamOptions, StreamRecognizer

    with StreamRecognizer(StreamOptions(detect_every=3)) as stream:
        for frame, ms in frames:               # uint8 RGB arrays and their times
            for face in stream.process(frame, timestamp_ms=ms).faces:
                print(face.track_id, face.label, face.raw and face.raw.label)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ConfigError
from .recognizer import EmotionRecognizer, FaceResult, RecognizerOptions
from .tracking import Box, IoUTracker


class TimestampError(ConfigError):
    """A stream frame's timestamp is missing, not a finite number, or not increasing."""


@dataclass(frozen=True)
class StreamOptions:
    """How to follow faces through a stream.

    recognizer: how to find and classify faces (model, backend, detector, max_faces ...).
    detect_every: analyse every n-th frame (1: every frame); the others are tracked only.
    smoothing_s: time constant of the probabilities' moving average in seconds (0: off).
    iou_threshold: a detection continues a track when their boxes overlap at least this.
    max_miss_s: a track not detected for longer than this many seconds ends.
    """

    recognizer: RecognizerOptions = field(default_factory=RecognizerOptions)
    detect_every: int = 1
    smoothing_s: float = 0.5
    iou_threshold: float = 0.3
    max_miss_s: float = 0.5

    def __post_init__(self) -> None:
        if self.detect_every < 1:
            raise ConfigError(f"detect_every must be >= 1 frame, got {self.detect_every}")
        if not (self.smoothing_s >= 0 and math.isfinite(self.smoothing_s)):
            raise ConfigError(f"smoothing_s must be >= 0 seconds, got {self.smoothing_s}")


@dataclass(frozen=True)
class TrackedFace:
    """One face in one frame: its track id, box, and smoothed emotion.

    ``label``, ``score`` and ``probabilities`` are the track's moving average; ``raw`` is
    this frame's own classification, None on frames that were not analysed or where the
    face was not detected (its box is then the tracker's prediction and
    ``detection_score`` is None).
    """

    track_id: int
    box: Box
    detection_score: float | None
    label: str
    score: float
    probabilities: dict[str, float] = field(repr=False)
    raw: FaceResult | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"track_id": self.track_id, "box": [round(v, 1) for v in self.box],
                "detection_score": self.detection_score, "label": self.label,
                "score": self.score, "probabilities": dict(self.probabilities),
                "raw": None if self.raw is None else self.raw.to_dict()}


@dataclass(frozen=True)
class StreamResult:
    """The faces in one frame, and whether that frame was analysed or only tracked."""

    frame_index: int
    timestamp_s: float
    analysed: bool
    faces: tuple[TrackedFace, ...]


def ema_weight(dt_s: float, tau_s: float) -> float:
    """Weight of a new value arriving ``dt_s`` seconds after the previous one in an
    exponential moving average with time constant ``tau_s`` (1 when ``tau_s`` is 0)."""
    if tau_s <= 0:
        return 1.0
    return 1.0 - math.exp(-max(dt_s, 0.0) / tau_s)


@dataclass
class _Smoothed:
    probabilities: np.ndarray
    time_s: float


class FaceTracks:
    """Track ids and smoothed probabilities for a stream, without a model.

    :meth:`observe` takes one analysed frame's faces (from ``EmotionRecognizer.analyze``),
    :meth:`follow` a frame that was not analysed. Timestamps must increase.
    """

    def __init__(self, options: StreamOptions | None = None) -> None:
        self.options = options or StreamOptions()
        self.tracker = IoUTracker(self.options.iou_threshold, self.options.max_miss_s)
        self.frames = 0
        self.last_time_s: float | None = None
        self._smoothed: dict[int, _Smoothed] = {}
        self._labels: tuple[str, ...] = ()

    def observe(self, faces: list[FaceResult], time_s: float) -> StreamResult:
        """Match an analysed frame's faces to tracks and update each track's average."""
        self._advance(time_s)
        updates = self.tracker.update(np.array([f.box for f in faces]).reshape(-1, 4), time_s)
        live = {u.track_id for u in updates}
        self._smoothed = {k: v for k, v in self._smoothed.items() if k in live}
        out = []
        for update in updates:
            raw = None if update.detection is None else faces[update.detection]
            if raw is not None:
                self._smooth(update.track_id, raw, time_s)
            if update.track_id in self._smoothed:
                out.append(self._face(update.track_id, update.box, raw))
        return StreamResult(self.frames - 1, time_s, True, tuple(out))

    def follow(self, time_s: float) -> StreamResult:
        """A frame that was not analysed: each track at its predicted box."""
        self._advance(time_s)
        faces = tuple(self._face(u.track_id, u.box, None) for u in self.tracker.predict(time_s)
                      if u.track_id in self._smoothed)
        return StreamResult(self.frames - 1, time_s, False, faces)

    def due(self) -> bool:
        """Whether the next frame is to be analysed (every ``detect_every``-th frame)."""
        return self.frames % self.options.detect_every == 0

    def _advance(self, time_s: float) -> None:
        check_timestamp(time_s, self.last_time_s)
        self.last_time_s = float(time_s)
        self.frames += 1

    def _smooth(self, track_id: int, raw: FaceResult, time_s: float) -> None:
        labels = tuple(raw.probabilities)
        if labels != self._labels:  # another model (the app's menu): averages start afresh
            self._smoothed.clear()
            self._labels = labels
        probs = np.array(list(raw.probabilities.values()), np.float64)
        state = self._smoothed.get(track_id)
        if state is None:
            self._smoothed[track_id] = _Smoothed(probs, time_s)
            return
        weight = ema_weight(time_s - state.time_s, self.options.smoothing_s)
        state.probabilities = probs if weight >= 1.0 else (
            state.probabilities + weight * (probs - state.probabilities))
        state.time_s = time_s

    def _face(self, track_id: int, box: Box, raw: FaceResult | None) -> TrackedFace:
        probs = self._smoothed[track_id].probabilities
        best = int(np.argmax(probs))
        return TrackedFace(
            track_id=track_id, box=box,
            detection_score=None if raw is None else raw.detection_score,
            label=self._labels[best], score=float(probs[best]),
            probabilities={k: float(v) for k, v in zip(self._labels, probs, strict=True)},
            raw=raw)


def check_timestamp(time_s: Any, previous_s: float | None) -> None:
    """Raise TimestampError unless ``time_s`` is a finite number after ``previous_s``."""
    if isinstance(time_s, bool) or not isinstance(time_s, (int, float, np.number)):
        raise TimestampError(f"a frame timestamp must be a number, got {time_s!r}")
    if not math.isfinite(time_s):
        raise TimestampError(f"a frame timestamp must be finite, got {time_s!r}")
    if previous_s is not None and time_s <= previous_s:
        raise TimestampError(f"frame timestamps must increase: {time_s:.6g} s came after "
                             f"{previous_s:.6g} s")


def _seconds(timestamp_s: float | None, timestamp_ms: float | None) -> float:
    if (timestamp_s is None) == (timestamp_ms is None):
        raise TimestampError("give each frame exactly one of timestamp_s or timestamp_ms")
    if timestamp_ms is not None:
        check_timestamp(timestamp_ms, None)
        return float(timestamp_ms) / 1000.0
    check_timestamp(timestamp_s, None)
    return float(timestamp_s)


class StreamRecognizer:
    """An :class:`EmotionRecognizer` in stream mode; a context manager.

    Pass ``recognizer`` to reuse one already loaded (it is then not closed here);
    otherwise one is made from ``options.recognizer``. ``tracking_ms`` and
    ``tracking_cpu_ms`` are the wall-clock and CPU time the last :meth:`process` spent
    matching tracks and smoothing (after the recognizer's).
    """

    def __init__(self, options: StreamOptions | None = None, *,
                 recognizer: EmotionRecognizer | None = None) -> None:
        self.options = options or StreamOptions()
        self._owns = recognizer is None
        self.recognizer = recognizer or EmotionRecognizer(self.options.recognizer)
        self.tracks = FaceTracks(self.options)
        self.tracking_ms = self.tracking_cpu_ms = 0.0

    @property
    def labels(self) -> tuple[str, ...]:
        return self.recognizer.labels

    def process(self, frame: np.ndarray, *, timestamp_s: float | None = None,
                timestamp_ms: float | None = None) -> StreamResult:
        """One frame (uint8 RGB or gray array) at its time: analysed when due, else tracked."""
        time_s = _seconds(timestamp_s, timestamp_ms)
        check_timestamp(time_s, self.tracks.last_time_s)
        due = self.tracks.due()
        faces = self.recognizer.analyze(frame) if due else []
        start, start_cpu = time.perf_counter(), time.process_time()
        result = self.tracks.observe(faces, time_s) if due else self.tracks.follow(time_s)
        self.tracking_ms = (time.perf_counter() - start) * 1e3
        self.tracking_cpu_ms = (time.process_time() - start_cpu) * 1e3
        return result

    def close(self) -> None:
        if self._owns:
            self.recognizer.close()

    def __enter__(self) -> StreamRecognizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
