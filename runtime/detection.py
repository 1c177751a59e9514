"""Face detection: find faces in a photo and cut them out the way FER2013 crops look.

Three detectors, chosen by name with :func:`load_detector`:

- ``"blazeface"`` (default): MediaPipe's short-range BlazeFace (128x128 input), run through
  LiteRT. Best for faces that fill a good part of the picture (selfies, portraits).
- ``"blazeface-full"``: MediaPipe's full-range BlazeFace (192x192 input), for small or
  distant faces such as group photos.
- ``"haar"``: OpenCV's frontal-face Haar cascade; needs the ``[opencv]`` extra.

The two BlazeFace models ship in ``detectors/`` (Apache-2.0, see ``detectors/README.md``).
Anchor generation, box and keypoint decoding, letterboxing and MediaPipe's weighted
non-maximum suppression are written here in NumPy. Large photos are detected on a copy
whose longer side is at most ``max_side`` pixels, and boxes are mapped back to the
original. :func:`crop_face` cuts a square, eye-levelled crop from the original image.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from typing import Any

import numpy as np

from .errors import BackendUnavailableError, BadImageError, ConfigError, ModelLoadError
from .formats import BACKENDS, Backend
from .image import read_image, resize

log = logging.getLogger(__name__)

#: OpenCV, needed only by the Haar detector.
OPENCV = Backend("opencv", "cv2", "opencv", "OpenCV")

#: Default ``margin`` of :func:`crop_face`, fitted on FER2013 itself: re-cropping 300
#: FER2013 images (placed on a larger canvas) from their detections matches the original
#: frames best (pixel correlation) at margin 0.05-0.06 for both BlazeFace models.
#: (OpenCV's Haar boxes are larger, 0.96 of a FER2013 frame against BlazeFace's 0.87, so
#: margin 0.02 suits them.)
DEFAULT_MARGIN = 0.06

#: Where FER2013's frame centre sits on the line from the eyes' midpoint to the mouth
#: (median over the same images, both BlazeFace models): a little below the eyes, so
#: crops show the forehead and end at the chin as FER2013's do.
FER_CENTRE_EYES_TO_MOUTH = 0.27


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


@dataclass(frozen=True)
class DetectorOptions:
    """Options shared by all detectors.

    score_threshold: keep faces scoring at least this; None takes the model's default
        (0.5 short-range, 0.6 full-range, 0.5 Haar).
    min_face_size: drop faces whose box is smaller than this many pixels (longer side,
        original image).
    max_faces: keep at most this many faces (highest scores); None keeps all.
    threads: CPU threads for the engine.
    tiling: BlazeFace only. 0 runs once on the whole image; n >= 1 also runs on
        overlapping square tiles whose side is the image's shorter side / n, which finds
        faces far smaller than the model's input would allow.
    max_side: detect on a copy whose longer side is at most this many pixels.
    iou_threshold: boxes overlapping more than this are merged (weighted NMS).
    """

    score_threshold: float | None = None
    min_face_size: float = 16.0
    max_faces: int | None = None
    threads: int = 1
    tiling: int = 0
    max_side: int = 1280
    iou_threshold: float = 0.3

    def __post_init__(self) -> None:
        if self.score_threshold is not None and not 0.0 <= self.score_threshold <= 1.0:
            raise ConfigError(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        if self.min_face_size < 0:
            raise ConfigError(f"min_face_size must be >= 0 pixels, got {self.min_face_size}")
        if self.max_faces is not None and self.max_faces < 1:
            raise ConfigError(f"max_faces must be >= 1 or None, got {self.max_faces}")
        if self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        if self.tiling < 0:
            raise ConfigError(f"tiling must be 0 (off) or a number of tiles >= 1, "
                              f"got {self.tiling}")
        if self.max_side < 64:
            raise ConfigError(f"max_side must be >= 64 pixels, got {self.max_side}")
        if not 0.0 < self.iou_threshold < 1.0:
            raise ConfigError(f"iou_threshold must be in (0, 1), got {self.iou_threshold}")


class FaceDetector(ABC):
    """A face detector: ``detect(image) -> list[Detection]``; a context manager."""

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


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array, dtype=np.float64)
    array.flags.writeable = False
    return array


# --- image preparation ---------------------------------------------------------------

def _as_image(image: np.ndarray) -> np.ndarray:
    """Validate and normalise to uint8 (H, W) or (H, W, 3) without copying uint8 input."""
    if not isinstance(image, np.ndarray):
        raise BadImageError(f"detect() needs a NumPy image array, got {type(image).__name__}")
    return read_image(image, name="image")


def _downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float, float]:
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


# --- BlazeFace -----------------------------------------------------------------------

@dataclass(frozen=True)
class BlazeFaceSpec:
    """One BlazeFace model: its file, input size, anchor layout and default threshold."""

    file: str
    input_size: int
    layers: tuple[tuple[int, int], ...]  # (stride, anchors per grid cell), in output order
    score_threshold: float

    @property
    def num_anchors(self) -> int:
        return sum((self.input_size // s) ** 2 * n for s, n in self.layers)


#: From MediaPipe's face_detection_{short,full}_range_common.pbtxt. The short-range SSD
#: has four layers with strides 8, 16, 16, 16 and two anchors each; layers of equal stride
#: share one grid, giving 16x16x2 + 8x8x6 = 896 anchors. Full range: one 48x48 grid, 2304.
BLAZEFACE_MODELS: dict[str, BlazeFaceSpec] = {
    "blazeface": BlazeFaceSpec("face_detection_short_range.tflite", 128,
                               ((8, 2), (16, 6)), 0.5),
    "blazeface-full": BlazeFaceSpec("face_detection_full_range.tflite", 192, ((4, 1),), 0.6),
}

#: Raw logits are clipped before the sigmoid, as MediaPipe's score_clipping_thresh does.
_LOGIT_CLIP = 80.0


def ssd_anchors(spec: BlazeFaceSpec) -> np.ndarray:
    """Anchor centres ``(N, 2)`` as (x, y) in [0, 1], in the model's output order."""
    grids = []
    for stride, per_cell in spec.layers:
        cells = spec.input_size // stride
        centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        xs, ys = np.meshgrid(centres, centres)  # row-major: y outer, x inner
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        grids.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(grids)


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray,
           input_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model outputs -> boxes ``(N, 4)``, keypoints ``(N, 6, 2)`` in [0, 1], scores ``(N,)``.

    Each regressor row is (dx, dy, w, h, then 6 keypoint (x, y)), in input pixels
    relative to its anchor centre.
    """
    raw = raw_boxes.reshape(-1, 8, 2) / input_size
    centre = raw[:, 0] + anchors
    half = raw[:, 1] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    keypoints = raw[:, 2:] + anchors[:, None, :]
    logits = np.clip(raw_scores.reshape(-1), -_LOGIT_CLIP, _LOGIT_CLIP)
    return boxes, keypoints, 1.0 / (1.0 + np.exp(-logits))


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                 iou_threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's weighted NMS: each kept face is the score-weighted mean of its cluster.

    Takes the best remaining box, gathers every remaining box overlapping it by more than
    ``iou_threshold``, and replaces them all by their score-weighted average (box and
    keypoints), keeping the best score.
    """
    order = np.argsort(-scores, kind="stable")
    out_boxes, out_points, out_scores = [], [], []
    while order.size:
        best = order[0]
        overlap = _iou(boxes[best], boxes[order]) > iou_threshold
        overlap[0] = True
        cluster, order = order[overlap], order[~overlap]
        weights = scores[cluster] / scores[cluster].sum()
        out_boxes.append(weights @ boxes[cluster])
        out_points.append(np.tensordot(weights, keypoints[cluster], axes=1))
        out_scores.append(scores[best])
    if not out_scores:
        return np.zeros((0, 4), np.float32), np.zeros((0, 6, 2), np.float32), np.zeros(0)
    return np.array(out_boxes), np.array(out_points), np.array(out_scores)


def _tiles(width: int, height: int, tiling: int) -> list[tuple[int, int, int, int]]:
    """Overlapping square tiles (x0, y0, x1, y1): side = shorter side / tiling, >= 25% overlap."""
    side = max(1, round(min(width, height) / tiling))
    step = side * 0.75

    def starts(length: int) -> list[int]:
        count = max(1, math.ceil((length - side) / step) + 1)
        return sorted({round(v) for v in np.linspace(0, length - side, count)})

    return [(x, y, x + side, y + side) for y in starts(height) for x in starts(width)]


def _read_detector_file(filename: str) -> bytes:
    path = resources.files("emotion_edge.runtime") / "detectors" / filename
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"bundled face detector {filename} cannot be read ({exc}); "
                             "reinstall emotion-edge") from None


class BlazeFaceDetector(FaceDetector):
    """MediaPipe BlazeFace through LiteRT, with our own decoding and weighted NMS."""

    def __init__(self, name: str, options: DetectorOptions) -> None:
        self.name = name
        self.options = options
        self.spec = BLAZEFACE_MODELS[name]
        self._threshold = (self.spec.score_threshold if options.score_threshold is None
                           else options.score_threshold)
        self._anchors = ssd_anchors(self.spec)
        self._interpreter = _litert_interpreter(_read_detector_file(self.spec.file),
                                                options.threads, self.spec.file)
        inp = self._interpreter.get_input_details()[0]
        outs = sorted(self._interpreter.get_output_details(), key=lambda d: -d["shape"][-1])
        size = self.spec.input_size
        if tuple(inp["shape"]) != (1, size, size, 3) or any(
                o["shape"][1] != self.spec.num_anchors for o in outs):
            raise ModelLoadError(
                f"{self.spec.file}: expected input (1, {size}, {size}, 3) and "
                f"{self.spec.num_anchors} anchors, got input {tuple(inp['shape'])} and "
                f"outputs {[tuple(o['shape']) for o in outs]}")
        self._input = inp["index"]
        self._boxes_out, self._scores_out = outs[0]["index"], outs[1]["index"]

    def detect(self, image: np.ndarray) -> list[Detection]:
        image = _as_image(image)
        work, sx, sy = _downscale(image, self.options.max_side)
        h, w = work.shape[:2]
        regions = [(0, 0, w, h)]
        if self.options.tiling:
            regions += [t for t in _tiles(w, h, self.options.tiling) if t != regions[0]]
        found = [self._detect_region(work, r) for r in regions]
        boxes = np.concatenate([f[0] for f in found])
        points = np.concatenate([f[1] for f in found])
        scores = np.concatenate([f[2] for f in found])
        boxes, points, scores = weighted_nms(boxes, points, scores, self.options.iou_threshold)
        scale = np.array([sx, sy])
        boxes = boxes / np.tile(scale, 2)
        points = points / scale
        return self._finish(boxes, scores, points, self._threshold)

    def _detect_region(self, work: np.ndarray, region: tuple[int, int, int, int]
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Detections in one region of the working image, in working-image pixels."""
        x0, y0, x1, y1 = region
        size = self.spec.input_size
        fit = size / max(x1 - x0, y1 - y0)
        nw, nh = max(1, round((x1 - x0) * fit)), max(1, round((y1 - y0) * fit))
        pad_x, pad_y = (size - nw) // 2, (size - nh) // 2
        patch = resize(np.ascontiguousarray(work[y0:y1, x0:x1]), nw, nh)
        tensor = np.full((1, size, size, 3), -1.0, np.float32)  # letterbox: black borders
        pixels = patch.astype(np.float32) * (2.0 / 255.0) - 1.0
        tensor[0, pad_y:pad_y + nh, pad_x:pad_x + nw] = pixels[..., None] if patch.ndim == 2 \
            else pixels
        self._interpreter.set_tensor(self._input, tensor)
        self._interpreter.invoke()
        boxes, points, scores = decode(self._interpreter.get_tensor(self._boxes_out)[0],
                                       self._interpreter.get_tensor(self._scores_out)[0],
                                       self._anchors, size)
        keep = (scores >= self._threshold) & (boxes[:, 2] > boxes[:, 0])
        boxes, points, scores = boxes[keep], points[keep], scores[keep]
        # input-normalised -> working-image pixels, undoing the letterbox
        offset = np.array([pad_x, pad_y]) / size
        stretch = np.array([(x1 - x0) / nw, (y1 - y0) / nh]) * size
        origin = np.array([x0, y0])
        points = (points - offset) * stretch + origin
        corners = (boxes.reshape(-1, 2, 2) - offset) * stretch + origin
        return corners.reshape(-1, 4), points, scores

    def close(self) -> None:
        self._interpreter = None


def _litert_interpreter(model: bytes, threads: int, label: str) -> Any:
    BACKENDS["litert"].require()
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise BackendUnavailableError(
            f"BlazeFace needs LiteRT ({exc}); install it with: "
            "pip install 'emotion-edge[tflite]'") from None
    try:
        interpreter = Interpreter(model_content=model, num_threads=threads)
        interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        raise ModelLoadError(f"{label}: LiteRT cannot load the face detector ({exc})") from None
    return interpreter


# --- Haar cascade --------------------------------------------------------------------

class HaarDetector(FaceDetector):
    """OpenCV's frontal-face Haar cascade. No keypoints, so crops are not eye-levelled.

    Its score is ``n / (n + 5)`` for a face confirmed by ``n`` overlapping windows
    (OpenCV requires n >= 5), so every returned face scores at least 0.5.
    """

    MIN_NEIGHBOURS = 5

    def __init__(self, options: DetectorOptions) -> None:
        self.name = "haar"
        self.options = options
        self._cv2 = _import_cv2()
        self._cv2.setNumThreads(options.threads)
        path = self._cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self._cascade = self._cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise ModelLoadError(f"{path}: OpenCV cannot load its Haar cascade")

    def detect(self, image: np.ndarray) -> list[Detection]:
        from .image import to_gray

        image = _as_image(image)
        work, sx, sy = _downscale(image, self.options.max_side)
        gray = self._cv2.equalizeHist(np.ascontiguousarray(to_gray(work)))
        min_side = max(1, math.floor(self.options.min_face_size * min(sx, sy)))
        rects, neighbours = self._cascade.detectMultiScale2(
            gray, scaleFactor=1.1, minNeighbors=self.MIN_NEIGHBOURS,
            minSize=(min_side, min_side))
        if len(rects) == 0:
            return []
        rects = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
        boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
        boxes /= np.array([sx, sy, sx, sy])
        counts = np.asarray(neighbours, dtype=np.float64).reshape(-1)
        scores = counts / (counts + self.MIN_NEIGHBOURS)
        threshold = 0.5 if self.options.score_threshold is None else self.options.score_threshold
        return self._finish(boxes, scores, None, threshold)

    def close(self) -> None:
        self._cascade = None


def _import_cv2() -> Any:
    message = ("the Haar face detector needs OpenCV; install it with: "
               f"pip install 'emotion-edge[{OPENCV.extra}]'")
    try:
        import cv2
    except ImportError:
        raise BackendUnavailableError(message) from None
    return cv2


# --- loading -------------------------------------------------------------------------

DETECTORS: tuple[str, ...] = (*BLAZEFACE_MODELS, "haar")


def load_detector(name: str = "blazeface", **options: Any) -> FaceDetector:
    """Load a face detector by name (see :data:`DETECTORS`) with :class:`DetectorOptions`.

    Raises ConfigError for an unknown name or option, BackendUnavailableError when the
    engine (LiteRT for BlazeFace, OpenCV for Haar) is not installed.
    """
    valid = {f.name for f in fields(DetectorOptions)}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ConfigError(f"unknown face detector option(s) {', '.join(unknown)}; "
                          f"valid options: {', '.join(sorted(valid))}")
    opts = replace(DetectorOptions(), **options)
    if name in BLAZEFACE_MODELS:
        return BlazeFaceDetector(name, opts)
    if name == "haar":
        if opts.tiling:
            raise ConfigError("tiling applies to the BlazeFace detectors only, not 'haar'")
        return HaarDetector(opts)
    raise ConfigError(f"unknown face detector {name!r}; choose one of: {', '.join(DETECTORS)}")


# --- cropping ------------------------------------------------------------------------

def eye_angle(keypoints: np.ndarray) -> float:
    """Angle in degrees of the line from the right eye to the left eye (0 = level)."""
    (rx, ry), (lx, ly) = keypoints[0], keypoints[1]
    return math.degrees(math.atan2(ly - ry, lx - rx))


def crop_face(image: np.ndarray, detection: Detection, margin: float = DEFAULT_MARGIN,
              size: int | None = None) -> np.ndarray:
    """A square crop of ``image`` around a face, eyes levelled when keypoints exist.

    The square's side is the box's longer side times ``1 + 2 * margin``. With keypoints it
    is centred on the face's axis between eyes and mouth where FER2013 centres its faces,
    and rotated so the eyes are level; without, it is centred on the box. Parts outside
    the image repeat the edge pixels. Returns uint8 with the input's channels,
    ``size`` x ``size`` if given, else at the crop's own resolution.
    """
    image = _as_image(image)
    if margin <= -0.5:
        raise ConfigError(f"margin must be > -0.5, got {margin}")
    if size is not None and size < 1:
        raise ConfigError(f"size must be >= 1 pixel, got {size}")
    x0, y0, x1, y1 = detection.box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    if not side > 0:
        raise ConfigError(f"cannot crop an empty face box {detection.box}")
    if detection.keypoints is None:
        cx, cy, angle = (x0 + x1) / 2, (y0 + y1) / 2, 0.0
    else:
        eyes = (detection.keypoints[0] + detection.keypoints[1]) / 2
        cx, cy = eyes + FER_CENTRE_EYES_TO_MOUTH * (detection.keypoints[3] - eyes)
        angle = math.radians(eye_angle(detection.keypoints))
    from PIL import Image

    # Cut a patch that holds the rotated square, replicating edges, so the whole image is
    # never copied; box-shrink it first when the crop is far larger than the size asked.
    reach = side * math.sqrt(0.5) + 2
    px0, py0 = math.floor(cx - reach), math.floor(cy - reach)
    px1, py1 = math.ceil(cx + reach), math.ceil(cy + reach)
    h, w = image.shape[:2]
    rows = np.clip(np.arange(py0, py1), 0, h - 1)
    cols = np.clip(np.arange(px0, px1), 0, w - 1)
    patch = Image.fromarray(image[rows[:, None], cols[None, :]])
    shrink = max(1, int(side // (2 * size))) if size else 1
    if shrink > 1:
        patch = patch.reduce(shrink)

    # output (u, v) -> patch (x, y): rotate by the eye angle about the face centre
    out = max(1, round(side / shrink))
    unit = side / shrink / out
    cos, sin = math.cos(angle) * unit, math.sin(angle) * unit
    fx, fy, half = (cx - px0) / shrink, (cy - py0) / shrink, out / 2
    coeffs = (cos, -sin, fx - cos * half + sin * half,
              sin, cos, fy - sin * half - cos * half)
    crop = patch.transform((out, out), Image.Transform.AFFINE, coeffs,
                           resample=Image.Resampling.BILINEAR)
    crop = np.asarray(crop)
    return crop if size is None else resize(crop, size, size)
