"""The app's work, without Gradio: analyse a photo, stream webcam frames, compare backends,
describe a model. Each step returns a small result or raises an ``EmotionEdgeError`` whose
message the page shows; the Gradio layer (``ui.py``) only wires these to components.
``serving.py`` keeps answer files and memory in order, ``model_card.py`` words the About
tab's figures.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.bundled import accuracy_labels
from ..runtime.errors import BadImageError, EmotionEdgeError, NoFaceError
from ..runtime.image import read_image
from ..runtime.sidecar import InputSpec, read_sidecar
from ..runtime.stream import FaceTracks
from .catalog import DEFAULT_DETECTOR, ModelChoice, RecognizerPool
from .model_card import accuracy_figures, figure_label, figure_value, human_size, model_rows
from .render import annotate, fit_for_display
from .serving import ResultFiles, without_server_paths

log = logging.getLogger(__name__)

#: Webcam frames are analysed at most this many pixels on their longer side.
STREAM_MAX_SIDE = 640

COMPARE_HEADERS = ("backend", "label", "confidence", "latency (ms)", "size", "classes",
                   "agrees with majority")


@dataclass(frozen=True)
class Analysis:
    """One analysed photo: the annotated image, the faces and where the time went."""

    image: np.ndarray
    faces: list = field(repr=False)
    backend: str
    detection_ms: float
    classification_ms: float
    original_size: tuple[int, int]   # (width, height) as uploaded
    analysed_size: tuple[int, int]   # (width, height) the faces were found in; boxes use it

    def summary(self) -> str:
        """One Markdown line: faces found, backend, time per step, any downscaling."""
        count = len(self.faces)
        text = (f"**{count} face{'s' if count != 1 else ''}** · {self.backend} · "
                f"detection {self.detection_ms:.1f} ms · "
                f"classification {self.classification_ms:.1f} ms")
        if self.original_size != self.analysed_size:
            (w, h), (aw, ah) = self.original_size, self.analysed_size
            text += f" · photo of {w}x{h} analysed at {aw}x{ah}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "faces": [f.to_dict() for f in self.faces],
                "timings_ms": {"detection": round(self.detection_ms, 2),
                               "classification": round(self.classification_ms, 2)},
                "original_size": list(self.original_size),
                "analysed_size": list(self.analysed_size)}


def _agreement(label: str, group: Counter, groups: int) -> str:
    """Whether ``label`` is its label set's majority; not applicable for the only backend of
    its label set when there are others to compare with."""
    if groups > 1 and sum(group.values()) == 1:
        return "n/a: the only backend with these labels"
    majority = group.most_common(1)[0][0]
    return "✓" if label == majority else f"✗ (majority: {majority})"


def _compare_summary(votes: dict[tuple[str, ...], Counter]) -> str:
    ran = sum(sum(group.values()) for group in votes.values())
    head = f"Largest face through {ran} backend{'s' if ran != 1 else ''}: "
    if len(votes) == 1:
        majority, count = next(iter(votes.values())).most_common(1)[0]
        return head + f"**{majority}** from {count} of {ran}."
    parts = []
    for labels, group in votes.items():
        majority, count = group.most_common(1)[0]
        parts.append(f"{len(labels)}-class models: **{majority}** from {count} of "
                     f"{sum(group.values())}")
    return head + "; ".join(parts) + " (majorities are taken among models with the same labels)."


def image_from_payload(payload: Any) -> np.ndarray:
    """The uploaded image as a uint8 array: a Gradio file payload, a path or an array."""
    if payload is None:
        raise BadImageError("no image: upload a photo or pick an example first")
    if isinstance(payload, dict):
        path = payload.get("path")
        if not path:
            raise BadImageError("no image: upload a photo or pick an example first")
        name = payload.get("orig_name") or Path(path).name
        return read_image(path, name=name)
    if isinstance(payload, (str, os.PathLike)):
        return read_image(payload, name=Path(payload).name)
    return read_image(payload)


class AppService:
    """The app's state: the backend menu and the loaded recognizers."""

    def __init__(self, choices: Sequence[ModelChoice], default: ModelChoice | None,
                 threads: int | None = None) -> None:
        self.choices = list(choices)
        self.default = default
        self.pool = RecognizerPool(self.choices, threads=threads)
        self.results = ResultFiles()

    def analyze(self, image: Any, backend: str | None,
                detector: str = DEFAULT_DETECTOR) -> Analysis:
        """Faces in ``image`` on ``backend``; NoFaceError when there are none."""
        pixels = image_from_payload(image)
        shown = fit_for_display(pixels)
        with self.pool.recognizer(backend, detector) as recognizer:
            faces = recognizer.analyze(shown)
            timings = recognizer.timings
        if not faces:
            hint = ("" if detector == "blazeface-full"
                    else "; for small or distant faces pick the 'blazeface-full' detector")
            raise NoFaceError(f"no face found in this photo{hint}")
        return Analysis(image=annotate(shown, faces), faces=faces,
                        backend=self.pool.choice(backend).title,
                        detection_ms=timings.detection_ms,
                        classification_ms=timings.classification_ms,
                        original_size=(pixels.shape[1], pixels.shape[0]),
                        analysed_size=(shown.shape[1], shown.shape[0]))

    def stream(self, frame: np.ndarray | None, backend: str | None,
               tracks: FaceTracks | None = None,
               detector: str = DEFAULT_DETECTOR) -> tuple[Any, str]:
        """One webcam frame, annotated, and a status line. Never raises: a stream must go on
        when one frame fails, so the error becomes the status line. With ``tracks`` (one per
        viewer) faces keep their track ids and labels are smoothed over time."""
        if frame is None:
            return None, "Waiting for the camera…"
        start = time.perf_counter()
        try:
            pixels = fit_for_display(read_image(frame, name="webcam frame"), STREAM_MAX_SIDE)
            with self.pool.recognizer(backend, detector) as recognizer:
                faces = recognizer.analyze(pixels)
                timings = recognizer.timings
                if tracks is not None:
                    now = max(time.monotonic(), (tracks.last_time_s or 0.0) + 1e-6)
                    faces = list(tracks.observe(faces, now).faces)
        except EmotionEdgeError as exc:
            return frame, f"⚠️ {without_server_paths(str(exc))}"
        total = (time.perf_counter() - start) * 1e3
        if not faces:
            return pixels, f"No face in view · {total:.0f} ms per frame"
        labels = ", ".join((f"#{face.track_id} " if tracks is not None else "")
                           + f"{face.label} {face.score:.0%}" for face in faces)
        return annotate(pixels, faces, min_side=0), (
            f"{labels} · detection {timings.detection_ms:.0f} ms · classification "
            f"{timings.classification_ms:.0f} ms · {total:.0f} ms per frame")

    def load(self, backend: str | None, detector: str = DEFAULT_DETECTOR) -> str:
        """Load (or find loaded) ``backend`` and say how long it took."""
        start = time.perf_counter()
        with self.pool.recognizer(backend, detector) as recognizer:
            info = recognizer.predictor.info
        elapsed = (time.perf_counter() - start) * 1e3
        loaded = f", loaded in {elapsed:.0f} ms" if elapsed >= 1 else ""
        return (f"Backend **{self.pool.choice(backend).title}** ready: `{info.path.name}`, "
                f"{human_size(info.file_size)}, on {info.backend}{loaded}")

    def compare(self, image: Any, detector: str = DEFAULT_DETECTOR,
                selected: str | None = None) -> tuple[list[list[Any]], str]:
        """The largest face of ``image`` through every backend: table rows and a summary.

        Each available backend runs twice and reports the second, warm classification time.
        Unavailable or failing backends get a row saying why.
        """
        pixels = fit_for_display(image_from_payload(image))
        results: list[tuple[ModelChoice, Any, float | None, str | None]] = []
        for choice in self.choices:
            if not choice.available:
                results.append((choice, None, None, f"unavailable: {choice.unavailable}"))
                continue
            try:
                with self.pool.recognizer(choice.key, detector) as recognizer:
                    recognizer.analyze(pixels)
                    faces = recognizer.analyze(pixels)
                    latency = recognizer.timings.classification_ms
            except EmotionEdgeError as exc:
                results.append((choice, None, None, f"failed: {exc}"))
                continue
            if not faces:
                raise NoFaceError("no face found in this photo, so there is nothing to compare")
            largest = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
            results.append((choice, largest, latency, None))
        return self._compare_rows(results, selected)

    def _compare_rows(self, results: list, selected: str | None) -> tuple[list[list[Any]], str]:
        """Table rows and a summary. Labels are compared only between models with the same
        label set (a 7-class model cannot say contempt): each set has its own majority."""
        votes: dict[tuple[str, ...], Counter] = {}
        for _, face, _, _ in results:
            if face is not None:
                votes.setdefault(tuple(face.probabilities), Counter())[face.label] += 1
        if not votes:
            raise EmotionEdgeError("no backend could run; install an engine, e.g. "
                                   "pip install 'emotion-edge[tflite]'")
        rows = []
        for choice, face, latency, problem in results:
            name = choice.title + (" (selected)" if choice.key == selected else "")
            size = human_size(choice.format.size_bytes(choice.path))
            if face is None:
                rows.append([name, "—", None, None, size, None, problem])
                continue
            group = votes[tuple(face.probabilities)]
            rows.append([name, face.label, round(face.score, 3), round(latency, 2), size,
                         len(face.probabilities), _agreement(face.label, group, len(votes))])
        return rows, _compare_summary(votes)

    def model_card(self, backend: str | None) -> tuple[str, dict[str, Any]]:
        """Markdown about ``backend``'s artifact (labels, input, accuracy, size) and its
        full sidecar."""
        choice = self.pool.choice(backend)
        sidecar = read_sidecar(choice.path)
        spec = InputSpec.from_dict(sidecar.get("input"))
        size = human_size(choice.format.size_bytes(choice.path))  # with an IR's .bin
        lines = [
            f"### {choice.title}",
            f"- **File:** `{choice.path.name}` ({size}), {choice.format.description}",
            f"- **Runs on:** {choice.engine.title}"
            + ("" if choice.available else f" — not installed here: `{choice.unavailable}`"),
            f"- **Labels:** {', '.join(sidecar['labels'])}",
            f"- **Input:** {spec.height}x{spec.width}x{spec.channels} {spec.color}, "
            f"input = pixel × {spec.scale:.6g} + {spec.offset:.6g}",
        ]
        source = sidecar.get("source") if isinstance(sidecar.get("source"), dict) else {}
        measured = (f"; its accuracy is measured on {accuracy_labels(sidecar)} labels"
                    if "accuracy" in sidecar else "")
        lines.append(f"- **Model:** {choice.stem}, {len(sidecar['labels'])} classes{measured}")
        # this artifact's own figures first, then its source model's, then parity
        for key, value in sorted(accuracy_figures(sidecar).items(),
                                 key=lambda kv: (kv[0].startswith(("parity.", "source.")),
                                                 kv[0].startswith("parity."))):
            on = accuracy_labels(source if key.startswith("source.") else sidecar)
            lines.append(f"- **{figure_label(key, on)}:** {figure_value(key, value)}")
        for key in ("name", "parameters", "source_model", "trained"):
            if isinstance(sidecar.get(key), (str, int, float)):
                lines.append(f"- **{key.replace('_', ' ').capitalize()}:** {sidecar[key]}")
        return "\n".join(lines), sidecar

    def models(self) -> dict[str, Path]:
        """Each model (stem) in the menu and the artifact that speaks for it: its ``.keras``
        source, else its first entry."""
        stems: dict[str, Path] = {}
        for choice in self.choices:
            if choice.stem not in stems or choice.format.format == "keras":
                stems[choice.stem] = choice.path
        return stems

    def model_rows(self) -> list[list[Any]]:
        """The About tab's table: each model's recorded accuracy, by the labels it was
        measured on."""
        return model_rows(self.models())

    def emotions(self) -> str:
        """How many emotions the menu's models tell apart, for the headline: "7", "7 or 8"."""
        counts = set()
        for path in self.models().values():
            try:
                counts.add(len(read_sidecar(path)["labels"]))
            except EmotionEdgeError:
                continue
        return " or ".join(map(str, sorted(counts))) or "no"

    def close(self) -> None:
        self.pool.close()
        self.results.close()


