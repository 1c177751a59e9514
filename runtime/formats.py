"""The format registry: one row per format and precision holds what every stage needs.

A row says how the artifact is named and laid out (one file, a pair of files such as
OpenVINO's ``.xml`` + ``.bin``, or a folder), which engine runs it (a class in
``runtime/engines/``, imported only when a model is loaded), which exporter makes it (an
import string resolved by ``export/`` only when exporting, so the runtime never imports
a converter), the parity rule its export must pass and whether it needs calibration
images. Export, loading, evaluation, the benchmarks, ``info --formats`` and the app's
backend menu all read this registry, so a new format is new rows here, one engine class
and one exporter module.

Every artifact's sidecar sits beside its main path: ``default.int8.tflite.json``,
``default.fp32.openvino.xml.json``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BackendUnavailableError, ConfigError, ModelLoadError
from .sidecar import read_sidecar, sha256_of, sidecar_path


def import_object(spec: str) -> Any:
    """The object named by ``"package.module:attribute"``, imported now."""
    module, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Backend:
    """An inference engine: its import name, the extra installing it, and its engine class."""

    name: str       # "litert", "onnxruntime", "keras", "openvino"
    module: str     # the engine's import name
    extra: str      # the pip extra that installs it
    title: str      # "LiteRT"
    engine_class: str = ""  # "emotion_edge.runtime.engines.tflite:LiteRTEngine"
    also_reads: tuple[str, ...] = ()  # other formats it runs when asked (OpenVINO: "onnx")

    def available(self) -> bool:
        try:
            return importlib.util.find_spec(self.module) is not None
        except (ImportError, ValueError):
            return False

    def require(self) -> None:
        if not self.available():
            raise BackendUnavailableError(
                f"the {self.title} backend needs {self.module!r}, which is not installed; "
                f"install it with: pip install 'emotion-edge[{self.extra}]'")

    @property
    def install_hint(self) -> str:
        return f"pip install 'emotion-edge[{self.extra}]'"


_ENGINES = "emotion_edge.runtime.engines"
BACKENDS: dict[str, Backend] = {
    b.name: b for b in (
        Backend("litert", "ai_edge_litert", "tflite", "LiteRT", f"{_ENGINES}.tflite:LiteRTEngine"),
        Backend("onnxruntime", "onnxruntime", "onnx", "ONNX Runtime",
                f"{_ENGINES}.onnx:OnnxEngine"),
        Backend("keras", "keras", "keras", "Keras/TensorFlow", f"{_ENGINES}.keras:KerasEngine"),
        Backend("openvino", "openvino", "openvino", "OpenVINO",
                f"{_ENGINES}.openvino:OpenVINOEngine", also_reads=("onnx",)),
    )
}


def backend_help() -> str:
    """The ``--backend`` help of the commands that run a model."""
    extra = "; ".join(f"{name} also runs {', '.join(f'.{fmt}' for fmt in b.also_reads)} files"
                      for name, b in BACKENDS.items() if b.also_reads)
    return f"engine (default: the model format's own{'; ' + extra if extra else ''})"


@dataclass(frozen=True)
class ParityRule:
    """How far an export may stray from its source: ``max_abs_diff`` of the probabilities
    at most ``limit``, or ``top1_agreement`` at least ``limit``."""

    metric: str
    limit: float

    def passes(self, value: float) -> bool:
        if self.metric == "max_abs_diff":
            return value <= self.limit
        return value >= self.limit

    def describe(self) -> str:
        if self.metric == "max_abs_diff":
            return f"max abs diff <= {self.limit:g}"
        return f"top-1 agreement >= {self.limit:.0%}"


FP32_PARITY = ParityRule("max_abs_diff", 1e-4)
FP16_PARITY = ParityRule("max_abs_diff", 1e-2)
INT8_PARITY = ParityRule("top1_agreement", 0.98)


@dataclass(frozen=True)
class ArtifactFormat:
    """One registry row: a format at one precision."""

    format: str      # "tflite", "onnx", "keras", "openvino"
    precision: str   # "fp32", "fp16", "dynamic", "int8", "qat"
    suffix: str      # the main file's name ending, e.g. ".int8.tflite"
    backend: str     # key of BACKENDS
    title: str       # shown in tables and the app, e.g. "TFLite int8"
    description: str
    made_by: str = ""                 # how the exporter makes it; recorded in the sidecar
    exporter: str | None = None       # "emotion_edge.export.MODULE:FUNCTION"; None: a source
    parity: ParityRule | None = None  # the check its export must pass
    calibrated: bool = False          # the export needs calibration images
    layout: str = "file"              # "file", "pair" (companions beside it) or "folder"
    companions: tuple[str, ...] = ()  # pair: extensions of the files beside the main one
    magic: tuple[int, bytes] | None = None  # (offset, bytes) every valid main file has

    @property
    def key(self) -> str:
        return f"{self.format}-{self.precision}"

    @property
    def engine(self) -> Backend:
        return BACKENDS[self.backend]

    @property
    def backends(self) -> tuple[str, ...]:
        """Backends that run it: its own first, then any that also read its format."""
        return (self.backend, *(name for name, b in BACKENDS.items()
                                if self.format in b.also_reads and name != self.backend))

    @property
    def extension(self) -> str:
        """The main file's extension (``.tflite``, ``.xml``), for plainly named files."""
        return "." + self.suffix.rsplit(".", 1)[-1]

    def members(self, path: str | Path) -> list[Path]:
        """The files making up the artifact at ``path`` (main file first)."""
        path = Path(path)
        if self.layout == "folder":
            return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
        return [path, *(path.with_suffix(ext) for ext in self.companions)]

    def missing(self, path: str | Path) -> list[Path]:
        """Files of the artifact at ``path`` that are absent (or the folder itself)."""
        path = Path(path)
        if self.layout == "folder":
            return [] if path.is_dir() else [path]
        return [p for p in self.members(path) if not p.is_file()]

    def size_bytes(self, path: str | Path) -> int:
        return sum(p.stat().st_size for p in self.members(path))

    def sha256(self, path: str | Path) -> str:
        """The main file's sha256; for several files, the sha256 of their names and hashes."""
        members = self.members(path)
        if self.layout == "file":
            return sha256_of(members[0])
        root = Path(path) if self.layout == "folder" else Path(path).parent
        listing = "".join(f"{sha256_of(p)}  {p.relative_to(root).as_posix()}\n"
                          for p in members)
        return hashlib.sha256(listing.encode()).hexdigest()

    def check_magic(self, path: str | Path) -> None:
        """Raise ``ModelLoadError`` unless the main file starts as this format's files do."""
        if self.magic is None or self.layout == "folder":
            return
        offset, expected = self.magic
        with open(path, "rb") as fh:
            head = fh.read(offset + len(expected))
        if head[offset:] != expected:
            raise ModelLoadError(f"{path}: not a {self.title} model (its first bytes are "
                                 f"{head[:16]!r}, expected {expected!r} at byte {offset})")


_TFL3, _ZIP, _XML = (4, b"TFL3"), (0, b"PK\x03\x04"), (0, b"<?xml")
_QDQ = ("onnxruntime quantize_static after quant_pre_process: QDQ, per-channel QInt8 "
        "weights, QUInt8 activations, MinMax calibration")
_EXPORT = "emotion_edge.export"

FORMATS: tuple[ArtifactFormat, ...] = (
    ArtifactFormat("keras", "fp32", ".keras", "keras", "Keras fp32",
                   "the trained Keras 3 model", magic=_ZIP),
    ArtifactFormat("tflite", "fp32", ".fp32.tflite", "litert", "TFLite fp32", "float32 TFLite",
                   "TFLiteConverter.from_keras_model, float32", f"{_EXPORT}.tflite:export_tflite",
                   FP32_PARITY, magic=_TFL3),
    ArtifactFormat("tflite", "fp16", ".fp16.tflite", "litert", "TFLite fp16",
                   "float16 weights, float32 compute",
                   "TFLiteConverter.from_keras_model, float16 weights",
                   f"{_EXPORT}.tflite:export_tflite", FP16_PARITY, magic=_TFL3),
    ArtifactFormat("tflite", "dynamic", ".dynamic.tflite", "litert", "TFLite dynamic",
                   "dynamic-range: int8 weights, float activations",
                   "TFLiteConverter.from_keras_model, dynamic-range int8 weights",
                   f"{_EXPORT}.tflite:export_tflite", INT8_PARITY, magic=_TFL3),
    ArtifactFormat("tflite", "int8", ".int8.tflite", "litert", "TFLite int8",
                   "full integer, calibrated post-training quantisation",
                   "TFLiteConverter.from_keras_model, full-integer post-training quantisation "
                   "calibrated on the representative set",
                   f"{_EXPORT}.tflite:export_tflite", INT8_PARITY, calibrated=True, magic=_TFL3),
    ArtifactFormat("tflite", "qat", ".qat.tflite", "litert", "TFLite QAT int8",
                   "full integer after quantisation-aware fine-tuning",
                   "tfmot quantize_model on a tf_keras rebuild, QAT fine-tuning, then "
                   "TFLiteConverter full-integer with the ranges learned in training",
                   f"{_EXPORT}.qat:export_qat", INT8_PARITY, calibrated=True, magic=_TFL3),
    ArtifactFormat("onnx", "fp32", ".fp32.onnx", "onnxruntime", "ONNX fp32",
                   "float32 ONNX (tf2onnx, opset 17)",
                   "tf2onnx.convert.from_keras, opset 17, dynamic batch",
                   f"{_EXPORT}.onnx_export:export_onnx", FP32_PARITY),
    ArtifactFormat("onnx", "int8", ".int8.onnx", "onnxruntime", "ONNX int8",
                   "static QDQ quantisation, per-channel", _QDQ,
                   f"{_EXPORT}.onnx_export:export_onnx", INT8_PARITY, calibrated=True),
    ArtifactFormat("openvino", "fp32", ".fp32.openvino.xml", "openvino", "OpenVINO fp32",
                   "OpenVINO IR (.xml + .bin), float32",
                   "openvino.convert_model of the float32 ONNX model (tf2onnx, opset 17), "
                   "saved without fp16 compression",
                   f"{_EXPORT}.openvino_export:export_openvino", FP32_PARITY,
                   layout="pair", companions=(".bin",), magic=_XML),
    ArtifactFormat("openvino", "int8", ".int8.openvino.xml", "openvino", "OpenVINO int8",
                   "OpenVINO IR (.xml + .bin) of the int8 QDQ ONNX model",
                   "openvino.convert_model of the int8 QDQ ONNX model (" + _QDQ + ")",
                   f"{_EXPORT}.openvino_export:export_openvino", INT8_PARITY, calibrated=True,
                   layout="pair", companions=(".bin",), magic=_XML),
)

FORMAT_NAMES = tuple(sorted({f.format for f in FORMATS}))
#: rows an export can make (the others, Keras, are sources)
EXPORTABLE: tuple[ArtifactFormat, ...] = tuple(f for f in FORMATS if f.exporter)
#: the file extensions of model artifacts
MODEL_EXTENSIONS = tuple(sorted({f.extension for f in FORMATS}))
_BY_SUFFIX_LENGTH = sorted(FORMATS, key=lambda r: -len(r.suffix))


def precisions(fmt: str) -> tuple[str, ...]:
    return tuple(f.precision for f in FORMATS if f.format == fmt)


def find_format(fmt: str, precision: str) -> ArtifactFormat:
    """The row for ``fmt``/``precision``; the error lists the valid choices."""
    if fmt not in FORMAT_NAMES:
        raise ConfigError(f"unknown format {fmt!r}; valid formats: {', '.join(FORMAT_NAMES)}")
    for row in FORMATS:
        if row.format == fmt and row.precision == precision:
            return row
    raise ConfigError(f"unknown precision {precision!r} for {fmt}; valid precisions: "
                      f"{', '.join(precisions(fmt))}")


def split_artifact_name(name: str) -> tuple[str, ArtifactFormat] | None:
    """``default.fp16.tflite`` -> ``("default", tflite-fp16 row)``; None for other names
    (including a pair's companion files)."""
    for row in _BY_SUFFIX_LENGTH:
        if name.endswith(row.suffix) and len(name) > len(row.suffix):
            return name[:-len(row.suffix)], row
    return None


def artifact_name(stem: str, row: ArtifactFormat) -> str:
    return f"{stem}{row.suffix}"


def format_for_path(path: str | Path, precision: str | None = None) -> ArtifactFormat:
    """The row matching a file name (``x.int8.tflite``); a plainly named ``x.tflite`` needs
    ``precision`` (from its sidecar) or is taken as the format's first precision."""
    name = Path(path).name.lower()
    for row in _BY_SUFFIX_LENGTH:
        if name.endswith(row.suffix) and (precision is None or row.precision == precision):
            return row
    rows = [r for r in FORMATS if r.extension == Path(name).suffix]
    if rows:
        return next((r for r in rows if r.precision == precision), rows[0])
    raise ModelLoadError(f"{path}: not a model file; expected one of "
                         f"{', '.join(MODEL_EXTENSIONS)}")


def format_of(path: str | Path, sidecar: dict[str, Any]) -> ArtifactFormat:
    """The row of the artifact at ``path`` with sidecar ``sidecar``: by its name, a plain
    ``x.tflite`` taking the sidecar's precision; a sidecar naming another format or
    precision is an error."""
    path = Path(path)
    row = format_for_path(path)
    precision = sidecar.get("precision")
    if not path.name.lower().endswith(row.suffix) and precision:
        row = format_for_path(path, precision)
    if sidecar.get("format", row.format) != row.format or precision not in (None, row.precision):
        raise ModelLoadError(
            f"{path}: the sidecar says {sidecar.get('format')} {precision} but the file name "
            f"says {row.format} {row.precision}; re-export the model or fix its sidecar")
    return row


def read_artifact(path: str | Path) -> tuple[ArtifactFormat, dict[str, Any]]:
    """The registry row and sidecar of the artifact at ``path``. Its name is checked first,
    so a file of no registered format is "not a model file" rather than one without a
    sidecar."""
    format_for_path(path)
    sidecar = read_sidecar(path)
    return format_of(path, sidecar), sidecar


def own_backend(fmt: str) -> str | None:
    """The backend of format ``fmt``'s own rows (``onnx`` -> ``onnxruntime``)."""
    return next((row.backend for row in FORMATS if row.format == fmt), None)


def backend_title(row: ArtifactFormat, backend: str) -> str:
    """How an artifact on ``backend`` is named: "ONNX int8", or "ONNX int8 on OpenVINO" on a
    backend other than its format's own."""
    return row.title if backend == row.backend else f"{row.title} on {BACKENDS[backend].title}"


def stem_of(path: Path, row: ArtifactFormat) -> str:
    """The model an artifact belongs to: ``default`` for ``default.int8.tflite``, the name
    without its extension for a plainly named file."""
    split = split_artifact_name(path.name)
    return split[0] if split else path.name[:-len(row.extension)]


def backend_entries(artifacts: list[tuple[Path, ArtifactFormat]]
                    ) -> list[tuple[Path, ArtifactFormat, str]]:
    """Each artifact on every backend that runs it: its own, then any other that reads its
    format (OpenVINO reads ONNX), unless the same model has a file of that backend's own
    format at the same precision (an OpenVINO IR beside the ONNX file stands for OpenVINO)."""
    own = {(stem_of(path, row), row.precision, row.backend) for path, row in artifacts}
    return [(path, row, backend) for path, row in artifacts for backend in row.backends
            if backend == row.backend
            or (stem_of(path, row), row.precision, backend) not in own]


def scan_artifacts(folder: str | Path) -> list[tuple[Path, ArtifactFormat]]:
    """Complete artifacts with a sidecar in ``folder``, sorted by stem then registry order."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    order = {row.key: i for i, row in enumerate(FORMATS)}
    found = []
    for path in folder.iterdir():
        split = split_artifact_name(path.name)
        if split and not split[1].missing(path) and sidecar_path(path).is_file():
            found.append((split[0], order[split[1].key], path, split[1]))
    return [(path, row) for _, _, path, row in sorted(found)]
