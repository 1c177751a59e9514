"""Run a benchmark: every target x thread count in its own child process, then one
``BenchmarkResult`` (the schema in ``emotion_edge.data.benchmark``), which ``report`` writes as
``benchmark.json``: one row per artifact, every field present in every row (``None`` where not
measured; ``status`` and ``reason`` say why).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ..data.benchmark import (
    Accuracy,
    BenchmarkResult,
    DatasetInfo,
    Environment,
    HeadToHead,
    Latency,
    PhotoTiming,
    Row,
    RunSettings,
    ThreadRun,
    Throughput,
)
from ..data.metrics import classification_report
from ..data.versions import installed_version, installed_versions
from ..runtime.errors import DataError
from ..runtime.formats import BACKENDS
from ..runtime.image import IMAGE_SUFFIXES
from ..runtime.sidecar import InputSpec
from .child import BLOCK
from .datasets import FERPLUS_SET, CropStore, EvalSet, eval_sets
from .peer import SELECTION_NOTE
from .targets import Target, select_targets

log = logging.getLogger(__name__)

#: Distributions whose versions the report records.
PACKAGES = ("emotion-edge", "numpy", "pillow", "ai-edge-litert", "onnxruntime", "tensorflow",
            "tensorflow-cpu", "keras", "opencv-python-headless", "matplotlib")


@dataclass(frozen=True)
class Settings:
    """How hard to measure: timed runs, batch sizes, and the evaluation sample."""

    warmup: int
    runs: int
    batches: tuple[int, ...]
    batch_warmup: int
    batch_runs: int
    photo_runs: int
    sample: int | None  # evaluate on a stratified sample of this many images; None: all
    rounds: int         # head-to-head rounds against the peer (``runs`` calls a file a round)


FULL = Settings(warmup=20, runs=300, batches=(32, 64), batch_warmup=3, batch_runs=10,
                photo_runs=5, sample=None, rounds=15)
QUICK = Settings(warmup=5, runs=50, batches=(32, 64), batch_warmup=1, batch_runs=1,
                 photo_runs=1, sample=500, rounds=3)


@dataclass(frozen=True)
class BenchOptions:
    """What to benchmark and where the inputs are."""

    data: tuple[str, ...] = ()
    ferplus: str | None = None          # FER+ votes: adds FER2013 PrivateTest on FER+ labels
    models: tuple[str, ...] = ()        # empty: every bundled model
    backends: tuple[str, ...] = ()      # empty: all
    threads: tuple[int, ...] = (1, 2)
    quick: bool = False
    photos: str | None = None
    peer: bool = True
    cache_dir: str | None = None
    seed: int = 0
    timeout_s: float = 900.0

    @property
    def settings(self) -> Settings:
        return QUICK if self.quick else FULL


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> Environment:
    """The machine and software a benchmark ran on (no engine is imported here)."""
    return Environment(
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        cpu=cpu_model(), cores=os.cpu_count(), machine=platform.machine(),
        os=platform.platform(), python=platform.python_version(),
        load_average_start=_load_average(),
        packages=installed_versions(PACKAGES))


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


@cache
def engine_version(module: str) -> str | None:
    """Version of the distribution that provides import name ``module``."""
    dists = metadata.packages_distributions().get(module.split(".")[0], [])
    return installed_version(*dists)


def find_photos(folder: str | None) -> tuple[list[str], str | None]:
    """Photo paths in ``folder`` for the end-to-end timing, or the reason there are none."""
    if not folder:
        return [], "no --photos folder given"
    path = Path(folder)
    if not path.is_dir():
        return [], f"{path}: no such folder"
    photos = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return (photos, None) if photos else ([], f"{path}: holds no photos")


def run_child(request: dict[str, Any], folder: Path, number: int | str,
              timeout_s: float) -> dict[str, Any]:
    """Run one measuring process; an error dict when it fails, times out or crashes."""
    req, res = folder / f"request-{number}.json", folder / f"result-{number}.json"
    req.write_text(json.dumps(request), encoding="utf-8")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [sys.executable, "-m", "emotion_edge.benchmarks.child", str(req), str(res)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env,
                              check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"the measuring process timed out after {timeout_s:.0f} s"}
    if done.returncode == 0 and res.is_file():
        return json.loads(res.read_text(encoding="utf-8"))
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    return {"error": f"the measuring process exited with code {done.returncode}: "
                     f"{lines[-1] if lines else 'no message'}"}


def empty_row(target: Target, sets: list[EvalSet], options: BenchOptions) -> Row:
    """The row of ``target`` with nothing measured yet."""
    labels = list(target.sidecar.get("labels") or ())
    row = target.row
    source = target.sidecar.get("source")
    source = source if isinstance(source, dict) else {}
    batches = options.settings.batches
    return Row(
        artifact=target.name, stem=target.stem, model=target.sidecar.get("name"),
        title=target.title, format=row.format if row else None,
        precision=row.precision if row else None, backend=target.backend,
        engine_version=engine_version(BACKENDS[target.backend].module) if row else None,
        peer=target.peer, path=str(target.path) if target.path else None,
        status="skipped", reason=target.skip_reason,
        file_bytes=target.size_bytes,
        parameters=target.sidecar.get("parameters") or source.get("parameters"),
        sha256=target.sidecar.get("sha256"), input=target.sidecar.get("input"),
        labels=labels, exported_from=source.get("file"), source_fp32=None,
        accuracy={s.name: Accuracy(labels=labels, per_class_recall=dict.fromkeys(labels))
                  for s in sets},
        threads={str(n): ThreadRun(throughput={str(b): Throughput() for b in batches})
                 for n in options.threads})


def _fill_run(entry: ThreadRun, result: dict[str, Any], photo_reason: str | None) -> None:
    """Copy a measuring process's reply (its own JSON protocol, see ``child``) into ``entry``."""
    if "error" in result:
        entry.status, entry.reason = "failed", result["error"]
        entry.end_to_end.reason = result["error"]
        return
    entry.status = "ok"
    entry.engine_import_ms = result["engine_import_ms"]
    entry.load_ms = result["load_ms"]
    entry.first_inference_ms = result["first_inference_ms"]
    entry.baseline_rss_mb = result["baseline_rss_mb"]
    entry.peak_rss_mb = result["peak_rss_mb"]
    entry.latency = Latency(**result["latency"])
    entry.throughput = {b: Throughput(**t) for b, t in result["throughput"].items()}
    e2e = entry.end_to_end
    photos = [PhotoTiming(**p) for p in result.get("end_to_end", {}).get("photos", [])]
    if not photos:
        e2e.reason = photo_reason
        return
    e2e.status, e2e.photos = "ok", photos
    e2e.mean_total_ms = float(np.mean([p.total_ms for p in photos]))
    e2e.mean_detection_ms = float(np.mean([p.detection_ms for p in photos]))
    e2e.mean_classification_ms = float(np.mean([p.classification_ms for p in photos]))


def _fill_accuracy(entry: Accuracy, y: np.ndarray, probs: np.ndarray,
                   skipped: dict[str, int]) -> None:
    report = classification_report(y, probs, tuple(entry.labels))
    entry.status, entry.images, entry.skipped = "ok", report["images"], skipped
    entry.top1, entry.macro_f1 = report["accuracy"], report["macro_f1"]
    entry.confusion_matrix = report["confusion_matrix"]
    entry.per_class_recall = {k: v["recall"] for k, v in report["per_class"].items()}


class _Progress:
    def __init__(self, total: int) -> None:
        self.total, self.done, self.start = total, 0, time.monotonic()

    def step(self) -> str:
        self.done += 1
        return f"[{self.done}/{self.total}, {time.monotonic() - self.start:.0f} s]"


def measure_target(target: Target, options: BenchOptions, sets: list[EvalSet], store: CropStore,
                   photos: tuple[list[str], str | None], folder: Path,
                   progress: _Progress) -> Row:
    """One row: run a child per thread count; the first also predicts the evaluation sets."""
    row = empty_row(target, sets, options)
    if target.skip_reason:
        log.info("%s skipped: %s", target.name, target.skip_reason)
        for entry in [*row.threads.values(), *row.accuracy.values()]:
            entry.reason = target.skip_reason
        return row
    spec = InputSpec.from_dict(target.sidecar["input"])
    labels = tuple(target.sidecar["labels"])
    crops, truth, skipped = {}, {}, {}
    for data in sets:
        try:
            path, truth[data.name], skipped[data.name] = store.crops(data, spec, labels)
            crops[data.name] = str(path)
        except DataError as exc:
            row.accuracy[data.name].reason = str(exc)
    s = options.settings
    for i, threads in enumerate(options.threads):
        request = {
            "path": str(target.path), "backend": target.backend, "threads": threads,
            "warmup": s.warmup, "runs": s.runs, "batches": list(s.batches),
            "batch_warmup": s.batch_warmup, "batch_runs": s.batch_runs,
            "eval": crops if i == 0 else {}, "eval_out": str(folder),
            "photos": photos[0], "photo_runs": s.photo_runs, "seed": options.seed,
        }
        result = run_child(request, folder, progress.done, options.timeout_s)
        entry = row.threads[str(threads)]
        _fill_run(entry, result, photos[1])
        for name, probs_path in result.get("predictions", {}).items():
            _fill_accuracy(row.accuracy[name], truth[name], np.load(probs_path), skipped[name])
        log.info("%s %s, %d thread(s): %s", progress.step(), target.name, threads,
                 _summary(entry, row.accuracy))
    first = row.threads[str(options.threads[0])]
    for acc in row.accuracy.values():
        if acc.status != "ok" and not acc.reason:
            acc.reason = first.reason
    statuses = {e.status for e in row.threads.values()}
    row.status = "failed" if "failed" in statuses else "ok"
    row.reason = next((e.reason for e in row.threads.values() if e.reason), None)
    return row


def _summary(entry: ThreadRun, accuracy: dict[str, Accuracy]) -> str:
    if entry.status != "ok":
        return f"failed: {entry.reason}"
    parts = [f"p50 {entry.latency.p50_ms:.3f} ms", f"peak RSS {entry.peak_rss_mb:.0f} MiB"]
    parts += [f"{name} top-1 {a.top1:.4f}" for name, a in accuracy.items() if a.status == "ok"]
    return ", ".join(parts)


def head_to_head_record(artifact: str, peer_artifact: str, threads: int, runs: int,
                        p50_ms: list[float], peer_p50_ms: list[float]) -> HeadToHead:
    """The ratio of ``p50_ms`` to the peer's, round by round: its median, least and most."""
    ratios = [a / b for a, b in zip(p50_ms, peer_p50_ms, strict=True)]
    return HeadToHead(artifact=artifact, peer_artifact=peer_artifact, threads=threads,
                      runs=runs, p50_ms=list(p50_ms), peer_p50_ms=list(peer_p50_ms),
                      ratio=float(np.median(ratios)), ratio_min=min(ratios),
                      ratio_max=max(ratios))


def head_to_head(rows: list[Row], options: BenchOptions, folder: Path) -> list[HeadToHead]:
    """Each of our measured files but the Keras ones (TFLite, ONNX, OpenVINO, on each backend
    measured) against the peer's measured TFLite file, at the first thread count, timed round
    by round in one process (``child.measure_head_to_head``); empty when either side was not
    measured."""
    peer = next((r for r in rows if r.peer and r.format == "tflite" and r.status == "ok"), None)
    ours = [r for r in rows if not r.peer and r.format != "keras" and r.status == "ok"]
    if peer is None or not ours:
        return []
    s, threads = options.settings, options.threads[0]
    request = {"artifacts": [{"path": r.path, "backend": r.backend} for r in (peer, *ours)],
               "threads": threads, "rounds": s.rounds, "runs": s.runs, "warmup": s.warmup,
               "seed": options.seed}
    log.info("timing %d file(s) against the peer's TFLite file, %d rounds", len(ours), s.rounds)
    result = run_child(request, folder, "head-to-head", options.timeout_s)
    if "error" in result:
        log.warning("the head-to-head timing failed: %s", result["error"])
        return []
    peer_p50, *mine = result["p50_ms"]
    return [head_to_head_record(row.name, peer.artifact, threads, s.runs, p50, peer_p50)
            for row, p50 in zip(ours, mine, strict=True)]


def link_fp32_sources(rows: list[Row]) -> None:
    """Give each quantised row its fp32 source and the accuracy drop: the file its sidecar
    says it was exported from if measured, else the same stem's Keras or same-format fp32."""
    by_key: dict[tuple, Row] = {}
    by_name: dict[tuple, Row] = {}
    for r in rows:  # a file on several backends: its own backend's row, listed first
        by_key.setdefault((r.stem, r.peer, r.format, r.precision), r)
        if r.precision == "fp32":
            by_name.setdefault((r.artifact, r.peer), r)
    for row in rows:
        if row.precision in (None, "fp32"):
            continue
        source = (by_name.get((row.exported_from, row.peer))
                  or by_key.get((row.stem, row.peer, "keras", "fp32"))
                  or by_key.get((row.stem, row.peer, row.format, "fp32")))
        if source is None:
            continue
        row.source_fp32 = source.artifact
        for name, acc in row.accuracy.items():
            src = source.accuracy.get(name)
            if src and src.top1 is not None and acc.top1 is not None:
                acc.source_top1 = src.top1
                acc.drop_pp = (src.top1 - acc.top1) * 100.0


FERPLUS_NOTE = (
    f"FER+ ({FERPLUS_SET}): FER2013's PrivateTest rows scored against the FER+ majority label "
    "(the --ferplus votes file), on the rows the FER+ authors score on (votes cast by one "
    "annotator alone dropped, then one emotion must hold more than half of the votes); a "
    "7-class model is scored on the rows whose majority is one of its "
    "labels (contempt rows dropped), an 8-class model on every kept row. A model whose labels "
    "are not FER2013's seven has no FER2013 figure: it would be compared across label sets.")


def _notes(rows: list[Row], options: BenchOptions) -> list[str]:
    s = options.settings
    notes = [
        f"Latency: Predictor.predict on one random input in the model's input spec "
        f"(preprocessing excluded), {s.runs} timed runs after {s.warmup} warm-up runs; "
        f"throughput: faces per second from the median of {s.batch_runs} calls per batch size.",
        "Peak memory: peak resident set (VmHWM on Linux, else ru_maxrss) of a fresh process "
        "per artifact and thread count, after load, warm-up, batch-1 runs and the largest "
        "batch (evaluation and photos not included); the baseline is the process before the "
        "engine is imported.",
        "End-to-end: EmotionRecognizer.analyze() per photo (image already decoded), detection "
        "(including cropping) and classification (preprocessing and model) timed separately.",
    ]
    if any(r.peer for r in rows):
        notes.append(f"Against the peer: after every artifact was measured alone, each of our "
                     f"files but the Keras ones and the peer's TFLite file were loaded in one "
                     f"process and timed in {s.rounds} rounds at {options.threads[0]} "
                     f"thread(s); within a round the files take turns in blocks of {BLOCK} "
                     f"calls until each has "
                     f"{s.runs} timed calls (after {s.warmup} warm-up calls each), and the "
                     f"median is kept; the ratio is the median over rounds of a file's median "
                     f"over the peer's in the same round, so a change in the machine's speed "
                     f"reaches both alike.")
        notes.append(SELECTION_NOTE)
        notes.append("The peer runs through our harness with its own input spec (64x64 gray, "
                     "(x/255 - 0.5) * 2). We resize with Pillow's bilinear filter where fer "
                     "uses cv2.resize (bilinear); on FER2013's 48x48 crops the two differ by at "
                     "most one grey level.")
    if options.ferplus:
        notes.append(FERPLUS_NOTE)
    if options.quick:
        notes.append(f"Quick run: accuracy on a stratified sample of {s.sample} images (rows "
                     "left out, such as FER+'s dropped rows, are counted over the whole split) "
                     "and few timed runs; use the full run for published figures.")
    return notes


def run_benchmark(options: BenchOptions) -> BenchmarkResult:
    """Measure every target; returns the result that ``report`` writes."""
    started = time.monotonic()
    env = environment()
    targets = select_targets(options.models, options.backends, options.peer, options.cache_dir)
    sets = eval_sets(options.data, options.ferplus)
    photos = find_photos(options.photos)
    runnable = sum(1 for t in targets if not t.skip_reason)
    log.info("benchmarking %d artifact(s) (%d runnable) x %d thread setting(s)%s",
             len(targets), runnable, len(options.threads), ", quick" if options.quick else "")
    progress = _Progress(runnable * len(options.threads))
    with tempfile.TemporaryDirectory(prefix="emotion-edge-bench-") as tmp:
        store = CropStore(tmp, options.settings.sample, options.seed)
        rows = [measure_target(t, options, sets, store, photos, Path(tmp), progress)
                for t in targets]
        pairs = head_to_head(rows, options, Path(tmp))
    link_fp32_sources(rows)
    env.load_average_end = _load_average()
    settings = RunSettings(
        **{**asdict(options.settings), "batches": list(options.settings.batches)},
        quick=options.quick, threads=list(options.threads), seed=options.seed,
        photos=options.photos, photos_reason=photos[1],
        duration_s=round(time.monotonic() - started, 1))
    return BenchmarkResult(environment=env, settings=settings,
                           datasets=[DatasetInfo(**asdict(s)) for s in sets],
                           notes=_notes(rows, options), rows=rows, head_to_head=pairs)
