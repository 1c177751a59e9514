"""The light, embeddable layer: load a model artifact and recognise emotions on faces.

Importing this package imports only the standard library and NumPy; each backend imports
its engine (LiteRT, ONNX Runtime, Keras/TensorFlow) when a model is loaded on it.

    from emotion_edge.runtime import EmotionRecognizer, RecognizerOptions

    with EmotionRecognizer(RecognizerOptions()) as recognizer:
        for face in recognizer.analyze("photo.jpg"):
            print(face.box, face.label, face.score)
"""

from .alignment import crop_face
from .bundled import bundled_models, resolve_model
from .detectors import DEFAULT_DETECTOR, DETECTORS, Detection, DetectorOptions, build_detector
from .errors import (
    BackendUnavailableError,
    BadImageError,
    ConfigError,
    DataError,
    EmotionEdgeError,
    ExportError,
    ExportParityError,
    InputShapeError,
    ModelLoadError,
    NoFaceError,
)
from .formats import BACKENDS, FORMATS
from .predictor import Predictor, PredictorInfo, load_predictor
from .preprocess import prepare_batch
from .recognizer import EmotionRecognizer, FaceResult, RecognizerOptions, RecognizerTimings
from .sidecar import InputSpec
from .stream import (
    FaceTracks,
    StreamOptions,
    StreamRecognizer,
    StreamResult,
    TimestampError,
    TrackedFace,
)
from .tracking import IoUTracker

__all__ = [
    "DEFAULT_DETECTOR", "DETECTORS", "Detection", "DetectorOptions", "build_detector",
    "crop_face",
    "BACKENDS", "FORMATS", "BackendUnavailableError", "BadImageError", "ConfigError",
    "DataError", "EmotionEdgeError", "EmotionRecognizer", "ExportError", "ExportParityError",
    "FaceResult", "InputShapeError", "InputSpec", "ModelLoadError", "NoFaceError", "Predictor",
    "PredictorInfo", "RecognizerOptions", "RecognizerTimings", "bundled_models",
    "load_predictor", "prepare_batch", "resolve_model",
    "FaceTracks", "IoUTracker", "StreamOptions", "StreamRecognizer", "StreamResult",
    "TimestampError", "TrackedFace",
]
