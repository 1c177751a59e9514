"""A whole batch job: inputs to a resumable folder of Parquet parts.

The output (``--out results.parquet``) is a folder of Parquet part files that together form
one table (``pandas.read_parquet``, ``pyarrow.parquet.read_table`` and
``ray.data.read_parquet`` read the folder as a whole). Each run only adds parts: when the
folder already holds results, the files named in them are skipped and the rest are
recognised and written as new parts, so an interrupted job is re-run with the same command.
Results made with other recognizer options are refused, and nothing is deleted unless
``overwrite`` is given, which removes the folder's part files first.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from emotion_edge.runtime import EmotionRecognizer, RecognizerOptions
from emotion_edge.runtime.errors import ConfigError, EmotionEdgeError

from .cluster import require_ray, start_ray, stop_ray
from .inputs import find_inputs, is_uri, remote_filesystem
from .pipeline import (
    DEFAULT_BATCH_SIZE,
    OPTIONS_KEY,
    TASK_CPUS,
    check_sizes,
    options_json,
    recognize_dataset,
)

log = logging.getLogger(__name__)

#: Rows gathered into one part file: fewer, larger parts; after a crash, only the files whose
#: rows were not yet written are redone.
ROWS_PER_PART = 1000


@dataclass(frozen=True)
class BatchSummary:
    """What one run did; ``seconds`` is the pipeline alone, without Ray's start-up."""

    out: str
    files: int
    skipped: int
    faces: int
    no_face: int
    errors: int
    ray_start_s: float
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.files / self.seconds if self.seconds > 0 else 0.0


class ResultFolder:
    """The output folder of part files, local or on any filesystem pyarrow opens."""

    def __init__(self, out: str) -> None:
        from pyarrow import fs

        self.out = out
        if is_uri(out):
            self.filesystem, self.root = remote_filesystem(out)
        else:
            self.filesystem, self.root = fs.LocalFileSystem(), str(Path(out).absolute())

    def parts(self) -> list[str]:
        """The part files in the folder (none if it does not exist); ConfigError if ``out``
        is a file or the folder holds anything else."""
        from pyarrow import fs

        info = self.filesystem.get_file_info(self.root)
        if info.type == fs.FileType.NotFound:
            return []
        if info.type != fs.FileType.Directory:
            raise ConfigError(f"--out {self.out}: is a file; batch writes a folder of Parquet "
                              "parts there; choose another --out")
        entries = self.filesystem.get_file_info(fs.FileSelector(self.root))
        others = [e.base_name for e in entries if not e.base_name.endswith(".parquet")]
        if others:
            raise ConfigError(f"--out {self.out}: holds files that are not batch results "
                              f"({', '.join(sorted(others)[:3])}); choose another --out")
        return sorted(e.path for e in entries)

    def done_paths(self, parts: Sequence[str], options_text: str) -> set[str]:
        """The input paths the parts already hold; ConfigError if a part is unreadable or was
        made with other options."""
        import pyarrow.parquet as pq

        done: set[str] = set()
        for part in parts:
            try:
                metadata = pq.read_schema(part, filesystem=self.filesystem).metadata or {}
                paths = pq.read_table(part, columns=["path"], filesystem=self.filesystem)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{part}: cannot read this part of --out {self.out} ({exc}); "
                                  "delete it (its files are redone) or pass --overwrite"
                                  ) from None
            if metadata.get(OPTIONS_KEY, b"").decode() != options_text:
                raise ConfigError(f"--out {self.out}: holds results made with other options "
                                  f"({part}); pass --overwrite or choose another --out")
            done.update(paths.column("path").to_pylist())
        return done

    def create(self) -> None:
        """Create the folder now, so an unwritable ``--out`` fails before any work."""
        try:
            self.filesystem.create_dir(self.root, recursive=True)
        except OSError as exc:
            raise ConfigError(f"--out {self.out}: cannot create the folder ({exc})") from None

    def remove(self, parts: Sequence[str]) -> None:
        for part in parts:
            self.filesystem.delete_file(part)
        log.info("--overwrite: removed %d part files from %s", len(parts), self.out)

    def count_statuses(self, parts: Sequence[str]) -> Counter:
        import pyarrow.parquet as pq

        counts: Counter = Counter()
        for part in parts:
            table = pq.read_table(part, columns=["path", "status"], filesystem=self.filesystem)
            counts.update(table.column("status").to_pylist())
            counts["files"] += len(set(table.column("path").to_pylist()))
        return counts


def run_batch(inputs: Sequence[str], out: str, options: RecognizerOptions | None = None, *,
              address: str | None = None, workers: int | None = None,
              batch_size: int = DEFAULT_BATCH_SIZE, overwrite: bool = False) -> BatchSummary:
    """Recognise every file named by ``inputs`` into the Parquet folder ``out`` (resuming
    it) on the Ray this process is connected to, else on the cluster at ``address``, else
    on a local Ray instance started (and shut down) for the job."""
    ray = require_ray()
    options = options or RecognizerOptions()
    check_sizes(workers, batch_size)
    paths = find_inputs(inputs)
    with EmotionRecognizer(options):  # a bad model or option fails here, before Ray starts
        pass
    folder = ResultFolder(out)
    parts = folder.parts()
    if parts and overwrite:
        folder.remove(parts)
        parts = []
    done = folder.done_paths(parts, options_json(options))
    todo = [p for p in paths if p not in done]
    if done:
        log.info("resuming %s: %d of %d files already done", out, len(paths) - len(todo),
                 len(paths))
    if not todo:
        log.info("nothing to do: every input is already in %s", out)
        return BatchSummary(out, 0, len(paths), 0, 0, 0, 0.0, 0.0)
    folder.create()
    owns_ray = not ray.is_initialized()  # else run on the Ray this process already joined
    ray_start_s = start_ray(address) if owns_ray else 0.0
    try:
        start = time.perf_counter()
        dataset = recognize_dataset(todo, options, workers=workers, batch_size=batch_size)
        dataset.write_parquet(folder.root, filesystem=folder.filesystem,
                              min_rows_per_file=ROWS_PER_PART,
                              ray_remote_args={"num_cpus": TASK_CPUS})
        seconds = time.perf_counter() - start
    except ray.exceptions.RayError as exc:  # a worker died, the cluster went away …
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise EmotionEdgeError(f"the Ray job stopped ({type(exc).__name__}: {first_line}); "
                               f"the parts already in {out} are kept: run the same command "
                               "again to resume") from None
    finally:
        if owns_ray:
            stop_ray()
    counts = folder.count_statuses(sorted(set(folder.parts()) - set(parts)))
    return BatchSummary(out, counts["files"], len(paths) - len(todo), counts["ok"],
                        counts["no face"], counts["error"], ray_start_s, seconds)
