"""LiteRT (TensorFlow Lite): resizes the batch axis on demand and (de)quantises int8 I/O.

Like every engine module, this one imports its engine at module level: the runtime imports
it only when a model of its format is loaded.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from .base import Engine, require_single_io

log = logging.getLogger(__name__)


class LiteRTEngine(Engine):
    """A LiteRT interpreter. One interpreter is not thread-safe, so calls hold a lock."""

    def __init__(self, path: Path, threads: int | None) -> None:
        self._lock = threading.Lock()
        self._interpreter = _litert_interpreter(path, threads)
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        require_single_io(path, len(inputs), len(outputs))
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
