"""LiteRT (TensorFlow Lite): any batch size, int8 inputs and outputs (de)quantised here.

The interpreter is opened by the runtime's one LiteRT helper (``runtime/litert.py``: the
XNNPACK fallback, typed errors and a lock, so one engine may be shared between threads).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..litert import open_litert
from .base import Engine, require_single_io


class LiteRTEngine(Engine):
    """A ``.tflite`` model on LiteRT."""

    def __init__(self, path: Path, threads: int | None) -> None:
        self._interpreter = open_litert(path, threads=threads, name=path.name)
        inputs, outputs = self._interpreter.inputs, self._interpreter.outputs
        require_single_io(path, len(inputs), len(outputs))
        self.input_shape = tuple(int(d) for d in inputs[0]["shape"][1:])
        self.num_outputs = int(outputs[0]["shape"][-1])
        # resizing the batch axis keeps each tensor's dtype and quantisation
        self._input, self._output = inputs[0], outputs[0]

    def run(self, batch: np.ndarray) -> np.ndarray:
        (output,) = self._interpreter.run([_quantise(batch, self._input)])
        return _dequantise(output, self._output)

    def close(self) -> None:
        self._interpreter.close()


def _quantise(batch: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return batch
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.rint(batch / scale + zero_point), info.min, info.max).astype(dtype)


def _dequantise(output: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    if output.dtype == np.float32:
        return output
    scale, zero_point = detail["quantization"]
    return ((output.astype(np.float32) - zero_point) * scale).astype(np.float32)
