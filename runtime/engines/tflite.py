"""LiteRT (TensorFlow Lite): any batch size, int8 inputs and outputs (de)quantised here.

The interpreter is opened by the runtime's one LiteRT helper (``runtime/litert.py``: the
XNNPACK fallback, typed errors and a lock, so one engine may be shared between threads).

LiteRT trusts the flatbuffer: a corrupt one (an operator's input index set to -1, say) can
kill the process with SIGSEGV inside ``allocate_tensors``. So a model from outside the
bundled models folder is first opened and run once in a child process
(``python -m emotion_edge.runtime.engines.tflite MODEL``); if the child dies, the caller gets
a ``ModelLoadError`` instead of dying too. Each file passes once per process (remembered
by its sha256).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..bundled import models_dir
from ..errors import ModelLoadError
from ..litert import open_litert
from ..sidecar import sha256_of
from .base import Engine, require_single_io

#: seconds the child may take to open and run a model
CHILD_TIMEOUT = 60
_passed: set[str] = set()
_passed_lock = threading.Lock()


class LiteRTEngine(Engine):
    """A ``.tflite`` model on LiteRT."""

    def __init__(self, path: Path, threads: int | None) -> None:
        self.verify(path)
        self._interpreter = open_litert(path, threads=threads, name=path.name)
        inputs, outputs = self._interpreter.inputs, self._interpreter.outputs
        require_single_io(path, len(inputs), len(outputs))
        self.input_shape = tuple(int(d) for d in inputs[0]["shape"][1:])
        self.num_outputs = int(outputs[0]["shape"][-1])
        # resizing the batch axis keeps each tensor's dtype and quantisation
        self._input, self._output = inputs[0], outputs[0]

    @classmethod
    def verify(cls, path: Path) -> None:
        check_in_child(path)

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


def check_in_child(path: Path) -> None:
    """Open and run the model at ``path`` once in a child process, unless it is bundled or
    already passed; ``ModelLoadError`` if LiteRT crashes, hangs or fails there."""
    if path.resolve().parent == models_dir().resolve():
        return
    digest = sha256_of(path)
    with _passed_lock:
        if digest in _passed:
            return
    try:
        done = subprocess.run([sys.executable, "-m", __name__, str(path)], capture_output=True,
                              text=True, timeout=CHILD_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise ModelLoadError(f"{path}: LiteRT did not finish opening it in "
                             f"{CHILD_TIMEOUT} s; the file is corrupt") from None
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        raise ModelLoadError(f"{path}: LiteRT crashed ({name}) opening it in a child process; "
                             "the file is corrupt or not a valid model")
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise ModelLoadError(lines[-1] if lines else f"{path}: LiteRT cannot load it")
    with _passed_lock:
        _passed.add(digest)


def _child(path: str) -> int:
    """Open the model, run zeros through it; exit 0, or 2 with the error on stderr."""
    try:
        with open_litert(path, threads=1) as interpreter:
            interpreter.run([np.zeros(d["shape"], d["dtype"]) for d in interpreter.inputs])
    except ModelLoadError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
