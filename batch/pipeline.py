"""The Ray Data pipeline: paths in, one row per face (or per failed file) out.

``recognize_dataset`` chains two stages on a dataset of paths: a read task that loads each
file's bytes (local or through pyarrow's filesystems) and ``RecognizeFaces``, a stateful
class run by an actor pool, each actor holding one ``EmotionRecognizer`` loaded once with
its engine threads set explicitly. Decoding, detection and classification happen in the
actor through the runtime's public API, so the rows equal ``emotion-edge predict``'s faces.
A file that cannot be read or decoded becomes a row with its error; it never stops the job.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from emotion_edge.runtime import EmotionRecognizer, FaceResult, RecognizerOptions
from emotion_edge.runtime.errors import ConfigError, EmotionEdgeError

from .cluster import require_ray, start_ray
from .inputs import is_uri, remote_filesystem

#: CPUs a read (or write) task reserves: small, so reads always find room beside the actors.
TASK_CPUS = 0.25
#: The most CPU an actor reserves. Actors that reserved a whole CPU each on a 2-core machine
#: left none for the read tasks and the job stalled for good.
MAX_ACTOR_CPUS = 0.5
#: Files per batch handed to an actor.
DEFAULT_BATCH_SIZE = 16
#: The key of the output schema's metadata that records the recognizer options.
OPTIONS_KEY = b"emotion_edge.options"


def probability_column(label: str) -> str:
    return f"p_{label}"


def options_json(options: RecognizerOptions) -> str:
    """The options that decide the results (all but threads) as JSON, stored with them so a
    resumed job can check that it continues the same recognition."""
    return json.dumps({k: str(v) if isinstance(v, Path) else v
                       for k, v in dataclasses.asdict(options).items() if k != "threads"},
                      sort_keys=True)


def result_schema(labels: Sequence[str], options: RecognizerOptions):
    """The output's columns: path, face, box, detection score, label, score, one probability
    column per label, status (ok / no face / error) and error."""
    import pyarrow as pa

    fields = [pa.field("path", pa.string()), pa.field("face", pa.int32()),
              *(pa.field(c, pa.float64()) for c in ("x", "y", "w", "h", "detection_score")),
              pa.field("label", pa.string()), pa.field("score", pa.float64()),
              *(pa.field(probability_column(label), pa.float64()) for label in labels),
              pa.field("status", pa.string()), pa.field("error", pa.string())]
    return pa.schema(fields, metadata={OPTIONS_KEY: options_json(options)})


def read_file(path: str) -> bytes:
    """The bytes of a local file or a URI (OSError when it cannot be read)."""
    if is_uri(path):
        filesystem, inner = remote_filesystem(path)
        with filesystem.open_input_stream(inner) as stream:
            return stream.read()
    return Path(path).read_bytes()


def read_files(batch):
    """Read stage: add each file's bytes, or the reason it could not be read."""
    import pyarrow as pa

    contents, errors = [], []
    for path in batch.column("path").to_pylist():
        data, error = None, None
        try:
            data = read_file(path)
        except FileNotFoundError:
            error = f"{path}: no such file"
        except IsADirectoryError:
            error = f"{path}: is a folder, not an image"
        except (OSError, ValueError, EmotionEdgeError) as exc:
            error = f"{path}: cannot be read ({exc})"
        contents.append(data)
        errors.append(error)
    return batch.append_column("bytes", pa.array(contents, pa.binary())).append_column(
        "read_error", pa.array(errors, pa.string()))


def face_rows(path: str, faces: list[FaceResult]) -> list[dict[str, Any]]:
    """One output row per face, or one ``no face`` row."""
    if not faces:
        return [{"path": path, "status": "no face"}]
    rows = []
    for index, face in enumerate(faces):
        x0, y0, x1, y1 = face.box
        rows.append({"path": path, "face": index, "x": x0, "y": y0, "w": x1 - x0, "h": y1 - y0,
                     "detection_score": face.detection_score, "label": face.label,
                     "score": face.score, "status": "ok",
                     **{probability_column(k): v for k, v in face.probabilities.items()}})
    return rows


class RecognizeFaces:
    """The actor stage: one recognizer per actor, loaded once, reused for every batch."""

    def __init__(self, options: RecognizerOptions) -> None:
        if options.threads is None:  # one engine thread per actor unless told otherwise
            options = dataclasses.replace(options, threads=1)
        self.recognizer = EmotionRecognizer(options)
        self.schema = result_schema(self.recognizer.labels, options)

    def __call__(self, batch):
        import pyarrow as pa

        rows: list[dict[str, Any]] = []
        for path, data, read_error in zip(batch.column("path").to_pylist(),
                                          batch.column("bytes").to_pylist(),
                                          batch.column("read_error").to_pylist(), strict=True):
            rows.extend(self.recognize(path, data, read_error))
        return pa.Table.from_pylist(rows, schema=self.schema)

    def recognize(self, path: str, data: bytes | None, error: str | None) -> list[dict]:
        if error is None:
            try:
                return face_rows(path, self.recognizer.analyze(data, name=path))
            except EmotionEdgeError as exc:
                error = str(exc)
            except Exception as exc:  # noqa: BLE001  a bad file never stops the job
                error = f"{path}: {type(exc).__name__}: {exc}"
        return [{"path": path, "status": "error", "error": error}]


def check_sizes(workers: int | None, batch_size: int) -> None:
    """ConfigError unless the worker count (None: default) and batch size are positive."""
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")


def actor_cpus(workers: int, cluster_cpus: float) -> float:
    """CPUs each actor reserves: at most MAX_ACTOR_CPUS, and never so many that the actors
    leave less than one read task's share of the cluster free."""
    return min(MAX_ACTOR_CPUS, (cluster_cpus - TASK_CPUS) / workers)


def recognize_dataset(paths: Sequence[str] | Any, options: RecognizerOptions | None = None, *,
                      workers: int | None = None,
                      batch_size: int = DEFAULT_BATCH_SIZE) -> Any:
    """A Ray Dataset of recognition rows (see ``result_schema``) for ``paths``.

    ``paths`` is a list of local paths or URIs (``find_inputs`` expands folders, globs and
    lists) or a Ray Dataset with a ``path`` column. Uses the Ray instance this process is
    connected to, or starts a local one (``start_ray``). ``workers`` actors
    (default: one per cluster CPU) each load one recognizer. Nothing runs until the dataset
    is consumed (``write_parquet``, ``iter_batches``, ``take_all`` …); rows come in no
    particular order.
    """
    ray = require_ray()
    options = options or RecognizerOptions()
    check_sizes(workers, batch_size)
    if not ray.is_initialized():
        start_ray()
    cluster_cpus = float(ray.cluster_resources().get("CPU", 1.0))
    workers = workers or max(1, int(cluster_cpus))
    if not isinstance(paths, ray.data.Dataset):  # one block per batch, so actors share them
        paths = ray.data.from_items([{"path": str(p)} for p in paths],
                                    override_num_blocks=max(1, -(-len(paths) // batch_size)))
    read = paths.map_batches(read_files, batch_format="pyarrow", batch_size=batch_size,
                             num_cpus=TASK_CPUS)
    return read.map_batches(
        RecognizeFaces, fn_constructor_kwargs={"options": options}, batch_format="pyarrow",
        batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=actor_cpus(workers, cluster_cpus))
