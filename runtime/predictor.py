"""Load a model artifact of any registered format and turn face crops into probabilities.

``load_predictor`` reads the artifact's sidecar, finds its row in the format registry,
checks the files against the sidecar's size and sha256, imports the row's engine class
lazily, checks that the model and its sidecar agree and probes the model once to make sure
it returns probabilities. A ``Predictor`` takes ``(N, H, W, C)`` float32 input already
prepared by ``preprocess`` (``predict``), or crops of any size and any number
(``predict_batch``: prepared with the sidecar's input spec, in chunks), and returns
``(N, K)`` float32 probabilities in the sidecar's label order.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .bundled import resolve_model
from .engines.base import Engine
from .errors import ConfigError, InputShapeError, ModelLoadError
from .formats import BACKENDS, ArtifactFormat, import_object, read_artifact
from .preprocess import DEFAULT_BATCH, predict_in_batches
from .sidecar import InputSpec

log = logging.getLogger(__name__)

#: how far a row of outputs may sum from 1 and still count as probabilities (int8 outputs
#: are rounded to 1/256 each)
PROBABILITY_TOLERANCE = 0.03


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


class Predictor:
    """A loaded model: ``predict`` maps ``(N, H, W, C)`` float32 input to ``(N, K)`` probabilities.

    Safe to share between threads. Use as a context manager or call ``close``.
    """

    def __init__(self, engine: Engine, info: PredictorInfo) -> None:
        self._engine: Engine | None = engine
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
        return self.info.input_spec.shape

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities ``(N, K)`` float32 for a prepared batch ``(N, H, W, C)``."""
        if self._engine is None:
            raise ModelLoadError(f"{self.info.path}: predictor is closed")
        batch = self._check_batch(batch)
        if len(batch) <= DEFAULT_BATCH:
            return self._run(batch)
        # an engine's working memory grows with the batch: run a big one in chunks
        return np.concatenate([self._run(batch[i:i + DEFAULT_BATCH])
                               for i in range(0, len(batch), DEFAULT_BATCH)])

    def _run(self, batch: np.ndarray) -> np.ndarray:
        engine = self._engine
        if engine is None:
            raise ModelLoadError(f"{self.info.path}: predictor is closed")
        if batch.shape[0] == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        output = engine.run(batch)
        if output.shape != (batch.shape[0], len(self.labels)):
            raise ModelLoadError(f"{self.info.path}: the model returned shape {output.shape} for "
                                 f"{batch.shape[0]} inputs and {len(self.labels)} labels")
        return as_probabilities(output, self.info.path)

    def predict_batch(self, images: np.ndarray | Sequence[np.ndarray],
                      batch_size: int = DEFAULT_BATCH) -> np.ndarray:
        """Probabilities ``(N, K)`` for any number of images, ``batch_size`` at a time.

        ``images``: uint8 face crops (an array ``(N, H, W[, C])`` or a list of crops of any
        size), prepared with the sidecar's input spec one chunk at a time, or a float array
        already in the model's input spec ``(N, H, W, C)``.
        """
        return predict_in_batches(self.predict, images, self.input_spec,
                                  num_outputs=len(self.labels), batch_size=batch_size)

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
                                  "; prepare images with emotion_edge.runtime.prepare_batch "
                                  "or pass crops to predict_batch")
        if not np.isfinite(batch).all():  # a model would answer NaN input with a confident class
            raise InputShapeError("the input holds NaN or infinite values; prepare images with "
                                  "emotion_edge.runtime.prepare_batch")
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


def as_probabilities(output: np.ndarray, path: Path | str) -> np.ndarray:
    """``output`` as float32 probabilities; ``ModelLoadError`` unless each row already is
    one (finite, in [0, 1], summing to 1 within ``PROBABILITY_TOLERANCE``). Only the
    rounding of quantised outputs is corrected (clipped at 0, rows rescaled to sum to 1)."""
    output = output.astype(np.float32, copy=False)
    if not np.isfinite(output).all():
        raise ModelLoadError(f"{path}: the model returned NaN or infinite outputs; it is "
                             "broken or not a probability model")
    sums = output.sum(axis=1)
    worst = float(np.abs(sums - 1.0).max()) if len(sums) else 0.0
    if output.min(initial=0.0) < -0.01 or output.max(initial=0.0) > 1.01 \
            or worst > PROBABILITY_TOLERANCE:
        raise ModelLoadError(
            f"{path}: the model's outputs are not probabilities (values in "
            f"[{output.min():.3g}, {output.max():.3g}], rows summing to {sums.min():.3g}-"
            f"{sums.max():.3g}); export the model with its softmax layer")
    output = np.clip(output, 0.0, None)
    return output / output.sum(axis=1, keepdims=True)


def load_predictor(model: str | os.PathLike | None = None, *, backend: str | None = None,
                   threads: int | None = None) -> Predictor:
    """Load ``model`` (a path of any registered format or a bundled model's name; ``None``
    is the bundled default) on its format's backend."""
    path = resolve_model(model)
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be a positive integer, got {threads!r}")
    _check_exists(path)
    row, sidecar = read_artifact(path)
    _check_files(path, row)
    name = _choose_backend(row, backend)
    BACKENDS[name].require()
    row.check_magic(path)
    labels = _labels_of(path, sidecar)
    spec = _spec_of(path, sidecar)
    check_integrity(path, row, sidecar)
    engine = _open_engine(name, path, threads)
    try:
        _check_agreement(path, engine, spec, labels)
        _probe(path, engine, spec)
    except ModelLoadError:
        engine.close()
        raise
    info = PredictorInfo(backend=name, format=row.format, precision=row.precision, path=path,
                         input_spec=spec, threads=threads, file_size=row.size_bytes(path),
                         labels=labels)
    log.debug("loaded %s on %s (%s %s)", path, name, row.format, row.precision)
    return Predictor(engine, info)


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise ModelLoadError(f"{path}: no such model file")


def _check_files(path: Path, row: ArtifactFormat) -> None:
    """Every file of the artifact is there and none is empty."""
    if row.layout != "folder" and not path.is_file():
        raise ModelLoadError(f"{path}: is not a file")
    missing = row.missing(path)
    if missing:
        raise ModelLoadError(f"{path}: a {row.title} model needs "
                             f"{', '.join(p.name for p in missing)} beside it; it is missing")
    empty = [p.name for p in row.members(path) if p.stat().st_size == 0]
    if empty:
        raise ModelLoadError(f"{path}: model file {', '.join(empty)} is empty")


def check_integrity(path: Path, row: ArtifactFormat, sidecar: dict[str, Any]) -> None:
    """The artifact's files have the size and sha256 its sidecar records, or
    ``ModelLoadError``: a damaged or replaced model must not load and mislead."""
    recorded = sidecar.get("sha256")
    if not isinstance(recorded, str) or len(recorded) != 64:
        raise ModelLoadError(f"{path}: its sidecar records no sha256 of the model; re-export "
                             "it (every export records one) or add the file's sha256")
    size = sidecar.get("size_bytes")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool)):
        raise ModelLoadError(f"{path}: its sidecar's size_bytes must be a whole number of "
                             f"bytes, got {size!r}")
    actual_size = row.size_bytes(path)
    if size is not None and size != actual_size:
        raise ModelLoadError(f"{path}: is {actual_size:,} bytes but its sidecar records "
                             f"{size:,}; the file was damaged or replaced")
    if row.sha256(path) != recorded:
        raise ModelLoadError(f"{path}: its sha256 differs from the one its sidecar records; "
                             "the file was damaged or replaced (re-export or re-download it)")


def _choose_backend(row: ArtifactFormat, backend: str | None) -> str:
    if backend is None:
        return row.backend
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if backend not in row.backends:
        choices = " or ".join(repr(b) for b in row.backends)
        raise ConfigError(f"{row.title} models run on the {choices} backend, not {backend!r}")
    return backend


def _labels_of(path: Path, sidecar: dict[str, Any]) -> tuple[str, ...]:
    labels = sidecar["labels"]
    if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
        raise ModelLoadError(f"{path}: sidecar 'labels' must be a list of names")
    if len(set(labels)) != len(labels):
        raise ModelLoadError(f"{path}: sidecar 'labels' has duplicates: {labels}")
    return tuple(labels)


def _spec_of(path: Path, sidecar: dict[str, Any]) -> InputSpec:
    try:
        return InputSpec.from_dict(sidecar["input"])
    except ModelLoadError as exc:
        raise ModelLoadError(f"{path}: sidecar {exc}") from None


def _open_engine(name: str, path: Path, threads: int | None) -> Engine:
    backend = BACKENDS[name]
    try:
        return import_object(backend.engine_class)(path, threads)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001  engines raise many types for a bad file
        raise ModelLoadError(f"{path}: {backend.title} cannot load it: "
                             f"{_engine_reason(exc)[:300]}") from None


def _engine_reason(exc: Exception) -> str:
    """The line of an engine's error that says what is wrong: the first, or the last when the
    first only names a source location (OpenVINO's "Exception from src/...cpp:84:")."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return lines[-1] if lines[0].endswith(":") else lines[0]


def _check_agreement(path: Path, engine: Engine, spec: InputSpec,
                     labels: tuple[str, ...]) -> None:
    expected = spec.shape
    actual = engine.input_shape
    if len(actual) != 3 or any(a not in (None, e) for a, e in zip(actual, expected, strict=True)):
        shown = tuple("?" if a is None else a for a in actual)
        raise ModelLoadError(f"{path}: the model takes input {shown} but its sidecar says "
                             f"{expected}; the sidecar belongs to another model")
    if engine.num_outputs not in (-1, len(labels)):
        raise ModelLoadError(f"{path}: the model has {engine.num_outputs} outputs but its "
                             f"sidecar lists {len(labels)} labels")


def _probe(path: Path, engine: Engine, spec: InputSpec) -> None:
    """Run one mid-grey input: the model must return probabilities, not logits or NaN."""
    grey = np.float32(128 * spec.scale + spec.offset)
    try:
        output = engine.run(np.full((1, *spec.shape), grey, np.float32))
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001  a damaged model may load, then fail to run
        raise ModelLoadError(f"{path}: the model loads but fails on a test input: "
                             f"{_engine_reason(exc)[:300]}") from None
    as_probabilities(output, path)
