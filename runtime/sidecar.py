"""The model's contract: the JSON sidecar written beside every artifact.

``model.tflite`` has ``model.tflite.json`` beside it (likewise every format: the sidecar
sits beside the artifact's main path, see ``formats``).
It holds the labels in order, the input spec, precision and format, hashes, and how the
artifact was made and measured. Preprocessing reads the input spec from here.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import ModelLoadError

SIDECAR_SUFFIX = ".json"
#: a sidecar is a few kilobytes; a file far larger is not one (and is not read into memory)
MAX_SIDECAR_BYTES = 16 << 20


@dataclass(frozen=True)
class InputSpec:
    """How a face crop becomes model input: ``pixel * scale + offset`` on a resized crop.

    The defaults are FER2013's (48x48 gray, pixels scaled to [0, 1]), the spec the model
    builders in ``train/`` declare; a sidecar must spell out every field.
    """

    height: int = 48
    width: int = 48
    channels: int = 1
    color: str = "gray"  # "gray" or "rgb"
    scale: float = 1.0 / 255.0
    offset: float = 0.0
    layout: str = "NHWC"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        """The spec a sidecar records; every field is required and type-checked."""
        if not isinstance(data, dict):
            raise ModelLoadError(f"input spec must be a JSON object, got {data!r}")
        types = {"height": int, "width": int, "channels": int, "color": str,
                 "scale": (int, float), "offset": (int, float), "layout": str}
        missing = [key for key in types if key not in data]
        if missing:
            raise ModelLoadError(
                f"input spec {data!r} lacks {', '.join(missing)}; a sidecar must record every "
                f"field ({', '.join(types)}), none is assumed")
        for key, kind in types.items():
            value = data[key]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ModelLoadError(f"input spec field {key!r} has the wrong type: {value!r}")
        spec = cls(**{k: data[k] for k in types})
        if (spec.channels not in (1, 3) or spec.color not in ("gray", "rgb")
                or (spec.color == "gray") != (spec.channels == 1)):
            raise ModelLoadError(f"unsupported input spec {data!r}: channels must be 1 (gray) "
                                 "or 3 (rgb)")
        if spec.height < 8 or spec.width < 8:
            raise ModelLoadError(f"unsupported input size {spec.height}x{spec.width}")
        if spec.layout != "NHWC":
            raise ModelLoadError(f"unsupported input layout {spec.layout!r}; expected NHWC")
        if not (math.isfinite(spec.scale) and math.isfinite(spec.offset)) or spec.scale == 0:
            raise ModelLoadError(f"input spec scale/offset must be finite numbers and scale "
                                 f"non-zero, got {spec.scale!r}, {spec.offset!r}")
        return spec

    @property
    def shape(self) -> tuple[int, int, int]:
        """One example's shape, ``(H, W, C)``."""
        return (self.height, self.width, self.channels)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sidecar_path(artifact: str | os.PathLike) -> Path:
    return Path(f"{artifact}{SIDECAR_SUFFIX}")


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def read_sidecar(artifact: str | os.PathLike) -> dict[str, Any]:
    path = sidecar_path(artifact)
    if not path.is_file():
        raise ModelLoadError(f"{artifact}: its sidecar {path.name} is missing; every model "
                             "needs one (labels and input spec)")
    if path.stat().st_size > MAX_SIDECAR_BYTES:
        raise ModelLoadError(f"{path}: {path.stat().st_size:,} bytes is too large for a "
                             f"sidecar (at most {MAX_SIDECAR_BYTES:,}); it is not one")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad UTF-8 or JSON
        raise ModelLoadError(f"{path}: not a readable JSON sidecar ({exc})") from None
    if not isinstance(data, dict) or not data.get("labels") or "input" not in data:
        raise ModelLoadError(f"{path}: sidecar lacks 'labels' or 'input'")
    return data


def write_sidecar(artifact: str | os.PathLike, data: dict[str, Any]) -> Path:
    path = sidecar_path(artifact)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
