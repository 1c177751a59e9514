"""The app's work, without Gradio: analyse a photo, stream webcam frames, compare backends,
describe a model. Each step returns a small result or raises an ``EmotionEdgeError`` whose
message the page shows; the Gradio layer (``ui.py``) only wires these to components.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.benchmark import BenchmarkResult, Row
from ..runtime.errors import BadImageError, DataError, EmotionEdgeError, NoFaceError
from ..runtime.image import read_image
from ..runtime.sidecar import InputSpec, read_sidecar
from ..runtime.stream import FaceTracks
from .catalog import DEFAULT_DETECTOR, ModelChoice, RecognizerPool
from .render import annotate, fit_for_display

log = logging.getLogger(__name__)

#: Webcam frames are analysed at most this many pixels on their longer side.
STREAM_MAX_SIDE = 640

COMPARE_HEADERS = ("backend", "label", "confidence", "latency (ms)", "size",
                   "agrees with majority")
#: Annotated photos are written here, one new file per answer.
RESULTS_DIR = Path(tempfile.gettempdir()) / "emotion-edge-results"
#: Result files kept at most; older ones are deleted as new ones are written. Gradio copies
#: each into its own cache when the answer is sent, so only the newest few are ever read.
KEEP_RESULTS = 64


class ResultFiles:
    """Annotated photos as JPEG files, each written once under a new name and never rewritten.

    Gradio, given an array, saves it under a name made from its content and rewrites that
    file for every identical answer, so a client still downloading the first copy of the same
    photo got a truncated file ("Too little data for declared Content-Length"). Here each
    answer gets its own file, written whole under a temporary name and renamed into place;
    the oldest beyond ``keep`` are deleted, and so are the folders of servers that ended
    without cleaning up (named after their process id).
    """

    def __init__(self, folder: Path = RESULTS_DIR, keep: int = KEEP_RESULTS) -> None:
        self.folder = folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.keep = keep
        self._written: list[Path] = []
        self._lock = threading.Lock()
        _remove_orphans(folder)

    def save(self, image: np.ndarray) -> Path:
        from PIL import Image

        self.folder.mkdir(parents=True, exist_ok=True)
        name = uuid.uuid4().hex
        staging = self.folder / f".{name}.part"
        Image.fromarray(image).save(staging, format="JPEG", quality=90)
        path = staging.rename(self.folder / f"{name}.jpg")
        with self._lock:
            self._written.append(path)
            old, self._written = self._written[:-self.keep], self._written[-self.keep:]
        for stale in old:
            stale.unlink(missing_ok=True)
        return path

    def close(self) -> None:
        with self._lock:
            written, self._written = self._written, []
        for path in written:
            path.unlink(missing_ok=True)
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to someone else
        return True
    return True


def _remove_orphans(root: Path) -> None:
    """Delete the result folders in ``root`` whose server process has ended."""
    if not root.is_dir():
        return
    for folder in root.iterdir():
        pid = folder.name.partition("-")[0]
        if folder.is_dir() and pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _load_libc() -> Any:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None


_LIBC = _load_libc()


def release_free_memory() -> None:
    """Hand memory the process has freed back to the system (glibc; elsewhere a no-op).

    A large photo is decoded in many worker threads' malloc arenas, and glibc keeps what
    they free for reuse: after a burst of big uploads the server stayed hundreds of MB above
    its baseline. ``malloc_trim`` returns the free pages, so memory goes back down. The app
    calls it after each request, once the request's arrays are gone.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def without_server_paths(message: str) -> str:
    """``message`` with every path into the server's temporary folders cut to its file name,
    so an error about an upload names the file, not where the server keeps it."""
    roots = {tempfile.gettempdir(), os.environ.get("GRADIO_TEMP_DIR") or ""} - {""}
    for root in sorted(roots, key=len, reverse=True):
        pattern = re.escape(str(Path(root))) + r"/[^\s'\",:)]*"
        message = re.sub(pattern, lambda match: Path(match.group()).name, message)
    return message


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


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 ** 2:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024 ** 2:.1f} MB"


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
        votes = Counter(face.label for _, face, _, _ in results if face is not None)
        if not votes:
            raise EmotionEdgeError("no backend could run; install an engine, e.g. "
                                   "pip install 'emotion-edge[tflite]'")
        majority, count = votes.most_common(1)[0]
        rows = []
        for choice, face, latency, problem in results:
            name = choice.title + (" (selected)" if choice.key == selected else "")
            size = human_size(choice.format.size_bytes(choice.path))
            if face is None:
                rows.append([name, "—", None, None, size, problem])
                continue
            agrees = "✓" if face.label == majority else f"✗ (majority: {majority})"
            rows.append([name, face.label, round(face.score, 3), round(latency, 2), size, agrees])
        ran = sum(votes.values())
        summary = (f"Largest face through {ran} backend{'s' if ran != 1 else ''}: "
                   f"**{majority}** from {count} of {ran}.")
        return rows, summary

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
            f"- **Runs on:** {choice.format.engine.title}"
            + ("" if choice.available else f" — not installed here: `{choice.unavailable}`"),
            f"- **Labels:** {', '.join(sidecar['labels'])}",
            f"- **Input:** {spec.height}x{spec.width}x{spec.channels} {spec.color}, "
            f"input = pixel × {spec.scale:.6g} + {spec.offset:.6g}",
        ]
        # this artifact's own figures first, then its source model's, then parity
        for key, value in sorted(accuracy_figures(sidecar).items(),
                                 key=lambda kv: (kv[0].startswith(("parity.", "source.")),
                                                 kv[0].startswith("parity."))):
            lines.append(f"- **{figure_label(key)}:** {figure_value(key, value)}")
        for key in ("name", "parameters", "source_model", "trained"):
            if isinstance(sidecar.get(key), (str, int, float)):
                lines.append(f"- **{key.replace('_', ' ').capitalize()}:** {sidecar[key]}")
        return "\n".join(lines), sidecar

    def close(self) -> None:
        self.pool.close()
        self.results.close()


def accuracy_figures(sidecar: dict[str, Any], limit: int = 12) -> dict[str, float]:
    """Numbers in the sidecar whose key path names accuracy, F1, agreement or difference,
    e.g. ``{"accuracy.privatetest": 0.68, "parity.top1_agreement": 0.99}``; per-class
    figures, confusion matrices and image counts are left out."""
    found: dict[str, float] = {}
    skip = {"input", "labels", "per_class", "confusion_matrix", "images", "support"}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key not in skip and not str(key).endswith("_images"):
                    walk(value, f"{path}.{key}" if path else str(key))
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            words = ("acc", "f1", "agreement", "diff")
            if any(word in path.lower() for word in words) and len(found) < limit:
                found[path] = float(node)

    walk(sidecar, "")
    return found


#: How the About card names the parts of a sidecar's figure paths.
_SPLITS = {"publictest": "FER2013 PublicTest", "privatetest": "FER2013 PrivateTest",
           "ferplus": "FER+"}
_METRICS = {"accuracy": "accuracy", "macro_f1": "macro F1", "f1": "F1",
            "top1_agreement": "top-1 agreement with the source model",
            "max_abs_diff": "largest probability difference from the source model"}


def figure_label(path: str) -> str:
    """A reader's name for a figure path from :func:`accuracy_figures`:
    ``source.accuracy.publictest_macro_f1`` -> "Source model macro F1 on FER2013 PublicTest"."""
    metric, split = "accuracy", None
    for part in path.split("."):
        head, _, rest = part.partition("_")
        if part in _SPLITS or head in _SPLITS:
            split = _SPLITS.get(part) or _SPLITS[head]
            metric = _METRICS.get(rest, rest.replace("_", " ")) if rest else metric
        elif part in _METRICS:
            metric = _METRICS[part]
        elif part not in ("source", "parity", "metrics"):
            split = part.replace("_", " ")
    words = ("source model " if path.startswith("source.") else "") + metric
    text = words + (f" on {split}" if split else "")
    return text[0].upper() + text[1:]


def figure_value(path: str, value: float) -> str:
    """A fraction (accuracy, F1, agreement) as a percentage; other figures as numbers."""
    if "diff" not in path and 0.0 <= value <= 1.0:
        return f"{100 * value:.2f}%"
    return f"{value:.3g}"


def read_benchmark(report: str | os.PathLike | None) -> tuple[Path | None, list[dict]]:
    """The accuracy-latency plot and one summary row per artifact of the benchmark report
    written by ``emotion-edge bench`` (``report`` is its folder or its ``benchmark.json``);
    missing parts are None / empty, and an unreadable report is logged and left out."""
    if report is None:
        return None, []
    report = Path(report)
    folder = report if report.is_dir() else report.parent
    table = report if report.suffix == ".json" else folder / "benchmark.json"
    plot = folder / "plots" / "accuracy_vs_latency.png"
    rows: list[dict] = []
    if table.is_file():
        try:
            result = BenchmarkResult.load(table)
        except DataError as exc:
            log.warning("unreadable benchmark report: %s", exc)
        else:
            rows = [_benchmark_row(row, result.primary_dataset) for row in result.rows]
    return (plot if plot.is_file() else None), rows


def _benchmark_row(row: Row, dataset: str) -> dict:
    """One artifact's headline figures for the About tab: top-1 on the report's first data
    set, latency and memory at one thread."""
    top1 = row.accuracy[dataset].top1 if dataset in row.accuracy else None
    one_thread = row.threads.get("1")
    p50 = one_thread.latency.p50_ms if one_thread else None
    rss = one_thread.peak_rss_mb if one_thread else None
    return {
        "artifact": row.name, "kind": row.title, "status": row.status,
        "top-1 %": None if top1 is None else round(100 * top1, 2),
        "p50 ms (1 thread)": p50,
        "size KiB": None if row.file_bytes is None else round(row.file_bytes / 1024),
        "peak RSS MiB": None if rss is None else round(rss),
    }
