"""Face alignment: cut a detected face out of the original photo the way FER2013 crops look.

Kept apart from detection: a detector says where a face is (box and, for BlazeFace, six
keypoints); :func:`crop_face` decides how to cut it: a square, eye-levelled crop centred
where FER2013 centres its faces, taken from the full-resolution original even when the
detector looked at a downscaled copy.
"""

from __future__ import annotations

import math

import numpy as np

from .detectors.base import Detection, as_image
from .errors import ConfigError
from .image import resize

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
    image = as_image(image)
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
