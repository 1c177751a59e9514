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

``None`` means ``default``. Each stem is one model (its labels are its sidecar's: seven
FER2013 classes, or FER+'s eight); :func:`accuracy_labels` says which labels a sidecar's
accuracy was measured on, :func:`accuracy_by_labels` its figures by those labels.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path
from typing import Any

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
from .labels import FERPLUS_LABELS

DEFAULT_STEM = "default"
#: the format a bare stem resolves to: full-integer TFLite, the fastest on a device
DEFAULT_FORMAT: ArtifactFormat = find_format("tflite", "int8")
#: the label sets accuracy is measured on, as ``export.bundle`` records them (``labels_from``)
FER2013_SOURCE, FERPLUS_SOURCE = "FER2013", "FER+ majority"
#: the FER2013 splits a bundled model's sidecar records accuracy on, and their names
ACCURACY_SPLITS = {"publictest": "PublicTest", "privatetest": "PrivateTest"}
#: all bundled emotion models together, sidecars aside (issue 11: under 60 MB, so that the
#: wheel and the repository stay light)
SIZE_BUDGET = 60_000_000


def models_dir() -> Path:
    """The folder holding the bundled models (it may not exist in a bare checkout)."""
    return Path(str(files("emotion_edge.runtime") / "models"))


def bundled_models() -> dict[str, list[Path]]:
    """Bundled artifacts by stem, each list in registry order (only those with a sidecar)."""
    found: dict[str, list[Path]] = {}
    for path, _ in scan_artifacts(models_dir()):
        found.setdefault(split_artifact_name(path.name)[0], []).append(path)
    return found


def bundle_sizes(folder: Path | None = None) -> dict[str, int]:
    """Bytes of the bundled model files by stem, sidecars aside (what ``SIZE_BUDGET`` caps)."""
    sizes: dict[str, int] = {}
    folder = models_dir() if folder is None else folder
    for path in folder.iterdir() if folder.is_dir() else ():
        if path.is_file() and not path.name.endswith(".json"):
            stem = path.name.split(".", 1)[0]
            sizes[stem] = sizes.get(stem, 0) + path.stat().st_size
    return sizes


def _bundled_names() -> list[str]:
    return [p.name for paths in bundled_models().values() for p in paths]


def model_help() -> str:
    """The ``--model`` help of the commands that run a model: what it takes, and the bundled
    names on this install."""
    stems = sorted(bundled_models(), key=lambda stem: (stem != DEFAULT_STEM, stem))
    shown = ", ".join(stems) or "none installed"
    return (f"a .tflite/.onnx/.keras file or a bundled model's name ({shown}; NAME-FORMAT picks "
            f"a format, e.g. {stems[0] if stems else DEFAULT_STEM}-onnx-int8; without --model: "
            f"{DEFAULT_STEM}'s TFLite int8)")


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


def keras_source(name_or_path: str) -> Path:
    """A ``.keras`` file by its path, or a bundled model's by its name (``accurate`` or
    ``accurate.keras``): what ``export`` and ``train --init-from`` start from."""
    if not Path(name_or_path).suffix and not Path(name_or_path).exists() \
            and "/" not in name_or_path and os.sep not in name_or_path:
        name_or_path = f"{name_or_path}.keras"
    return resolve_model(name_or_path)


def accuracy_labels(sidecar: dict[str, Any]) -> str:
    """Which labels the sidecar's ``accuracy`` (its unprefixed figures; ``ferplus_*`` ones are
    always on the FER+ majority labels) was measured on: its ``labels_from``, else what the
    sidecar implies: ``FER+ majority`` for a model with FER+'s eight classes or an export
    made with ``--ferplus`` votes, ``FER2013`` otherwise."""
    accuracy = sidecar.get("accuracy")
    if isinstance(accuracy, dict) and isinstance(accuracy.get("labels_from"), str):
        return accuracy["labels_from"]
    export = sidecar.get("export")
    command = export.get("command") if isinstance(export, dict) else None
    if tuple(sidecar.get("labels") or ()) == FERPLUS_LABELS or (
            isinstance(command, str) and "--ferplus" in command.split()):
        return FERPLUS_SOURCE
    return FER2013_SOURCE


def accuracy_by_labels(sidecar: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The sidecar's recorded accuracy on each split by the labels it was measured on, e.g.
    ``{"FER2013": {"publictest": 0.66, "privatetest": 0.67}, "FER+ majority": {...}}``."""
    recorded = sidecar.get("accuracy")
    found: dict[str, dict[str, float]] = {}
    for key, value in (recorded.items() if isinstance(recorded, dict) else ()):
        ferplus = key.startswith("ferplus_")
        split = key.removeprefix("ferplus_")
        if split in ACCURACY_SPLITS and isinstance(value, (int, float)) \
                and not isinstance(value, bool):
            on = FERPLUS_SOURCE if ferplus else accuracy_labels(sidecar)
            found.setdefault(on, {})[split] = float(value)
    return found
