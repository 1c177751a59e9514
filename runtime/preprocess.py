"""The one place that turns face crops into model input, following the model's sidecar.

Every caller (recognizer, export parity checks, benchmarks, the app) prepares input with
``prepare_batch`` and the ``InputSpec`` read from the artifact's sidecar, so colour,
size and scaling are never repeated as constants elsewhere. ``predict_in_batches`` is
the one batched prediction path (``Predictor.predict_batch``, evaluation, export parity,
QAT, the trainer, the benchmarks): it prepares and predicts a chunk at a time, so
memory stays bounded however many images there are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .errors import ConfigError, InputShapeError, ModelLoadError
from .image import read_image, resize, to_gray
from .sidecar import InputSpec


def prepare_crop(crop: np.ndarray, spec: InputSpec, *, name: str = "crop") -> np.ndarray:
    """One uint8 crop, gray ``(H, W)`` or RGB ``(H, W, 3)``, as float32 ``(h, w, c)`` input."""
    image = read_image(crop, name=name)  # validates; drops alpha, converts other dtypes
    if spec.color == "gray":
        image = to_gray(image)
    image = resize(image, spec.width, spec.height)
    if image.ndim == 2 and spec.channels == 3:  # gray crop, or a gray model fed 3 channels
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and spec.channels == 1:
        raise ModelLoadError(f"input spec {spec} asks for 1 channel of {spec.color!r} colour")
    pixels = image.astype(np.float32) * np.float32(spec.scale) + np.float32(spec.offset)
    return pixels.reshape(spec.height, spec.width, spec.channels)


def prepare_batch(crops: Sequence[np.ndarray], spec: InputSpec) -> np.ndarray:
    """Face crops as one float32 batch ``(N, H, W, C)`` in the model's input spec."""
    batch = np.empty((len(crops), spec.height, spec.width, spec.channels), np.float32)
    for i, crop in enumerate(crops):
        batch[i] = prepare_crop(crop, spec, name=f"crop {i}")
    return batch


#: images per chunk of ``predict_in_batches`` unless the caller says otherwise
DEFAULT_BATCH = 256


def model_input(images: np.ndarray | Sequence[np.ndarray], spec: InputSpec) -> np.ndarray:
    """A float32 batch ``(N, H, W, C)`` in ``spec``: uint8 crops (an array or a list, any
    size) are prepared with ``prepare_batch``; a float array must already be model input."""
    if isinstance(images, np.ndarray) and images.dtype.kind == "f":
        if images.ndim != 4 or images.shape[1:] != spec.shape:
            raise InputShapeError(
                f"a float array is taken as prepared model input and must have shape "
                f"(N, {', '.join(map(str, spec.shape))}), got {images.shape}; pass uint8 "
                "crops to have them prepared")
        return np.ascontiguousarray(images, dtype=np.float32)
    return prepare_batch(list(images), spec)


def predict_in_batches(predict: Callable[[np.ndarray], np.ndarray],
                       images: np.ndarray | Sequence[np.ndarray], spec: InputSpec, *,
                       num_outputs: int, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
    """``predict``'s ``(N, num_outputs)`` float32 output for every image, ``batch_size``
    images at a time, each chunk made model input by ``model_input``."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch size must be a positive integer, got {batch_size!r}")
    out = np.empty((len(images), num_outputs), np.float32)
    for start in range(0, len(images), batch_size):
        chunk = model_input(images[start:start + batch_size], spec)
        out[start:start + len(chunk)] = np.asarray(predict(chunk))
    return out


def whole_image_as_face(image: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The whole image as one face crop, with its box ``(0, 0, width, height)``.

    For photos that are already face crops (like FER2013's); the image is resized to the
    model's input as it is, without cutting it square.
    """
    height, width = image.shape[:2]
    return image, (0.0, 0.0, float(width), float(height))
