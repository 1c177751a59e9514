"""BlazeFace pyramid (the default): every face from close-ups to group photos, no options.

MediaPipe's short-range BlazeFace is fully convolutional, so LiteRT runs it on inputs of
any size that is a multiple of 16, and on any input it finds faces of about 14 to 128
input pixels. The pyramid runs it

- once on the whole photo letterboxed into 128x128 with a 25% black border, for faces
  that fill the frame (a tight face crop, a selfie), and
- once per finer level: the photo resized so its longer side is ``pyramid_side`` (384 by
  default, never upscaled), then a third of that while it stays above 192 pixels,

and merges all of them with weighted NMS. With the default it finds faces from about
1/27 of the photo's longer side up to the whole photo, in time that grows with
``pyramid_side`` squared, not with the photo's size.
"""

from __future__ import annotations

import numpy as np

from ..formats import BACKENDS
from ..image import resize
from .base import (
    Detection,
    DetectorInfo,
    DetectorOptions,
    FaceDetector,
    as_image,
    ceil_to,
    downscale,
)
from .blazeface import BlazeFaceModel, Found, concat, drop_nested, to_tensor, weighted_nms
from .blazeface_short import SPEC

#: Black border around the photo in the whole-photo run, as a fraction of its longer side
#: on each side: a face that fills the photo then spans about 85 of the 128 input pixels.
BORDER = 0.25
#: Default score threshold. Over the demo photos and 200 FER2013 crops, true faces score
#: >= 0.74 at the default pyramid_side and false ones <= 0.55 (scripts/detector_survey.py).
SCORE_THRESHOLD = 0.65
#: A face lying more than this fraction inside a better-scoring one is a face part.
NESTED = 0.5
#: Finer levels are a third of the one above while their longer side is at least this.
MIN_LEVEL_SIDE = 192
LEVEL_RATIO = 3.0


class PyramidBlazeFace(FaceDetector):
    """Short-range BlazeFace on a padded whole-photo run plus one run per pyramid level."""

    def __init__(self, options: DetectorOptions) -> None:
        self.name = INFO.name
        self.options = options
        threshold = (SCORE_THRESHOLD if options.score_threshold is None
                     else options.score_threshold)
        # one interpreter keeps its 128x128 shape, the other is resized per level size
        self._whole = BlazeFaceModel(SPEC, options.threads, threshold)
        self._levels = BlazeFaceModel(SPEC, options.threads, threshold)

    def level_sides(self, width: int, height: int) -> list[float]:
        """The longer side, in pixels, of each finer level for a working image this size."""
        side, sides = float(min(self.options.pyramid_side, max(width, height))), []
        while side >= MIN_LEVEL_SIDE:
            sides.append(side)
            side /= LEVEL_RATIO
        return sides

    def detect(self, image: np.ndarray) -> list[Detection]:
        image = as_image(image)
        work, sx, sy = downscale(image, self.options.max_side)
        h, w = work.shape[:2]
        pad = BORDER * max(w, h)
        found = [self._whole.run_region(work, (-pad, -pad, w + pad, h + pad))]
        found += [self._run_level(work, side) for side in self.level_sides(w, h)]
        boxes, points, scores = drop_nested(
            weighted_nms(*concat(found), self.options.iou_threshold), NESTED)
        scale = np.array([sx, sy])
        return self._finish(boxes / np.tile(scale, 2), scores, points / scale,
                            self._whole.threshold)

    def _run_level(self, work: np.ndarray, side: float) -> Found:
        """Faces in ``work`` resized to longer side ``side``, in ``work`` pixels."""
        h, w = work.shape[:2]
        scale = side / max(w, h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        patch = work if (nw, nh) == (w, h) else resize(work, nw, nh)
        boxes, points, scores = self._levels.run(to_tensor(patch, ceil_to(nh, 16),
                                                           ceil_to(nw, 16)))
        stretch = np.array([w / nw, h / nh])
        return boxes * np.tile(stretch, 2), points * stretch, scores

    def close(self) -> None:
        self._whole.close()
        self._levels.close()


def create(options: DetectorOptions) -> FaceDetector:
    return PyramidBlazeFace(options)


INFO = DetectorInfo(
    name="blazeface-pyramid",
    summary="any photo: close-ups, portraits and group photos (default)",
    engine=BACKENDS["litert"], files=(SPEC.file,), extra_options=("pyramid_side",), create=create)
