"""Reading images of any kind into uint8 arrays, with errors that name the file.

Accepts a path, raw bytes, a PIL image or a NumPy array (gray, gray + alpha, RGB or RGBA;
unsigned or signed integers, floats or booleans) and returns ``uint8`` arrays of shape
``(H, W, 3)`` (RGB) or ``(H, W)`` (gray). Arrays are taken as RGB (OpenCV's BGR must be
converted first). Only NumPy and Pillow are used, so this runs on a device.

Anything that is not a readable image raises ``BadImageError``: only regular files are
opened (a named pipe would block forever), the pixel count is checked from the header
before anything is decoded, and whatever a decoder raises on a malformed file is
reported, never passed on.
"""

from __future__ import annotations

import io
import os
import re
import stat
from pathlib import Path
from typing import IO, Union

import numpy as np

from .errors import BadImageError

ImageLike = Union[str, os.PathLike, bytes, np.ndarray, "PIL.Image.Image"]  # noqa: F821

#: File name endings read as images when a folder is given (predict, evaluate, bench).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                            ".pgm", ".ppm"})

#: Image files (and PIL images) with more pixels than this (50 megapixels) are refused from
#: their header, before decoding: reading one takes Pillow's 4 bytes and the array's 3 bytes
#: per pixel (350 MB), which a 1 GB device can afford. Arrays are already in memory and are
#: not limited.
MAX_PIXELS = 50_000_000

#: Formats Pillow may open: all it knows except EPS, which it renders by running
#: Ghostscript on the file (no external program runs on untrusted input).
_REFUSED_FORMATS = frozenset({"EPS"})


def _pil():
    from PIL import Image

    return Image


def _check_pixels(width: int, height: int, name: str) -> None:
    if width * height > MAX_PIXELS:
        raise BadImageError(f"{name}: image is too large ({width}x{height} pixels; at most "
                            f"{MAX_PIXELS // 1_000_000} megapixels are read)")


def is_image_file(path: Path) -> bool:
    """True for a regular file (not a pipe, device or folder) with an image suffix."""
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _integers_to_uint8(arr: np.ndarray) -> np.ndarray:
    """0-255 as is; wider values keep their top 8 bits (16-bit images); negatives are 0."""
    if arr.dtype.kind == "i":
        arr = np.maximum(arr, 0)
    top = int(arr.max()) if arr.size else 0
    if top > 255:
        return (arr >> (top.bit_length() - 8)).astype(np.uint8)
    return arr.astype(np.uint8)


def _array_to_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    kind = arr.dtype.kind
    if arr.dtype == np.uint8:
        return arr
    if kind == "b":
        return arr.astype(np.uint8) * 255
    if kind == "f":
        if not np.isfinite(arr).all():
            raise BadImageError(f"{name}: image holds NaN or infinite values")
        top = 1.0 if arr.size == 0 or float(arr.max()) <= 1.0 else 255.0
        return np.clip(np.rint(arr * (255.0 / top)), 0, 255).astype(np.uint8)
    if kind in "iu":
        return _integers_to_uint8(arr)
    raise BadImageError(f"{name}: unsupported array dtype {arr.dtype}; expected integers, "
                        "floats or booleans")


def _normalise_array(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] in (1, 2):  # gray, or gray + alpha
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise BadImageError(
            f"{name}: expected an image array of shape (H, W), (H, W, 1), (H, W, 2), "
            f"(H, W, 3) or (H, W, 4), got {arr.shape}"
        )
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise BadImageError(f"{name}: image is too small ({arr.shape[1]}x{arr.shape[0]} pixels)")
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    return np.ascontiguousarray(_array_to_uint8(arr, name))


#: Pillow images are turned into arrays this many rows at a time: converting a whole image
#: at once makes two more full-size copies of it (Pillow's byte export, then the join).
_STRIP_ROWS = 512


def _pixels(img, mode: str | None = None) -> np.ndarray:
    """``np.asarray(img.convert(mode))``, built strip by strip to bound peak memory."""
    width, height = img.size
    out = None
    for top in range(0, height, _STRIP_ROWS):
        strip = img.crop((0, top, width, min(top + _STRIP_ROWS, height)))
        rows = np.asarray(strip.convert(mode) if mode else strip)
        if out is None:
            out = np.empty((height, *rows.shape[1:]), rows.dtype)
        out[top:top + len(rows)] = rows
    return np.asarray(img) if out is None else out


def _from_pil(img, name: str) -> np.ndarray:
    _check_pixels(*img.size, name)
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = _pixels(img).astype(np.int64)
    elif mode in ("L", "LA", "1", "RGB", "F"):  # LA keeps the gray channel
        arr = _pixels(img)
    elif mode == "La":  # premultiplied by alpha: undo that first
        arr = _pixels(img, "LA")
    else:  # P, PA, RGBA, RGBa, CMYK, YCbCr, ...
        arr = _pixels(img, "RGB")
    return _normalise_array(arr, name)


def _upright(img):
    """Apply the EXIF orientation, so phone photos are not read sideways."""
    from PIL import ImageOps

    try:
        if img.getexif().get(0x0112, 1) in (0, 1):  # upright already: no copy
            return img
        return ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001  a broken EXIF block: keep the pixels as stored
        return img


def _open_regular_file(path: Path, label: str) -> IO[bytes]:
    """Open ``path`` for reading, refusing anything but a regular file.

    ``O_NONBLOCK`` lets the open of a named pipe return at once (instead of waiting for a
    writer) so that ``fstat`` can refuse it; it changes nothing for regular files.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise BadImageError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise BadImageError(f"{label}: is a folder, not an image") from None
    except PermissionError:
        raise BadImageError(f"{label}: permission denied") from None
    except (OSError, ValueError) as exc:
        raise BadImageError(f"{label}: cannot open ({getattr(exc, 'strerror', None) or exc})"
                            ) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a pipe, device or socket)"
        raise BadImageError(f"{label}: is {kind}, not an image")
    return os.fdopen(fd, "rb")


def _as_path(image: str | os.PathLike, name: str | None) -> Path:
    try:
        return Path(os.fsdecode(os.fspath(image)))
    except (TypeError, ValueError) as exc:
        raise BadImageError(f"{name or 'image'}: not a usable path ({exc})") from None


def _decode(source: IO[bytes], label: str) -> np.ndarray:
    Image = _pil()
    Image.init()
    formats = [f for f in Image.OPEN if f not in _REFUSED_FORMATS]
    try:
        with Image.open(source, formats=formats) as img:
            _check_pixels(*img.size, label)
            img.load()
            return _from_pil(_upright(img), label)
    except BadImageError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own limit, above ours
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found[1]) / 1e6:.0f} megapixels; " if found else ""
        raise BadImageError(f"{label}: image is too large ({size}at most "
                            f"{MAX_PIXELS // 1_000_000} megapixels are read)") from None
    except Image.UnidentifiedImageError:
        raise BadImageError(f"{label}: not a readable image (unknown or unsupported format)"
                            ) from None
    except MemoryError:
        raise BadImageError(f"{label}: not enough memory to decode the image") from None
    except Exception as exc:  # noqa: BLE001  decoders raise many types for a malformed file
        raise BadImageError(f"{label}: not a readable image ({_describe(exc)})") from None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def read_image(image: ImageLike, *, name: str | None = None) -> np.ndarray:
    """Return ``image`` as a uint8 array, ``(H, W)`` gray or ``(H, W, 3)`` RGB.

    Arrays are taken as RGB(A). Raises BadImageError naming the file for anything that is
    not a readable image, and for images over ``MAX_PIXELS``.
    """
    Image = _pil()
    if isinstance(image, np.ndarray):
        return _normalise_array(image, name or "array")
    if isinstance(image, Image.Image):
        label = name or "PIL image"
        try:
            return _from_pil(image, label)
        except BadImageError:
            raise
        except Exception as exc:  # noqa: BLE001  closed, truncated or odd-mode images
            raise BadImageError(f"{label}: not a usable image ({_describe(exc)})") from None
    if isinstance(image, (bytes, bytearray, memoryview)):
        return _decode(io.BytesIO(bytes(image)), name or "image bytes")
    if isinstance(image, (str, os.PathLike)):
        path = _as_path(image, name)
        label = name or str(path)
        with _open_regular_file(path, label) as source:
            return _decode(source, label)
    raise BadImageError(
        f"{name or 'image'}: expected a path, bytes, a PIL image or a NumPy array, "
        f"got {type(image).__name__}"
    )


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
