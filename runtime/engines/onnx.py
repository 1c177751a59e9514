"""ONNX Runtime on the CPU: sessions are thread-safe and take any batch size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..errors import ModelLoadError
from .base import Engine, require_single_io


class OnnxEngine(Engine):
    """An ONNX Runtime ``InferenceSession`` on the CPU execution provider."""

    def __init__(self, path: Path, threads: int | None) -> None:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        self._session = ort.InferenceSession(str(path), options,
                                             providers=["CPUExecutionProvider"])
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        require_single_io(path, len(inputs), len(outputs))
        if inputs[0].type != "tensor(float)":
            raise ModelLoadError(f"{path}: expected a float input, found {inputs[0].type}")
        self._input_name = inputs[0].name
        self.input_shape = tuple(d if isinstance(d, int) else None for d in inputs[0].shape[1:])
        last = outputs[0].shape[-1]
        self.num_outputs = last if isinstance(last, int) else -1

    def run(self, batch: np.ndarray) -> np.ndarray:
        session = self._session
        if session is None:
            raise ModelLoadError("the predictor was closed while in use")
        (output,) = session.run(None, {self._input_name: batch})
        return np.asarray(output, dtype=np.float32)

    def close(self) -> None:
        self._session = None
