"""The models shipped inside the package (``emotion_edge/runtime/models/``), found by name.

Artifacts are named ``STEM + suffix`` from the format table (``default.int8.tflite``,
``default.keras`` …), each with its ``.json`` sidecar. A bundled model can be named as:

* its file name: ``default.fp16.tflite``;
* ``STEM``: the default format, TFLite int8 (``default`` -> ``default.int8.tflite``);
* ``STEM-FORMAT-PRECISION``, the format table's key: ``default-tflite-fp16``,
  ``default-onnx-int8``;
* ``STEM-FORMAT``: the first bundled precision of that format in table order
  (``default-keras`` -> ``default.keras``, ``default-onnx`` -> ``default.fp32.onnx``).

``None`` means ``default``.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from .errors import ModelLoadError
from .formats import FORMAT_NAMES, FORMATS, ArtifactFormat, find_format

DEFAULT_STEM = "default"
#: the format a bare stem resolves to: full-integer TFLite, the fastest on a device
DEFAULT_FORMAT: ArtifactFormat = find_format("tflite", "int8")
MODEL_SUFFIXES = tuple(sorted({f".{name}" for name in FORMAT_NAMES}))


def models_dir() -> Path:
    """The folder holding the bundled models (it may not exist in a bare checkout)."""
    return Path(str(files("emotion_edge.runtime") / "models"))


def _split_name(file_name: str) -> tuple[str, ArtifactFormat] | None:
    """``default.fp16.tflite`` -> ``("default", tflite-fp16 row)``; None for other files."""
    for row in sorted(FORMATS, key=lambda r: -len(r.suffix)):
        if file_name.endswith(row.suffix) and len(file_name) > len(row.suffix):
            return file_name[:-len(row.suffix)], row
    return None


def bundled_models() -> dict[str, list[Path]]:
    """Bundled artifacts by stem, each list in format-table order (only files with a sidecar)."""
    folder = models_dir()
    if not folder.is_dir():
        return {}
    order = {row.key: i for i, row in enumerate(FORMATS)}
    found: dict[str, list[tuple[int, Path]]] = {}
    for path in folder.iterdir():
        split = _split_name(path.name)
        if split and path.is_file() and Path(f"{path}.json").is_file():
            found.setdefault(split[0], []).append((order[split[1].key], path))
    return {stem: [p for _, p in sorted(items)] for stem, items in sorted(found.items())}


def _bundled_names() -> list[str]:
    return [p.name for paths in bundled_models().values() for p in paths]


def _candidates(name: str) -> list[str]:
    """File names that ``name`` may refer to, best first."""
    if _split_name(name):
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
        if (folder / candidate).is_file():
            return folder / candidate
    bundled = ", ".join(_bundled_names()) or "none"
    if name.lower().endswith(MODEL_SUFFIXES):
        raise ModelLoadError(f"{name}: no such model file, and no bundled model of that name "
                             f"(bundled: {bundled})")
    raise ModelLoadError(f"no bundled model {name!r} (bundled: {bundled}); pass the path of a "
                         ".tflite, .onnx or .keras file")
