"""OpenCV's frontal-face Haar cascade: a classic detector for comparison (``[opencv]``).

No keypoints, so its crops are not eye-levelled. Its score is ``n / (n + 5)`` for a face
confirmed by ``n`` overlapping windows (OpenCV requires n >= 5), so every returned face
scores at least 0.5.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from ..errors import BackendUnavailableError, ModelLoadError
from ..formats import Backend
from ..image import to_gray
from .base import Detection, DetectorInfo, DetectorOptions, FaceDetector, as_image, downscale

#: OpenCV, needed only by this detector.
OPENCV = Backend("opencv", "cv2", "opencv", "OpenCV")


class HaarDetector(FaceDetector):
    """OpenCV's ``haarcascade_frontalface_default.xml`` (shipped inside OpenCV)."""

    MIN_NEIGHBOURS = 5

    def __init__(self, options: DetectorOptions) -> None:
        self.name = INFO.name
        self.options = options
        self._lock = threading.Lock()
        self._cv2 = _import_cv2()
        self._cv2.setNumThreads(options.threads)
        path = self._cv2.data.haarcascades + INFO.files[0]
        self._cascade = self._cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise ModelLoadError(f"{path}: OpenCV cannot load its Haar cascade")

    def detect(self, image: np.ndarray) -> list[Detection]:
        image = as_image(image)
        work, sx, sy = downscale(image, self.options.max_side)
        gray = self._cv2.equalizeHist(np.ascontiguousarray(to_gray(work)))
        min_side = max(1, math.floor(self.options.min_face_size * min(sx, sy)))
        with self._lock:  # one cascade is not documented as safe to share between threads
            if self._cascade is None:
                raise ModelLoadError("the haar face detector was closed")
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
        with self._lock:
            self._cascade = None


def _import_cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise BackendUnavailableError(
            "the Haar face detector needs OpenCV; install it with: "
            f"pip install 'emotion-edge[{OPENCV.extra}]'") from None
    return cv2


def create(options: DetectorOptions) -> FaceDetector:
    return HaarDetector(options)


INFO = DetectorInfo(
    name="haar", summary="OpenCV Haar cascade, frontal faces (needs [opencv])",
    engine=OPENCV, files=("haarcascade_frontalface_default.xml",), extra_options=(),
    create=create)
