"""What every face detector shares: its result, its options, its interface, its registry row.

A detector module (one per detector in this folder) declares a :class:`DetectorInfo`
(name, summary, files, engine, what it is good for, which extra options it takes) and a
``create(options)`` function; :mod:`.registry` lists them. Detectors take a uint8 RGB or
gray image and return :class:`Detection` boxes in the original image's pixels.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from ..errors import BadImageError, ConfigError, ModelLoadError
from ..formats import Backend
from ..image import read_image, resize

#: Valid range of ``tiling`` (BlazeFace short and full range): 0 is off; n runs the model
#: on tiles of side (shorter image side) / n, about (4n/3)^2 x (aspect) runs in all.
TILING_RANGE = (0, 4)
#: Valid range of ``pyramid_side`` (BlazeFace pyramid), in pixels: the longest side of the
#: finest pyramid level. Time grows with its square.
PYRAMID_SIDE_RANGE = (128, 1280)
#: Valid range of ``max_side``: photos are detected on a copy at most this long.
MAX_SIDE_RANGE = (64, 4096)


@dataclass(frozen=True)
class Detection:
    """One face: its box ``(x0, y0, x1, y1)`` in original-image pixels and a score in [0, 1].

    ``keypoints`` (BlazeFace only) is a ``(6, 2)`` float array of (x, y) pixels: right eye,
    left eye, nose tip, mouth, right ear, left ear (the person's right and left).
    Boxes of faces cut by the image border may reach a little past it.
    """

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray | None = field(default=None, compare=False, repr=False)


def _check_range(name: str, value: float, bounds: tuple[float, float], unit: str = "") -> None:
    low, high = bounds
    if not low <= value <= high:
        raise ConfigError(f"{name} must be in [{low}, {high}]{unit}, got {value}")


@dataclass(frozen=True)
class DetectorOptions:
    """Options of all detectors (a detector's :class:`DetectorInfo` says which extras it takes).

    score_threshold: keep faces scoring at least this; None takes the detector's default.
    min_face_size: drop faces whose box is smaller than this many pixels (longer side,
        original image).
    max_faces: keep at most this many faces (highest scores); None keeps all.
    threads: CPU threads for the engine.
    tiling: BlazeFace short/full range only, in :data:`TILING_RANGE`. 0 runs once on the
        whole image; n also runs on overlapping square tiles of side (shorter side) / n.
    pyramid_side: BlazeFace pyramid only, in :data:`PYRAMID_SIDE_RANGE`: the longest side
        of the finest level; faces down to about 1/27 of it are found.
    max_side: detect on a copy whose longer side is at most this, in :data:`MAX_SIDE_RANGE`.
    iou_threshold: boxes overlapping more than this are merged (weighted NMS).
    """

    score_threshold: float | None = None
    min_face_size: float = 16.0
    max_faces: int | None = None
    threads: int = 1
    tiling: int = 0
    pyramid_side: int = 384
    max_side: int = 1280
    iou_threshold: float = 0.3

    def __post_init__(self) -> None:
        if self.score_threshold is not None:
            _check_range("score_threshold", self.score_threshold, (0.0, 1.0))
        if not self.min_face_size >= 0:
            raise ConfigError(f"min_face_size must be >= 0 pixels, got {self.min_face_size}")
        if self.max_faces is not None and self.max_faces < 1:
            raise ConfigError(f"max_faces must be >= 1 or None, got {self.max_faces}")
        if self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        _check_range("tiling", self.tiling, TILING_RANGE, " (0 is off)")
        _check_range("pyramid_side", self.pyramid_side, PYRAMID_SIDE_RANGE, " pixels")
        _check_range("max_side", self.max_side, MAX_SIDE_RANGE, " pixels")
        if not 0.0 < self.iou_threshold < 1.0:
            raise ConfigError(f"iou_threshold must be in (0, 1), got {self.iou_threshold}")


class FaceDetector(ABC):
    """A face detector: ``detect(image) -> list[Detection]``; a context manager.

    ``detect`` may be called from several threads at once on one detector.
    """

    name: str
    options: DetectorOptions

    @abstractmethod
    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in a uint8 RGB ``(H, W, 3)`` or gray ``(H, W)`` image, best first."""

    @abstractmethod
    def close(self) -> None:
        """Release the engine; the detector cannot be used afterwards."""

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _finish(self, boxes: np.ndarray, scores: np.ndarray,
                keypoints: np.ndarray | None, threshold: float) -> list[Detection]:
        """Threshold, size-filter, sort and cap raw detections in original pixels."""
        sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        keep = (scores >= threshold) & (sides >= self.options.min_face_size)
        order = [i for i in np.argsort(-scores, kind="stable") if keep[i]]
        order = order[:self.options.max_faces]
        return [Detection(tuple(float(v) for v in boxes[i]), float(scores[i]),
                          None if keypoints is None else _frozen(keypoints[i]))
                for i in order]


@dataclass(frozen=True)
class DetectorInfo:
    """A detector's registry row.

    name: what users pass (``--detector``, the app's menu).
    summary: what it is good for, in a few words (menus, ``--help``).
    engine: the engine it runs on (``formats.BACKENDS["litert"]`` or OpenCV), which says
        whether it is installed and which extra installs it.
    files: the model files it ships in this folder.
    extra_options: the :class:`DetectorOptions` fields it takes beyond the common ones.
    create: builds the detector from validated options.
    """

    name: str
    summary: str
    engine: Backend
    files: tuple[str, ...]
    extra_options: tuple[str, ...]
    create: Callable[[DetectorOptions], FaceDetector] = field(repr=False, compare=False)

    def available(self) -> bool:
        """True when the detector's engine is installed."""
        return self.engine.available()


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array, dtype=np.float64)
    array.flags.writeable = False
    return array


def as_image(image: np.ndarray) -> np.ndarray:
    """Validate and normalise to uint8 (H, W) or (H, W, 3) without copying uint8 input."""
    if not isinstance(image, np.ndarray):
        raise BadImageError(f"detect() needs a NumPy image array, got {type(image).__name__}")
    return read_image(image, name="image")


def downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float, float]:
    """A copy whose longer side is at most ``max_side``, and its x and y scale factors.

    Very large images are first thinned by plain striding (a view), so only small copies
    are ever made; the final resize still averages over at least two source pixels.
    """
    h, w = image.shape[:2]
    longest = max(h, w)
    if longest <= max_side:
        return image, 1.0, 1.0
    step = longest // (2 * max_side)
    small = image[::step, ::step] if step > 1 else image
    tw = max(1, round(w * max_side / longest))
    th = max(1, round(h * max_side / longest))
    return resize(np.ascontiguousarray(small), tw, th), tw / w, th / h


def read_bundled(filename: str) -> bytes:
    """The bytes of a model file shipped in this folder (through importlib.resources)."""
    path = resources.files("emotion_edge.runtime") / "detectors" / filename
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"bundled face detector {filename} cannot be read ({exc}); "
                             "reinstall emotion-edge") from None


def box_sides(boxes: np.ndarray) -> np.ndarray:
    """The longer side of each ``(N, 4)`` box."""
    return np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


def ceil_to(value: float, multiple: int) -> int:
    """``value`` rounded up to a multiple of ``multiple`` (at least one multiple)."""
    return max(multiple, math.ceil(value / multiple) * multiple)
