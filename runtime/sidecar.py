"""The model's contract: the JSON sidecar written beside every artifact.

``model.tflite`` has ``model.tflite.json`` beside it (likewise ``.onnx`` and ``.keras``).
It holds the labels in order, the input spec, precision and format, hashes, and how the
artifact was made and measured. Preprocessing reads the input spec from here.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import ModelLoadError

SIDECAR_SUFFIX = ".json"


@dataclass(frozen=True)
class InputSpec:
    """How a face crop becomes model input: ``pixel * scale + offset`` on a resized crop."""

    height: int = 48
    width: int = 48
    channels: int = 1
    color: str = "gray"  # "gray" or "rgb"
    scale: float = 1.0 / 255.0
    offset: float = 0.0
    layout: str = "NHWC"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        if not isinstance(data, dict):
            raise ModelLoadError(f"input spec must be a JSON object, got {data!r}")
        types = {"height": int, "width": int, "channels": int, "scale": (int, float),
                 "offset": (int, float), "color": str, "layout": str}
        for key, kind in types.items():
            value = data.get(key)
            if key in data and (not isinstance(value, kind) or isinstance(value, bool)):
                raise ModelLoadError(f"input spec field {key!r} has the wrong type: {value!r}")
        spec = cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        if (spec.channels not in (1, 3) or spec.color not in ("gray", "rgb")
                or (spec.color == "gray") != (spec.channels == 1)):
            raise ModelLoadError(f"unsupported input spec {data!r}: channels must be 1 (gray) "
                                 "or 3 (rgb)")
        if spec.height < 8 or spec.width < 8:
            raise ModelLoadError(f"unsupported input size {spec.height}x{spec.width}")
        return spec

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
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
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
