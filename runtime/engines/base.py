"""What every engine provides: the model's input shape and output count, and ``run``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelLoadError


class Engine:
    """One backend's runner: ``run`` maps a valid float32 batch to raw model output."""

    #: model input shape without the batch axis, from the model itself (None: dynamic)
    input_shape: tuple[int | None, ...]
    #: the model's output width (-1: not known until it runs)
    num_outputs: int

    def __init__(self, path: Path, threads: int | None) -> None:
        raise NotImplementedError

    @classmethod
    def verify(cls, path: Path) -> None:
        """Checks an engine makes before trusting a file (``__init__`` makes them too); a
        benchmark calls this first so that its load time is the engine's own."""

    def run(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        """Release the engine; the base engine holds nothing."""


def require_single_io(path: Path, inputs: int, outputs: int) -> None:
    """Raise ``ModelLoadError`` unless the model has one input and one output."""
    if inputs != 1 or outputs != 1:
        raise ModelLoadError(f"{path}: expected a model with one input and one output, "
                             f"found {inputs} inputs and {outputs} outputs")
