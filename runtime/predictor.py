"""Load a model artifact (TFLite, ONNX or Keras) and turn batches of face crops into probabilities.

``load_predictor`` reads the artifact's sidecar, picks the backend from the format table,
imports that backend's engine lazily and checks that the model and its sidecar agree. A
``Predictor`` takes ``(N, H, W, C)`` float32 input already prepared by ``preprocess`` and
returns ``(N, K)`` float32 probabilities in the sidecar's label order.
"""

from __future__ import annotations

import logging
import os
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .bundled import resolve_model
from .errors import ConfigError, InputShapeError, ModelLoadError
from .formats import BACKENDS, ArtifactFormat, format_for_path
from .sidecar import InputSpec, read_sidecar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictorInfo:
    """What a predictor runs: backend, format, precision, file, input spec and threads."""

    backend: str
    format: str
    precision: str
    path: Path
    input_spec: InputSpec
    threads: int | None
    file_size: int
    labels: tuple[str, ...]


class _Engine:
    """One backend's runner: ``run`` maps a valid float32 batch to raw model output."""

    #: model input shape without the batch axis, from the model itself
    input_shape: tuple[int | None, ...]
    num_outputs: int

    def run(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        """Release the engine; the base engine holds nothing."""


class _LiteRTEngine(_Engine):
    """LiteRT interpreter; resizes the batch axis on demand and (de)quantises int8 I/O.

    One interpreter is not thread-safe, so calls are serialised by a lock.
    """

    def __init__(self, path: Path, threads: int | None) -> None:
        self._lock = threading.Lock()
        self._interpreter = _litert_interpreter(path, threads)
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelLoadError(f"{path}: expected a model with one input and one output, "
                                 f"found {len(inputs)} inputs and {len(outputs)} outputs")
        self._input, self._output = inputs[0], outputs[0]
        self.input_shape = tuple(int(d) for d in self._input["shape"][1:])
        self.num_outputs = int(self._output["shape"][-1])
        self._batch = int(self._input["shape"][0])

    def _resize(self, batch_size: int) -> None:
        shape = [batch_size, *self.input_shape]
        self._interpreter.resize_tensor_input(self._input["index"], shape)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = batch_size

    def run(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            if batch.shape[0] != self._batch:
                self._resize(batch.shape[0])
            self._interpreter.set_tensor(self._input["index"], _quantise(batch, self._input))
            self._interpreter.invoke()
            return _dequantise(self._interpreter.get_tensor(self._output["index"]), self._output)

    def close(self) -> None:
        self._interpreter = None


def _litert_interpreter(path: Path, threads: int | None) -> Any:
    """An allocated interpreter; without the XNNPACK delegate when XNNPACK rejects the model
    (it refuses some int8 layers whose quantisation scales it cannot represent)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
        return interpreter
    except RuntimeError as exc:
        if "XNNPACK" not in str(exc):
            raise
        log.warning("%s: XNNPACK cannot run this model (%s); using LiteRT's built-in kernels",
                    path.name, str(exc).strip())
    interpreter = Interpreter(
        model_path=str(path), num_threads=threads,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    return interpreter


def _quantise(batch: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return batch
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.rint(batch / scale + zero_point), info.min, info.max).astype(dtype)


def _dequantise(output: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    if output.dtype == np.float32:
        return output.copy()
    scale, zero_point = detail["quantization"]
    return ((output.astype(np.float32) - zero_point) * scale).astype(np.float32)


class _OnnxEngine(_Engine):
    """ONNX Runtime on the CPU; sessions are thread-safe and take any batch size."""

    def __init__(self, path: Path, threads: int | None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        self._session = ort.InferenceSession(str(path), options,
                                             providers=["CPUExecutionProvider"])
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelLoadError(f"{path}: expected a model with one input and one output, "
                                 f"found {len(inputs)} inputs and {len(outputs)} outputs")
        if inputs[0].type != "tensor(float)":
            raise ModelLoadError(f"{path}: expected a float input, found {inputs[0].type}")
        self._input_name = inputs[0].name
        self.input_shape = tuple(d if isinstance(d, int) else None for d in inputs[0].shape[1:])
        last = outputs[0].shape[-1]
        self.num_outputs = last if isinstance(last, int) else -1

    def run(self, batch: np.ndarray) -> np.ndarray:
        (output,) = self._session.run(None, {self._input_name: batch})
        return np.asarray(output, dtype=np.float32)

    def close(self) -> None:
        self._session = None


class _KerasEngine(_Engine):
    """A Keras 3 model called through ``predict_on_batch`` (its compiled predict step)."""

    def __init__(self, path: Path, threads: int | None) -> None:
        if threads:
            _set_tensorflow_threads(threads)
        import keras

        self._lock = threading.Lock()
        self._model = keras.models.load_model(path, compile=False)
        if len(self._model.inputs) != 1 or len(self._model.outputs) != 1:
            raise ModelLoadError(f"{path}: expected a model with one input and one output")
        self.input_shape = tuple(self._model.inputs[0].shape[1:])
        self.num_outputs = int(self._model.outputs[0].shape[-1])

    def run(self, batch: np.ndarray) -> np.ndarray:
        # Keras builds its predict function on first use; the lock keeps that build single.
        with self._lock:
            output = self._model.predict_on_batch(batch)
        return np.asarray(output, dtype=np.float32)

    def close(self) -> None:
        self._model = None


def _set_tensorflow_threads(threads: int) -> None:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow's runtime already started; it keeps its threads
        log.debug("TensorFlow already initialised; cannot set threads to %d", threads)


_ENGINES: dict[str, type[_Engine]] = {
    "litert": _LiteRTEngine,
    "onnxruntime": _OnnxEngine,
    "keras": _KerasEngine,
}


class Predictor:
    """A loaded model: ``predict`` maps ``(N, H, W, C)`` float32 input to ``(N, K)`` probabilities.

    Safe to share between threads. Use as a context manager or call ``close``.
    """

    def __init__(self, engine: _Engine, info: PredictorInfo) -> None:
        self._engine: _Engine | None = engine
        self.info = info

    @property
    def labels(self) -> tuple[str, ...]:
        return self.info.labels

    @property
    def input_spec(self) -> InputSpec:
        return self.info.input_spec

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Expected shape of one example: ``(H, W, C)``."""
        spec = self.info.input_spec
        return (spec.height, spec.width, spec.channels)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities ``(N, K)`` float32 for a prepared batch ``(N, H, W, C)``."""
        if self._engine is None:
            raise ModelLoadError(f"{self.info.path}: predictor is closed")
        batch = self._check_batch(batch)
        if batch.shape[0] == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        output = self._engine.run(batch)
        if output.shape != (batch.shape[0], len(self.labels)):
            raise ModelLoadError(f"{self.info.path}: the model returned shape {output.shape} for "
                                 f"{batch.shape[0]} inputs and {len(self.labels)} labels")
        return _normalise(output)

    def _check_batch(self, batch: np.ndarray) -> np.ndarray:
        expected = f"(N, {', '.join(map(str, self.input_shape))}) float32"
        if not isinstance(batch, np.ndarray):
            raise InputShapeError(f"expected a NumPy array of shape {expected}, "
                                  f"got {type(batch).__name__}")
        if batch.ndim != 4 or batch.shape[1:] != self.input_shape:
            raise InputShapeError(f"expected input of shape {expected}, got {batch.shape}")
        if batch.dtype == np.float64:
            batch = batch.astype(np.float32)
        if batch.dtype != np.float32:
            raise InputShapeError(f"expected input of shape {expected}, got dtype {batch.dtype}"
                                  "; prepare images with emotion_edge.runtime.prepare_batch")
        return np.ascontiguousarray(batch)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        i = self.info
        return f"Predictor({i.path.name!r}, backend={i.backend!r}, precision={i.precision!r})"


def _normalise(output: np.ndarray) -> np.ndarray:
    """Make each row sum to 1 (quantised softmax outputs are off by a rounding step)."""
    output = np.clip(output.astype(np.float32, copy=False), 0.0, None)
    total = output.sum(axis=1, keepdims=True)
    return np.divide(output, total, out=np.full_like(output, 1.0 / output.shape[1]),
                     where=total > 0)


def load_predictor(model: str | os.PathLike | None = None, *, backend: str | None = None,
                   threads: int | None = None) -> Predictor:
    """Load ``model`` (a ``.tflite``/``.onnx``/``.keras`` path or a bundled model's name;
    ``None`` is the bundled default) on its format's backend."""
    path = resolve_model(model)
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be a positive integer, got {threads!r}")
    _check_file(path)
    sidecar = read_sidecar(path)
    row = _format_of(path, sidecar)
    name = _choose_backend(row, backend)
    BACKENDS[name].require()
    _sniff(path, row)
    labels = _labels_of(path, sidecar)
    spec = InputSpec.from_dict(sidecar["input"]) if isinstance(sidecar["input"], dict) else None
    if spec is None:
        raise ModelLoadError(f"{path}: sidecar 'input' must be an object with the input spec")
    engine = _open_engine(name, path, threads)
    try:
        _check_agreement(path, engine, spec, labels)
    except ModelLoadError:
        engine.close()
        raise
    info = PredictorInfo(backend=name, format=row.format, precision=row.precision, path=path,
                         input_spec=spec, threads=threads, file_size=path.stat().st_size,
                         labels=labels)
    log.debug("loaded %s on %s (%s %s)", path, name, row.format, row.precision)
    return Predictor(engine, info)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ModelLoadError(f"{path}: no such model file")
    if not path.is_file():
        raise ModelLoadError(f"{path}: is not a file")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"{path}: model file is empty")


def _format_of(path: Path, sidecar: dict[str, Any]) -> ArtifactFormat:
    """The format row from the file name, with a plain ``x.tflite`` taking the sidecar's
    precision; a sidecar naming another format or precision is an error."""
    row = format_for_path(path)
    precision = sidecar.get("precision")
    if not path.name.lower().endswith(row.suffix) and precision:
        row = format_for_path(path, precision)
    if sidecar.get("format", row.format) != row.format or precision not in (None, row.precision):
        raise ModelLoadError(
            f"{path}: the sidecar says {sidecar.get('format')} {precision} but the file name "
            f"says {row.format} {row.precision}; re-export the model or fix its sidecar")
    return row


def _choose_backend(row: ArtifactFormat, backend: str | None) -> str:
    if backend is None:
        return row.backend
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if backend != row.backend:
        raise ConfigError(f"{row.title} models run on the {row.backend!r} backend, "
                          f"not {backend!r}")
    return backend


def _sniff(path: Path, row: ArtifactFormat) -> None:
    """Cheap checks of the file's magic, so a wrong file gets a clear message."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if row.format == "tflite" and head[4:8] != b"TFL3":
        raise ModelLoadError(f"{path}: not a TFLite model (no TFL3 identifier)")
    if row.format == "keras" and not zipfile.is_zipfile(path):
        raise ModelLoadError(f"{path}: not a Keras 3 model archive (not a zip file)")


def _labels_of(path: Path, sidecar: dict[str, Any]) -> tuple[str, ...]:
    labels = sidecar["labels"]
    if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
        raise ModelLoadError(f"{path}: sidecar 'labels' must be a list of names")
    if len(set(labels)) != len(labels):
        raise ModelLoadError(f"{path}: sidecar 'labels' has duplicates: {labels}")
    return tuple(labels)


def _open_engine(name: str, path: Path, threads: int | None) -> _Engine:
    try:
        return _ENGINES[name](path, threads)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001  engines raise many types for a bad file
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{path}: {BACKENDS[name].title} cannot load it: "
                             f"{message[:300]}") from None


def _check_agreement(path: Path, engine: _Engine, spec: InputSpec,
                     labels: tuple[str, ...]) -> None:
    expected = (spec.height, spec.width, spec.channels)
    actual = engine.input_shape
    if len(actual) != 3 or any(a not in (None, e) for a, e in zip(actual, expected, strict=True)):
        shown = tuple("?" if a is None else a for a in actual)
        raise ModelLoadError(f"{path}: the model takes input {shown} but its sidecar says "
                             f"{expected}; the sidecar belongs to another model")
    if engine.num_outputs not in (-1, len(labels)):
        raise ModelLoadError(f"{path}: the model has {engine.num_outputs} outputs but its "
                             f"sidecar lists {len(labels)} labels")
