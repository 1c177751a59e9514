"""The models shipped inside the package (``emotion_edge/runtime/models/``), found by name.

Artifacts are named ``STEM + suffix`` from the format registry (``default.int8.tflite``,
``default.keras``, ``default.fp32.openvino.xml`` …), each with its ``.json`` sidecar. A
bundled model can be named as:

* its file name: ``default.fp16.tflite``;
* ``STEM``: the default format, TFLite int8 (``default`` -> ``default.int8.tflite``);
* ``STEM-FORMAT-PRECISION``, the registry's key: ``default-tflite-fp16``,
  ``default-onnx-int8``;
* ``STEM-FORMAT``: the first bundled precision of that format in registry order
  (``default-keras`` -> ``default.keras``, ``default-onnx`` -> ``default.fp32.onnx``).

``None`` means ``default``.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from .errors import ModelLoadError
from .formats import (
    FORMAT_NAMES,
    FORMATS,
    MODEL_EXTENSIONS,
    ArtifactFormat,
    find_format,
    scan_artifacts,
    split_artifact_name,
)

DEFAULT_STEM = "default"
#: the format a bare stem resolves to: full-integer TFLite, the fastest on a device
DEFAULT_FORMAT: ArtifactFormat = find_format("tflite", "int8")


def models_dir() -> Path:
    """The folder holding the bundled models (it may not exist in a bare checkout)."""
    return Path(str(files("emotion_edge.runtime") / "models"))


def bundled_models() -> dict[str, list[Path]]:
    """Bundled artifacts by stem, each list in registry order (only those with a sidecar)."""
    found: dict[str, list[Path]] = {}
    for path, _ in scan_artifacts(models_dir()):
        found.setdefault(split_artifact_name(path.name)[0], []).append(path)
    return found


def _bundled_names() -> list[str]:
    return [p.name for paths in bundled_models().values() for p in paths]


def _candidates(name: str) -> list[str]:
    """File names that ``name`` may refer to, best first."""
    if split_artifact_name(name):
        return [name]
    for row in FORMATS:
        if name.endswith(f"-{row.key}"):
            return [name[:-len(row.key) - 1] + row.suffix]
    for fmt in FORMAT_NAMES:
        if name.endswith(f"-{fmt}"):
            stem = name[:-len(fmt) - 1]
            return [stem + row.suffix for row in FORMATS if row.format == fmt]
    return [name + DEFAULT_FORMAT.suffix]


def resolve_model(name_or_path: str | os.PathLike | None) -> Path:
    """The artifact path for a path or a bundled model's name (``None``: the default model)."""
    if isinstance(name_or_path, os.PathLike):
        return Path(name_or_path)
    name = DEFAULT_STEM if name_or_path is None else str(name_or_path)
    as_path = Path(name)
    if as_path.is_file() or "/" in name or os.sep in name:
        return as_path
    folder = models_dir()
    for candidate in _candidates(name):
        if (folder / candidate).exists():
            return folder / candidate
    bundled = ", ".join(_bundled_names()) or "none"
    if name.lower().endswith(MODEL_EXTENSIONS):
        raise ModelLoadError(f"{name}: no such model file, and no bundled model of that name "
                             f"(bundled: {bundled})")
    raise ModelLoadError(f"no bundled model {name!r} (bundled: {bundled}); pass the path of a "
                         f"model file ({', '.join(MODEL_EXTENSIONS)})")
