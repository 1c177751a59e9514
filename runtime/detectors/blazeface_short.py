"""BlazeFace short range: MediaPipe's selfie/portrait face detector (128x128 input, LiteRT).

Best for faces that fill a good part of the picture (within about 2 m of the camera);
misses faces smaller than about 1/9 of the photo's longer side unless ``tiling`` is set.
"""

from __future__ import annotations

from ..formats import BACKENDS
from .base import DetectorInfo, DetectorOptions, FaceDetector
from .blazeface import BlazeFaceSpec, TiledBlazeFace

#: From MediaPipe's face_detection_short_range_common.pbtxt: four SSD layers with strides
#: 8, 16, 16, 16 and two anchors each; equal strides share a grid: 16x16x2 + 8x8x6 = 896.
SPEC = BlazeFaceSpec("face_detection_short_range.tflite", 128, ((8, 2), (16, 6)), 0.5)


def create(options: DetectorOptions) -> FaceDetector:
    return TiledBlazeFace(INFO.name, SPEC, options)


INFO = DetectorInfo(
    name="blazeface", summary="close-ups and portraits (short range, fastest)",
    engine=BACKENDS["litert"], files=(SPEC.file,), extra_options=("tiling",), create=create)
