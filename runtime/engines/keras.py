"""A Keras 3 model called through ``predict_on_batch`` (its compiled predict step)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import keras
import numpy as np

from ..errors import ModelLoadError
from .base import Engine, require_single_io

log = logging.getLogger(__name__)


class KerasEngine(Engine):
    """A ``.keras`` archive loaded with Keras 3 (TensorFlow backend)."""

    def __init__(self, path: Path, threads: int | None) -> None:
        if threads:
            _set_tensorflow_threads(threads)
        self._lock = threading.Lock()
        self._model = keras.models.load_model(path, compile=False)
        require_single_io(path, len(self._model.inputs), len(self._model.outputs))
        self.input_shape = tuple(self._model.inputs[0].shape[1:])
        self.num_outputs = int(self._model.outputs[0].shape[-1])

    def run(self, batch: np.ndarray) -> np.ndarray:
        # Keras builds its predict function on first use; the lock keeps that build single.
        with self._lock:
            if self._model is None:
                raise ModelLoadError("the predictor was closed while in use")
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
