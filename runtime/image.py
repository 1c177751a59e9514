"""Reading images of any kind into uint8 arrays, with errors that name the file.

Accepts a path, raw bytes, a PIL image or a NumPy array (gray, RGB or RGBA; uint8,
uint16 or float) and returns ``uint8`` arrays of shape ``(H, W, 3)`` (RGB) or ``(H, W)``
(gray). Only NumPy and Pillow are used, so this runs on a device.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Union

import numpy as np

from .errors import BadImageError

ImageLike = Union[str, os.PathLike, bytes, np.ndarray, "PIL.Image.Image"]  # noqa: F821

#: File name endings read as images when a folder is given (predict, evaluate, bench).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                            ".pgm", ".ppm"})

#: Images with more pixels than this are refused outright (decompression bombs).
MAX_PIXELS = 20_000 * 20_000


def _pil():
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    return Image


def _array_to_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise BadImageError(f"{name}: image holds NaN or infinite values")
        top = 1.0 if arr.size == 0 or float(arr.max()) <= 1.0 else 255.0
        return np.clip(np.rint(arr * (255.0 / top)), 0, 255).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        if arr.size and int(arr.max()) > 255:  # 16-bit and wider: keep the top 8 bits
            shift = max(int(arr.max()).bit_length() - 8, 0)
            return (arr.astype(np.uint32) >> shift).astype(np.uint8)
        return np.clip(arr, 0, 255).astype(np.uint8)
    raise BadImageError(f"{name}: unsupported array dtype {arr.dtype}")


def _normalise_array(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise BadImageError(
            f"{name}: expected an image array of shape (H, W), (H, W, 1), (H, W, 3) or "
            f"(H, W, 4), got {arr.shape}"
        )
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise BadImageError(f"{name}: image is too small ({arr.shape[1]}x{arr.shape[0]} pixels)")
    arr = _array_to_uint8(np.asarray(arr), name)
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    return np.ascontiguousarray(arr)


def _from_pil(img, name: str) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.int64)
        arr = _array_to_uint8(np.clip(arr, 0, 65535).astype(np.uint16), name)
    elif mode == "F":
        arr = _array_to_uint8(np.asarray(img, dtype=np.float32), name)
    elif mode in ("L", "RGB"):
        arr = np.asarray(img)
    elif mode in ("LA", "1"):
        arr = np.asarray(img.convert("L"))
    else:  # P, RGBA, CMYK, YCbCr, ...
        arr = np.asarray(img.convert("RGB"))
    return _normalise_array(arr, name)


def _upright(img):
    """Apply the EXIF orientation, so phone photos are not read sideways."""
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(img)
    except (OSError, ValueError, SyntaxError, KeyError, TypeError):
        return img  # a broken EXIF block: keep the pixels as stored


def read_image(image: ImageLike, *, name: str | None = None) -> np.ndarray:
    """Return ``image`` as a uint8 array, ``(H, W)`` gray or ``(H, W, 3)`` RGB.

    Raises BadImageError naming the file for anything that is not a readable image.
    """
    Image = _pil()
    if isinstance(image, np.ndarray):
        return _normalise_array(image, name or "array")
    if isinstance(image, Image.Image):
        return _from_pil(image, name or "PIL image")
    if isinstance(image, (bytes, bytearray, memoryview)):
        label = name or "image bytes"
        source = io.BytesIO(bytes(image))
    elif isinstance(image, (str, os.PathLike)):
        path = Path(image)
        label = name or str(path)
        if not path.exists():
            raise BadImageError(f"{label}: no such file")
        if path.is_dir():
            raise BadImageError(f"{label}: is a folder, not an image")
        source = path
    else:
        raise BadImageError(
            f"{name or 'image'}: expected a path, bytes, a PIL image or a NumPy array, "
            f"got {type(image).__name__}"
        )
    try:
        with Image.open(source) as img:
            img.load()
            return _from_pil(_upright(img), label)
    except BadImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise BadImageError(f"{label}: image is too large to decode safely ({exc})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadImageError(f"{label}: not a readable image ({exc})") from None


def to_gray(image: np.ndarray) -> np.ndarray:
    """Convert a uint8 RGB image to gray with ITU-R 601 luma weights (as PIL's ``L``)."""
    if image.ndim == 2:
        return image
    rgb = image[..., :3].astype(np.float32)
    gray = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    return np.clip(np.rint(gray), 0, 255).astype(np.uint8)


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize a uint8 image with Pillow's area-aware bilinear filter."""
    Image = _pil()
    if image.shape[1] == width and image.shape[0] == height:
        return image
    pil = Image.fromarray(image)
    return np.asarray(pil.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0))
