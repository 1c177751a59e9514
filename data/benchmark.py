"""The benchmark result's schema: typed records for ``reports/benchmark.json``.

``emotion-edge bench`` writes a ``BenchmarkResult``; its report, plots and the app read one
back with ``BenchmarkResult.load``. The schema lives in this shared, engine-free layer (not in
``benchmarks/``) so the app reads the report without importing the benchmark stage, and no
stage reads another's JSON by string keys. Every field is present in every record: ``None``
where a figure was not measured, with ``status`` and ``reason`` saying why; only a field
marked ``ADDED_LATER`` may be absent from a report written before it existed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runtime.errors import DataError

Status = str  # "ok", "skipped" or "failed"
#: Field metadata of a field added after reports were first written: a report written before
#: it (such as the committed ``reports/benchmark.json``) reads with the field's default.
ADDED_LATER = {"added_later": True}


@dataclass
class Latency:
    """Batch-1 latency of ``Predictor.predict`` over ``runs`` timed calls."""

    mean_ms: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    warmup: int | None = None
    runs: int | None = None
    samples_ms: list[float] = field(default_factory=list)


@dataclass
class Throughput:
    """Faces per second at one batch size, from the median of ``runs`` calls."""

    batch_ms: float | None = None
    faces_per_s: float | None = None
    runs: int | None = None


@dataclass
class PhotoTiming:
    """Mean ``EmotionRecognizer.analyze`` time on one photo."""

    photo: str
    faces: int
    detection_ms: float
    classification_ms: float
    total_ms: float
    runs: int


@dataclass
class EndToEnd:
    """Detection plus classification on the ``--photos`` folder."""

    status: Status = "skipped"
    reason: str | None = None
    photos: list[PhotoTiming] = field(default_factory=list)
    mean_total_ms: float | None = None
    mean_detection_ms: float | None = None
    mean_classification_ms: float | None = None


@dataclass
class ThreadRun:
    """Everything one measuring process found at one thread count."""

    status: Status = "skipped"
    reason: str | None = None
    engine_import_ms: float | None = None
    load_ms: float | None = None
    first_inference_ms: float | None = None
    latency: Latency = field(default_factory=Latency)
    throughput: dict[str, Throughput] = field(default_factory=dict)  # batch size -> figures
    baseline_rss_mb: float | None = None
    peak_rss_mb: float | None = None
    end_to_end: EndToEnd = field(default_factory=EndToEnd)


@dataclass
class Accuracy:
    """One artifact's scores on one evaluation set."""

    status: Status = "skipped"
    reason: str | None = None
    images: int | None = None
    top1: float | None = None
    macro_f1: float | None = None
    per_class_recall: dict[str, float | None] = field(default_factory=dict)
    confusion_matrix: list[list[int]] | None = None
    labels: list[str] = field(default_factory=list)
    source_top1: float | None = None  # the fp32 source's top-1, for quantised artifacts
    drop_pp: float | None = None      # percentage points lost against that source
    # images of the split left out before scoring, by reason (e.g. FER+'s not-a-face rows)
    skipped: dict[str, int] = field(default_factory=dict, metadata=ADDED_LATER)


@dataclass
class Row:
    """One artifact: what it is, its accuracy per data set and its run per thread count."""

    artifact: str
    stem: str
    model: str | None
    title: str
    format: str | None
    precision: str | None
    backend: str | None
    engine_version: str | None
    peer: bool
    path: str | None
    status: Status
    reason: str | None
    file_bytes: int | None
    parameters: int | None
    sha256: str | None
    input: dict[str, Any] | None
    labels: list[str]
    exported_from: str | None
    source_fp32: str | None
    accuracy: dict[str, Accuracy]   # data set name -> scores
    threads: dict[str, ThreadRun]   # thread count -> run

    @property
    def name(self) -> str:
        """The artifact's file name, marked when it is the peer's, and with its backend when
        that is not its format's own ("accurate.int8.onnx on openvino")."""
        from ..runtime.formats import own_backend

        name = f"{self.artifact} (peer)" if self.peer else self.artifact
        own = own_backend(self.format) if self.format else None
        return name if self.backend in (None, own) else f"{name} on {self.backend}"


@dataclass
class Environment:
    """The machine and software the benchmark ran on."""

    date: str
    cpu: str
    cores: int | None
    machine: str
    os: str
    python: str
    load_average_start: list[float] | None
    packages: dict[str, str | None]
    load_average_end: list[float] | None = None


@dataclass
class RunSettings:
    """How hard the benchmark measured, and on what."""

    warmup: int
    runs: int
    batches: list[int]
    batch_warmup: int
    batch_runs: int
    photo_runs: int
    sample: int | None
    quick: bool
    threads: list[int]
    seed: int
    photos: str | None
    photos_reason: str | None
    duration_s: float
    rounds: int | None = field(default=None, metadata=ADDED_LATER)  # head-to-head rounds


@dataclass
class DatasetInfo:
    """One evaluation set: named by ``--data``, or FER2013's PrivateTest relabelled by
    ``--ferplus``."""

    name: str
    path: str
    kind: str    # "fer2013-csv", "ferplus" or "image-folder"
    split: str
    ferplus: str | None = field(default=None, metadata=ADDED_LATER)  # FER+ votes, kind "ferplus"


@dataclass
class HeadToHead:
    """One of our files (by its row's name) against the peer's TFLite file, timed in one
    process round by round: in each round the files of the comparison take turns in short
    blocks of calls until each has ``runs`` (the median kept), so a change in the machine's
    speed reaches both alike."""

    artifact: str
    peer_artifact: str
    threads: int
    runs: int                 # timed calls per file per round
    p50_ms: list[float]       # this file's median per round
    peer_p50_ms: list[float]  # the peer's median in the same rounds
    ratio: float              # the median over rounds of p50_ms / peer_p50_ms
    ratio_min: float
    ratio_max: float


@dataclass
class BenchmarkResult:
    """The whole of ``benchmark.json``."""

    environment: Environment
    settings: RunSettings
    datasets: list[DatasetInfo]
    notes: list[str]
    rows: list[Row]
    head_to_head: list[HeadToHead] = field(default_factory=list, metadata=ADDED_LATER)

    @property
    def primary_dataset(self) -> str:
        """The data set the summary tables and plots use: the first one."""
        return self.datasets[0].name

    @property
    def ferplus_dataset(self) -> str | None:
        """The FER+ set (FER2013's PrivateTest on FER+ labels), if the run had ``--ferplus``."""
        return next((d.name for d in self.datasets if d.kind == "ferplus"), None)

    @property
    def primary_threads(self) -> str:
        """The thread count the summary tables and plots use: the first one."""
        return str(self.settings.threads[0])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> BenchmarkResult:
        """A result from its JSON form; DataError naming the first field that is wrong."""
        return _build(cls, data, "benchmark")

    @classmethod
    def load(cls, path: str | os.PathLike) -> BenchmarkResult:
        """Read ``benchmark.json``; DataError when it is missing, unreadable or off-schema."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: cannot read the benchmark result ({exc})") from None
        try:
            return cls.from_dict(data)
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from None


def _build(tp: Any, value: Any, where: str) -> Any:
    """``value`` converted to the annotated type ``tp``, recursively."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build_record(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _build(inner, value, where)
    if origin is list:
        _expect(value, list, where)
        return [_build(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _expect(value, dict, where)
        return {k: _build(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        _expect(value, (int, float), where)
        return float(value)
    if isinstance(tp, type) and tp is not Any:
        _expect(value, tp, where)
    return value


def _build_record(cls: type, value: Any, where: str) -> Any:
    _expect(value, dict, where)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - names)
    if unknown:
        raise DataError(f"{where}: unknown field(s) {', '.join(unknown)}")
    later = {f.name for f in dataclasses.fields(cls) if f.metadata.get("added_later")}
    missing = sorted(names - later - set(value))
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)}")
    return cls(**{name: _build(hints[name], value[name], f"{where}.{name}")
                  for name in names if name in value})


def _expect(value: Any, kind: type | tuple[type, ...], where: str) -> None:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, (int, float))):
        raise DataError(f"{where}: expected {getattr(kind, '__name__', 'a number')}, "
                        f"got {type(value).__name__}")
