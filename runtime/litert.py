"""The one way the runtime opens a LiteRT (TFLite) interpreter: same fallback, one lock.

Every ``.tflite`` model the package runs, emotion classifiers and face detectors alike,
goes through :func:`open_litert`, so all of them get

- the same loading: from a path or from bytes, ``num_threads`` as given, and when
  XNNPACK refuses the model (it rejects some int8 layers whose quantisation scales it
  cannot represent) a logged warning and LiteRT's built-in kernels instead;
- the same errors: a missing engine raises :class:`BackendUnavailableError` naming the
  ``[tflite]`` extra, a file LiteRT cannot load raises :class:`ModelLoadError`, a model
  that loads but fails when run raises :class:`ModelLoadError`, and using a closed
  interpreter raises :class:`ModelLoadError`;
- the same thread safety: a LiteRT interpreter owns one set of tensors, so two threads
  calling ``invoke`` on it at once corrupt each other's results (or raise "There is at
  least 1 reference to internal data..."). :meth:`LiteRTInterpreter.run` sets the inputs,
  invokes and copies the outputs under one lock, so one interpreter may be shared.

API (kept stable; other modules build on it)::

    interp = open_litert(path_or_bytes, threads=1, name="default.int8.tflite")
    interp.inputs, interp.outputs        # LiteRT's tensor details, input/output order
    outputs = interp.run([array, ...])   # one array per input; copies of every output
    interp.close()                       # also a context manager

``run`` resizes an input whose shape differs from the array's (a new batch size) and
reallocates before invoking; ``inputs`` and ``outputs`` then describe the new shapes.
Arrays are passed as given: casting and (de)quantisation are the caller's job.

LiteRT's C++ side writes "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." straight
to file descriptor 2 when a process's first interpreter is allocated, whatever the log
level (``TF_CPP_MIN_LOG_LEVEL`` does not reach it). So while an interpreter is created,
fd 2 is held in a temporary file, under a lock since fd 2 is the whole process's, and
everything written there except that line is passed on afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BackendUnavailableError, ModelLoadError

log = logging.getLogger(__name__)

ModelSource = str | Path | bytes

#: what LiteRT writes to fd 2 when it creates its default delegate
LITERT_BANNER = b"Created TensorFlow Lite XNNPACK delegate"
_STDERR_LOCK = threading.Lock()


class LiteRTInterpreter:
    """One allocated LiteRT interpreter whose every call is serialised by a lock."""

    def __init__(self, source: ModelSource, *, threads: int | None = None,
                 name: str | None = None) -> None:
        self.name = name or (Path(source).name if not isinstance(source, bytes) else "model")
        self._lock = threading.Lock()
        with _without_banner():
            self._interpreter: Any = _allocated(source, threads, self.name)
        self.inputs: list[dict[str, Any]] = self._interpreter.get_input_details()
        self.outputs: list[dict[str, Any]] = self._interpreter.get_output_details()

    def run(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Set one array per input (input order), invoke, return copies of all outputs."""
        with self._lock:
            interpreter = self._interpreter
            if interpreter is None:
                raise ModelLoadError(f"{self.name}: the LiteRT interpreter was closed")
            if len(arrays) != len(self.inputs):
                raise ModelLoadError(f"{self.name}: the model has {len(self.inputs)} inputs, "
                                     f"got {len(arrays)} arrays")
            self._fit_shapes(interpreter, arrays)
            try:
                for detail, array in zip(self.inputs, arrays, strict=True):
                    interpreter.set_tensor(detail["index"], array)
                interpreter.invoke()
                return [interpreter.get_tensor(d["index"]).copy() for d in self.outputs]
            except (RuntimeError, ValueError) as exc:
                raise ModelLoadError(f"{self.name}: LiteRT failed to run the model "
                                     f"({str(exc).strip()})") from None

    def _fit_shapes(self, interpreter: Any, arrays: Sequence[np.ndarray]) -> None:
        """Resize inputs whose shape differs from the arrays' and reallocate (lock held)."""
        changed = False
        for detail, array in zip(self.inputs, arrays, strict=True):
            if tuple(detail["shape"]) != array.shape:
                interpreter.resize_tensor_input(detail["index"], list(array.shape))
                changed = True
        if not changed:
            return
        try:
            interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            raise ModelLoadError(f"{self.name}: LiteRT cannot resize the model's input "
                                 f"({str(exc).strip()})") from None
        self.inputs = interpreter.get_input_details()
        self.outputs = interpreter.get_output_details()

    def close(self) -> None:
        """Release the interpreter; later ``run`` calls raise ModelLoadError."""
        with self._lock:
            self._interpreter = None

    def __enter__(self) -> LiteRTInterpreter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_litert(source: ModelSource, *, threads: int | None = None,
                name: str | None = None) -> LiteRTInterpreter:
    """Open a ``.tflite`` model (path or bytes) as a thread-safe :class:`LiteRTInterpreter`.

    ``threads`` is LiteRT's ``num_threads`` (None: LiteRT's default); ``name`` labels
    errors and log lines (default: the file name).
    """
    return LiteRTInterpreter(source, threads=threads, name=name)


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the LiteRT backend needs 'ai_edge_litert', which cannot be imported ({exc}); "
            "install it with: pip install 'emotion-edge[tflite]'") from None
    return Interpreter


def _allocated(source: ModelSource, threads: int | None, name: str) -> Any:
    """An allocated interpreter, without the XNNPACK delegate when XNNPACK rejects the model."""
    interpreter_class = _interpreter_class()
    model = ({"model_content": source} if isinstance(source, bytes)
             else {"model_path": str(source)})
    try:
        return _allocate(interpreter_class(**model, num_threads=threads))
    except (RuntimeError, ValueError) as exc:
        if "XNNPACK" not in str(exc):
            raise ModelLoadError(f"{name}: LiteRT cannot load this model "
                                 f"({str(exc).strip()})") from None
        log.warning("%s: XNNPACK cannot run this model (%s); using LiteRT's built-in kernels",
                    name, str(exc).strip())
    from ai_edge_litert.interpreter import OpResolverType

    builtin = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        return _allocate(interpreter_class(**model, num_threads=threads,
                                           experimental_op_resolver_type=builtin))
    except (RuntimeError, ValueError) as exc:
        raise ModelLoadError(f"{name}: LiteRT cannot load this model "
                             f"({str(exc).strip()})") from None


def _allocate(interpreter: Any) -> Any:
    interpreter.allocate_tensors()
    return interpreter


@contextlib.contextmanager
def _without_banner() -> Iterator[None]:
    """Hold back what is written to fd 2 meanwhile; afterwards pass it on without LiteRT's
    banner line."""
    with _STDERR_LOCK:
        try:
            _flush_stderr()
            saved = os.dup(2)
        except OSError:  # no fd 2: nothing to filter
            yield
            return
        with tempfile.TemporaryFile() as held:
            os.dup2(held.fileno(), 2)
            try:
                yield
            finally:
                _flush_stderr()
                os.dup2(saved, 2)
                os.close(saved)
                held.seek(0)
                _write_fd2(b"".join(line for line in held.read().splitlines(keepends=True)
                                    if LITERT_BANNER not in line))


def _flush_stderr() -> None:
    with contextlib.suppress(AttributeError, OSError, ValueError):  # None, closed or broken
        sys.stderr.flush()


def _write_fd2(data: bytes) -> None:
    with contextlib.suppress(OSError):  # fd 2 closed or a broken pipe: nowhere to write
        while data:
            data = data[os.write(2, data):]
