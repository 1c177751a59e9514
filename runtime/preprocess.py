"""The one place that turns face crops into model input, following the model's sidecar.

Every caller (recognizer, export parity checks, benchmarks, the app) prepares input with
``prepare_batch`` and the ``InputSpec`` read from the artifact's sidecar, so colour,
size and scaling are never repeated as constants elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import ModelLoadError
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


def whole_image_as_face(image: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The whole image as one face crop, with its box ``(0, 0, width, height)``.

    For photos that are already face crops (like FER2013's); the image is resized to the
    model's input as it is, without cutting it square.
    """
    height, width = image.shape[:2]
    return image, (0.0, 0.0, float(width), float(height))
