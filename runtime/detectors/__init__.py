"""Face detectors: one module per detector, found by name in :mod:`.registry`.

The model files they run ship in this folder (see its README.md for sources and licences).

    from emotion_edge.runtime.detectors import build_detector

    with build_detector() as detector:          # the default, blazeface-pyramid
        faces = detector.detect(pixels)          # uint8 RGB or gray array
"""

from .base import (
    MAX_SIDE_RANGE,
    PYRAMID_SIDE_RANGE,
    TILING_RANGE,
    Detection,
    DetectorInfo,
    DetectorOptions,
    FaceDetector,
)
from .registry import DEFAULT_DETECTOR, DETECTORS, build_detector, detector_info, detector_names

__all__ = [
    "DEFAULT_DETECTOR", "DETECTORS", "MAX_SIDE_RANGE", "PYRAMID_SIDE_RANGE", "TILING_RANGE",
    "Detection", "DetectorInfo", "DetectorOptions", "FaceDetector", "build_detector",
    "detector_info", "detector_names",
]
