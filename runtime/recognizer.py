"""Photo in, faces with emotions out: detection, cropping and classification in one call.

``EmotionRecognizer.analyze`` reads the image, finds faces (or takes the whole image as
one face), cuts aligned crops from the original, prepares them with the model's sidecar
and classifies all of them in one batch.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .detectors.registry import DEFAULT_DETECTOR
from .errors import ConfigError, ModelLoadError
from .image import ImageLike, read_image
from .predictor import Predictor, load_predictor
from .preprocess import prepare_batch, whole_image_as_face

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class RecognizerOptions:
    """How to recognise: which model on which backend, and how to find faces.

    model: a ``.tflite``/``.onnx``/``.keras`` path or a bundled model's name (None: default).
    detect_faces: False takes the whole image as one face (for photos that are face crops).
    detector: a name from ``emotion_edge.runtime.detectors.DETECTORS``; the default,
        ``blazeface-pyramid``, finds faces from close-ups to group photos.
    min_face_size: ignore faces smaller than this many pixels (longer side).
    max_faces: classify at most this many faces (default 64; a class photo has a couple of
        dozen), highest detection scores first; None classifies all.
    score_threshold: minimum detection score; None takes the detector's default.
    tiling: ``blazeface``/``blazeface-full`` only: 0 detects on the whole image; n (1-4)
        also runs on overlapping tiles (side = shorter image side / n).
    pyramid_side: ``blazeface-pyramid`` only: longest side of its finest level (128-1280
        pixels; None: 384). Larger finds smaller faces, in more time.
    """

    model: str | os.PathLike | None = None
    backend: str | None = None
    threads: int | None = None
    detect_faces: bool = True
    detector: str = DEFAULT_DETECTOR
    min_face_size: float = 16.0
    max_faces: int | None = 64
    score_threshold: float | None = None
    tiling: int = 0
    pyramid_side: int | None = None


@dataclass(frozen=True)
class FaceResult:
    """One face: its box ``(x0, y0, x1, y1)`` in image pixels and its emotion.

    ``detection_score`` is None when faces were not detected (the whole image was used).
    """

    box: Box
    detection_score: float | None
    label: str
    score: float
    probabilities: dict[str, float] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"box": [round(v, 1) for v in self.box],
                "detection_score": self.detection_score, "label": self.label,
                "score": self.score, "probabilities": dict(self.probabilities)}


@dataclass(frozen=True)
class RecognizerTimings:
    """Milliseconds spent by the last ``analyze`` call on each step."""

    detection_ms: float = 0.0
    classification_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.detection_ms + self.classification_ms


class EmotionRecognizer:
    """Finds faces in photos and classifies their emotions; a context manager."""

    def __init__(self, options: RecognizerOptions | None = None) -> None:
        self.options = options or RecognizerOptions()
        if self.options.max_faces is not None and self.options.max_faces < 1:
            raise ConfigError(f"max_faces must be >= 1 or None, got {self.options.max_faces}")
        for name in ("tiling", "pyramid_side"):
            if not self.options.detect_faces and getattr(self.options, name):
                raise ConfigError(f"{name} is an option of face detection; it cannot be used "
                                  "with detect_faces=False (--no-detect)")
        self.predictor: Predictor = load_predictor(
            self.options.model, backend=self.options.backend, threads=self.options.threads)
        self._closed = False
        self._detector = None
        try:
            if self.options.detect_faces:
                self._detector = self._load_detector()
        except BaseException:
            self.predictor.close()
            raise
        self.timings = RecognizerTimings()

    def _load_detector(self) -> Any:
        from .detectors import build_detector

        opts = self.options
        extra = {"tiling": opts.tiling, "pyramid_side": opts.pyramid_side}
        return build_detector(opts.detector, score_threshold=opts.score_threshold,
                              min_face_size=opts.min_face_size, max_faces=opts.max_faces,
                              threads=opts.threads or 1,
                              **{k: v for k, v in extra.items() if v})

    @property
    def labels(self) -> tuple[str, ...]:
        return self.predictor.labels

    def analyze(self, image: ImageLike, *, name: str | None = None) -> list[FaceResult]:
        """The faces in ``image`` (path, bytes, PIL image or array), best detection first.

        An image with no face gives an empty list. Bad images raise BadImageError.
        """
        if self._closed:
            raise ModelLoadError("this EmotionRecognizer was closed; create a new one")
        pixels = read_image(image, name=name)
        start = time.perf_counter()
        crops, boxes, scores = self._faces(pixels)
        detected = time.perf_counter()
        results = self._classify(crops, boxes, scores)
        done = time.perf_counter()
        self.timings = RecognizerTimings((detected - start) * 1e3, (done - detected) * 1e3)
        return results

    def _faces(self, pixels: np.ndarray) -> tuple[list[np.ndarray], list[Box],
                                                   list[float | None]]:
        if self._detector is None:
            crop, box = whole_image_as_face(pixels)
            return [crop], [box], [None]
        from .alignment import crop_face

        detections = self._detector.detect(pixels)
        crops = [crop_face(pixels, d) for d in detections]
        return crops, [d.box for d in detections], [d.score for d in detections]

    def _classify(self, crops: list[np.ndarray], boxes: list[Box],
                  scores: list[float | None]) -> list[FaceResult]:
        if not crops:
            return []
        probabilities = self.predictor.predict(prepare_batch(crops, self.predictor.input_spec))
        labels = self.labels
        results = []
        for box, detection_score, probs in zip(boxes, scores, probabilities, strict=True):
            best = int(np.argmax(probs))
            results.append(FaceResult(
                box=tuple(float(v) for v in box), detection_score=detection_score,
                label=labels[best], score=float(probs[best]),
                probabilities={label: float(p) for label, p in zip(labels, probs, strict=True)}))
        return results

    def close(self) -> None:
        """Release the model and the detector; ``analyze`` raises ModelLoadError afterwards."""
        self._closed = True
        self.predictor.close()
        if self._detector is not None:
            self._detector.close()

    def __enter__(self) -> EmotionRecognizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
