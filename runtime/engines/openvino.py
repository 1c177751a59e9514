"""OpenVINO on the CPU: an IR model (``.xml`` + ``.bin``), or an ONNX file OpenVINO reads
itself (``--backend openvino`` on a ``.onnx``), compiled for any batch size."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import openvino as ov

from ..errors import ModelLoadError
from .base import Engine, require_single_io


class OpenVINOEngine(Engine):
    """An OpenVINO compiled model; each call uses its own infer request, so threads may
    share one engine."""

    def __init__(self, path: Path, threads: int | None) -> None:
        core = ov.Core()
        model = core.read_model(str(path))
        require_single_io(path, len(model.inputs), len(model.outputs))
        if model.inputs[0].get_element_type() != ov.Type.f32:
            raise ModelLoadError(f"{path}: expected a float32 input, found "
                                 f"{model.inputs[0].get_element_type()}")
        shape = model.inputs[0].get_partial_shape()
        self.input_shape = tuple(d.get_length() if d.is_static else None for d in shape[1:])
        last = model.outputs[0].get_partial_shape()[-1]
        self.num_outputs = last.get_length() if last.is_static else -1
        config = {"INFERENCE_NUM_THREADS": threads} if threads else {}
        config["INFERENCE_PRECISION_HINT"] = "f32"  # keep float models float on every CPU
        self._compiled = core.compile_model(model, "CPU", config)
        self._local = threading.local()

    def run(self, batch: np.ndarray) -> np.ndarray:
        request = getattr(self._local, "request", None)
        if request is None:
            compiled = self._compiled
            if compiled is None:
                raise ModelLoadError("the predictor was closed while in use")
            request = self._local.request = compiled.create_infer_request()
        request.infer({0: batch})
        return np.array(request.get_output_tensor(0).data, dtype=np.float32)

    def close(self) -> None:
        self._compiled = None
        self._local = threading.local()
