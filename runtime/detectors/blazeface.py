"""What the BlazeFace detectors share: anchors, decoding, weighted NMS and one model run.

MediaPipe's BlazeFace is an SSD: for every anchor it regresses a box (centre offset,
width, height) and six keypoints in input pixels, and a face logit. Anchor generation,
decoding and MediaPipe's weighted non-maximum suppression are written here in NumPy from
MediaPipe's ``ssd_anchors_calculator``, ``tensors_to_detections_calculator`` and
``non_max_suppression_calculator`` settings in ``face_detection_*_range_common.pbtxt``.
The models run through :func:`..litert.open_litert`, so one detector may be shared by
threads. :class:`TiledBlazeFace` is the detector of the short- and full-range modules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ModelLoadError
from ..image import resize
from ..litert import open_litert
from .base import Detection, DetectorOptions, FaceDetector, as_image, downscale, read_bundled

Found = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes (N, 4), keypoints (N, 6, 2), scores


@dataclass(frozen=True)
class BlazeFaceSpec:
    """One BlazeFace model: its file, input size, anchor layout and default threshold."""

    file: str
    input_size: int
    layers: tuple[tuple[int, int], ...]  # (stride, anchors per grid cell), in output order
    score_threshold: float

    @property
    def num_anchors(self) -> int:
        return len(ssd_anchors(self.layers, self.input_size, self.input_size))


#: Raw logits are clipped before the sigmoid, as MediaPipe's score_clipping_thresh does.
_LOGIT_CLIP = 80.0


def ssd_anchors(layers: tuple[tuple[int, int], ...], height: int, width: int) -> np.ndarray:
    """Anchor centres ``(N, 2)`` as (x, y) in [0, 1] of a ``height`` x ``width`` input.

    Layers of equal stride share one grid (MediaPipe's short-range layers 2-4 at stride
    16 give 6 anchors per cell); the grid is row-major, y outer, x inner.
    """
    grids = []
    for stride, per_cell in layers:
        rows, cols = height // stride, width // stride
        xs, ys = np.meshgrid((np.arange(cols, dtype=np.float32) + 0.5) / cols,
                             (np.arange(rows, dtype=np.float32) + 0.5) / rows)
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        grids.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(grids)


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray,
           height: int, width: int) -> Found:
    """Model outputs -> boxes ``(N, 4)``, keypoints ``(N, 6, 2)`` in input pixels, scores.

    Each regressor row is (dx, dy, w, h, then 6 keypoint (x, y)), in input pixels relative
    to its anchor centre.
    """
    size = np.array([width, height], np.float32)
    raw = raw_boxes.reshape(-1, 8, 2)
    centre = raw[:, 0] + anchors * size
    half = raw[:, 1] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    keypoints = raw[:, 2:] + (anchors * size)[:, None, :]
    logits = np.clip(raw_scores.reshape(-1), -_LOGIT_CLIP, _LOGIT_CLIP)
    return boxes, keypoints, 1.0 / (1.0 + np.exp(-logits))


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box with each of ``boxes``."""
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
                 iou_threshold: float) -> Found:
    """MediaPipe's weighted NMS: each kept face is the score-weighted mean of its cluster.

    Takes the best remaining box, gathers every remaining box overlapping it by more than
    ``iou_threshold``, and replaces them all by their score-weighted average (box and
    keypoints), keeping the best score.
    """
    order = np.argsort(-scores, kind="stable")
    out_boxes, out_points, out_scores = [], [], []
    while order.size:
        best = order[0]
        overlap = iou(boxes[best], boxes[order]) > iou_threshold
        overlap[0] = True
        cluster, order = order[overlap], order[~overlap]
        weights = scores[cluster] / scores[cluster].sum()
        out_boxes.append(weights @ boxes[cluster])
        out_points.append(np.tensordot(weights, keypoints[cluster], axes=1))
        out_scores.append(scores[best])
    if not out_scores:
        return np.zeros((0, 4)), np.zeros((0, 6, 2)), np.zeros(0)
    return np.array(out_boxes), np.array(out_points), np.array(out_scores)


def drop_nested(found: Found, covered: float) -> Found:
    """Drop faces lying mostly (more than ``covered`` of their area) inside a better one.

    A multi-scale search also sees face parts (an eye and brow, half a face) as small
    faces inside the real one; real faces in a photo do not sit inside one another.
    """
    boxes, points, scores = found
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    for i in np.argsort(-scores, kind="stable"):
        better = boxes[keep]
        inter = (np.clip(np.minimum(better[:, 2], boxes[i, 2])
                         - np.maximum(better[:, 0], boxes[i, 0]), 0, None)
                 * np.clip(np.minimum(better[:, 3], boxes[i, 3])
                           - np.maximum(better[:, 1], boxes[i, 1]), 0, None))
        if not np.any(inter > covered * areas[i]):
            keep.append(i)
    return boxes[keep], points[keep], scores[keep]


def concat(found: list[Found]) -> Found:
    """Detections of several runs as one set."""
    return (np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found]),
            np.concatenate([f[2] for f in found]))


def to_tensor(patch: np.ndarray, height: int, width: int, x: int = 0, y: int = 0
              ) -> np.ndarray:
    """A ``(1, height, width, 3)`` float32 input in [-1, 1], black (-1) around ``patch``,
    which is placed with its top-left corner at (x, y)."""
    tensor = np.full((1, height, width, 3), -1.0, np.float32)
    h, w = patch.shape[:2]
    inside = tensor[0, y:y + h, x:x + w]
    np.multiply(patch[..., None] if patch.ndim == 2 else patch, 2.0 / 255.0, out=inside,
                casting="unsafe")
    inside -= 1.0
    return tensor


class BlazeFaceModel:
    """One BlazeFace model in LiteRT: a float32 input tensor in, decoded faces out."""

    def __init__(self, spec: BlazeFaceSpec, threads: int, threshold: float) -> None:
        self.spec = spec
        self.threshold = threshold
        self._interpreter = open_litert(read_bundled(spec.file), threads=threads,
                                        name=spec.file)
        outputs = self._interpreter.outputs
        self._order = sorted(range(len(outputs)), key=lambda i: -outputs[i]["shape"][-1])
        self._anchors: dict[tuple[int, int], np.ndarray] = {}
        self._check_anchors()

    def _check_anchors(self) -> None:
        size = self.spec.input_size
        shapes = [tuple(o["shape"]) for o in self._interpreter.outputs]
        if tuple(self._interpreter.inputs[0]["shape"]) != (1, size, size, 3) or any(
                s[1] != self.spec.num_anchors for s in shapes):
            raise ModelLoadError(
                f"{self.spec.file}: expected input (1, {size}, {size}, 3) and "
                f"{self.spec.num_anchors} anchors, got input "
                f"{tuple(self._interpreter.inputs[0]['shape'])} and outputs {shapes}")

    def anchors(self, height: int, width: int) -> np.ndarray:
        key = (height, width)
        if key not in self._anchors:
            self._anchors[key] = ssd_anchors(self.spec.layers, height, width)
        return self._anchors[key]

    def run(self, tensor: np.ndarray) -> Found:
        """Faces scoring at least the threshold, in the tensor's pixels."""
        outputs = self._interpreter.run([tensor])
        raw_boxes, raw_scores = (outputs[i][0] for i in self._order)
        height, width = tensor.shape[1:3]
        boxes, points, scores = decode(raw_boxes, raw_scores, self.anchors(height, width),
                                       height, width)
        keep = (scores >= self.threshold) & (boxes[:, 2] > boxes[:, 0])
        return boxes[keep], points[keep], scores[keep]

    def run_region(self, image: np.ndarray, region: tuple[float, float, float, float],
                   ) -> Found:
        """Faces in ``region`` (x0, y0, x1, y1; may reach past the image, which is then
        black) letterboxed into the model's square input, in ``image`` pixels."""
        x0, y0, x1, y1 = region
        size = self.spec.input_size
        fit = size / max(x1 - x0, y1 - y0)
        h, w = image.shape[:2]
        ix0, iy0 = max(0, round(x0)), max(0, round(y0))
        ix1, iy1 = min(w, round(x1)), min(h, round(y1))
        nw = max(1, min(size, round((ix1 - ix0) * fit)))
        nh = max(1, min(size, round((iy1 - iy0) * fit)))
        left = round((ix0 - x0) * fit + (size - (x1 - x0) * fit) / 2)
        top = round((iy0 - y0) * fit + (size - (y1 - y0) * fit) / 2)
        left, top = min(max(left, 0), size - nw), min(max(top, 0), size - nh)
        patch = resize(np.ascontiguousarray(image[iy0:iy1, ix0:ix1]), nw, nh)
        boxes, points, scores = self.run(to_tensor(patch, size, size, left, top))
        stretch = np.array([(ix1 - ix0) / nw, (iy1 - iy0) / nh])
        origin = np.array([ix0 - left * stretch[0], iy0 - top * stretch[1]])
        return ((boxes.reshape(-1, 2, 2) * stretch + origin).reshape(-1, 4),
                points * stretch + origin, scores)

    def close(self) -> None:
        self._interpreter.close()


#: Tiles are never smaller than this many pixels, so a long thin photo gets few tiles: at
#: most about (longer side) / 48 (a 1280x20 strip: 27 tiles, not 4,000).
MIN_TILE_SIDE = 64


def tiles(width: int, height: int, tiling: int) -> list[tuple[int, int, int, int]]:
    """Overlapping square tiles (x0, y0, x1, y1): side = shorter side / tiling (at least
    :data:`MIN_TILE_SIDE`; a tile may then reach past the image), >= 25% overlap."""
    side = max(MIN_TILE_SIDE, round(min(width, height) / tiling))
    step = side * 0.75

    def starts(length: int) -> list[int]:
        count = max(1, math.ceil((length - side) / step) + 1)
        return sorted({round(v) for v in np.linspace(0, length - side, count)})

    return [(x, y, x + side, y + side) for y in starts(height) for x in starts(width)]


class TiledBlazeFace(FaceDetector):
    """A square-input BlazeFace on the whole photo, and with ``tiling`` also on tiles."""

    def __init__(self, name: str, spec: BlazeFaceSpec, options: DetectorOptions) -> None:
        self.name = name
        self.options = options
        threshold = (spec.score_threshold if options.score_threshold is None
                     else options.score_threshold)
        self._model = BlazeFaceModel(spec, options.threads, threshold)

    def detect(self, image: np.ndarray) -> list[Detection]:
        image = as_image(image)
        work, sx, sy = downscale(image, self.options.max_side)
        h, w = work.shape[:2]
        regions = [(0, 0, w, h)]
        if self.options.tiling:
            regions += [t for t in tiles(w, h, self.options.tiling) if t != regions[0]]
        boxes, points, scores = weighted_nms(
            *concat([self._model.run_region(work, r) for r in regions]),
            self.options.iou_threshold)
        scale = np.array([sx, sy])
        return self._finish(boxes / np.tile(scale, 2), scores, points / scale,
                            self._model.threshold)

    def close(self) -> None:
        self._model.close()

