"""The format table: every artifact format and precision, its file suffix and backend.

Export, loading, the benchmarks and the app's backend menu all read this one table,
so a new format is one row here.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from .errors import BackendUnavailableError, ConfigError, ModelLoadError


@dataclass(frozen=True)
class Backend:
    name: str       # "litert", "onnxruntime", "keras"
    module: str     # the engine's import name
    extra: str      # the pip extra that installs it
    title: str      # "LiteRT"

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


BACKENDS: dict[str, Backend] = {
    b.name: b for b in (
        Backend("litert", "ai_edge_litert", "tflite", "LiteRT"),
        Backend("onnxruntime", "onnxruntime", "onnx", "ONNX Runtime"),
        Backend("keras", "keras", "keras", "Keras/TensorFlow"),
    )
}


@dataclass(frozen=True)
class ArtifactFormat:
    format: str      # "tflite", "onnx", "keras"
    precision: str   # "fp32", "fp16", "dynamic", "int8", "qat"
    suffix: str      # file name ending, e.g. ".int8.tflite"
    backend: str     # key of BACKENDS
    title: str       # shown in tables and the app, e.g. "TFLite int8"
    description: str

    @property
    def key(self) -> str:
        return f"{self.format}-{self.precision}"

    @property
    def engine(self) -> Backend:
        return BACKENDS[self.backend]


FORMATS: tuple[ArtifactFormat, ...] = (
    ArtifactFormat("keras", "fp32", ".keras", "keras", "Keras fp32",
                   "the trained Keras 3 model"),
    ArtifactFormat("tflite", "fp32", ".fp32.tflite", "litert", "TFLite fp32",
                   "float32 TFLite"),
    ArtifactFormat("tflite", "fp16", ".fp16.tflite", "litert", "TFLite fp16",
                   "float16 weights, float32 compute"),
    ArtifactFormat("tflite", "dynamic", ".dynamic.tflite", "litert", "TFLite dynamic",
                   "dynamic-range: int8 weights, float activations"),
    ArtifactFormat("tflite", "int8", ".int8.tflite", "litert", "TFLite int8",
                   "full integer, calibrated post-training quantisation"),
    ArtifactFormat("tflite", "qat", ".qat.tflite", "litert", "TFLite QAT int8",
                   "full integer after quantisation-aware fine-tuning"),
    ArtifactFormat("onnx", "fp32", ".fp32.onnx", "onnxruntime", "ONNX fp32",
                   "float32 ONNX (tf2onnx, opset 17)"),
    ArtifactFormat("onnx", "int8", ".int8.onnx", "onnxruntime", "ONNX int8",
                   "static QDQ quantisation, per-channel"),
)

FORMAT_NAMES = tuple(sorted({f.format for f in FORMATS}))


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


def format_for_path(path: str | Path, precision: str | None = None) -> ArtifactFormat:
    """The row matching a file name (``x.int8.tflite``); plain ``x.tflite`` needs ``precision``
    (from its sidecar) or is taken as fp32."""
    name = Path(path).name.lower()
    for row in sorted(FORMATS, key=lambda r: -len(r.suffix)):
        if name.endswith(row.suffix) and (precision is None or row.precision == precision):
            return row
    ext = Path(name).suffix.lstrip(".")
    if ext in FORMAT_NAMES:
        return find_format(ext, precision or "fp32")
    raise ModelLoadError(f"{path}: unknown model file type; expected one of "
                         f"{', '.join(sorted({'.' + f for f in FORMAT_NAMES}))}")


def artifact_name(stem: str, row: ArtifactFormat) -> str:
    return f"{stem}{row.suffix}"
