"""BlazeFace full range: MediaPipe's face detector for distant faces (192x192 input, LiteRT).

Finds faces down to about 1/20 of the photo's longer side in one run; ``tiling`` runs it
on tiles as well, for smaller faces still, at the cost of one run per tile.
"""

from __future__ import annotations

from ..formats import BACKENDS
from .base import DetectorInfo, DetectorOptions, FaceDetector
from .blazeface import BlazeFaceSpec, TiledBlazeFace

#: From MediaPipe's face_detection_full_range_common.pbtxt: one 48x48 grid (stride 4) with
#: one anchor per cell, 2304 anchors.
SPEC = BlazeFaceSpec("face_detection_full_range.tflite", 192, ((4, 1),), 0.6)


def create(options: DetectorOptions) -> FaceDetector:
    return TiledBlazeFace(INFO.name, SPEC, options)


INFO = DetectorInfo(
    name="blazeface-full", summary="small and distant faces (full range; slower)",
    engine=BACKENDS["litert"], files=(SPEC.file,), extra_options=("tiling",), create=create)
