"""What the About tab shows: a model's figures in words and percentages (named with the
labels they were measured on: FER2013's or the FER+ majority), each model's accuracy, file
sizes, and the benchmark report's headline rows."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ..data.benchmark import BenchmarkResult, Row
from ..runtime.bundled import (
    ACCURACY_SPLITS,
    FER2013_SOURCE,
    FERPLUS_SOURCE,
    accuracy_by_labels,
)
from ..runtime.errors import DataError, EmotionEdgeError
from ..runtime.sidecar import read_sidecar

log = logging.getLogger(__name__)


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 ** 2:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024 ** 2:.1f} MB"


def accuracy_figures(sidecar: dict[str, Any], limit: int = 12) -> dict[str, float]:
    """Numbers in the sidecar whose key path names accuracy, F1, agreement or difference,
    e.g. ``{"accuracy.privatetest": 0.68, "parity.top1_agreement": 0.99}``; per-class
    figures, confusion matrices and image counts are left out."""
    found: dict[str, float] = {}
    skip = {"input", "labels", "per_class", "confusion_matrix", "images", "support"}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key not in skip and not str(key).endswith("_images"):
                    walk(value, f"{path}.{key}" if path else str(key))
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            words = ("acc", "f1", "agreement", "diff")
            if any(word in path.lower() for word in words) and len(found) < limit:
                found[path] = float(node)

    walk(sidecar, "")
    return found


#: How the About card names the metrics of a sidecar's figure paths.
_METRICS = {"accuracy": "accuracy", "macro_f1": "macro F1", "f1": "F1",
            "top1_agreement": "top-1 agreement with the source model",
            "max_abs_diff": "largest probability difference from the source model"}


def split_name(split: str, labels_from: str = FER2013_SOURCE) -> str:
    """``privatetest`` scored on ``labels_from`` in words: "FER2013 PrivateTest", "FER+
    PrivateTest (majority labels)"."""
    name = ACCURACY_SPLITS[split]
    if labels_from == FER2013_SOURCE:
        return f"FER2013 {name}"
    if labels_from == FERPLUS_SOURCE:
        return f"FER+ {name} (majority labels)"
    return f"{name} ({labels_from} labels)"


def figure_label(path: str, labels_from: str = FER2013_SOURCE) -> str:
    """A reader's name for a figure path from :func:`accuracy_figures`, its splits scored on
    ``labels_from`` (``ferplus_*`` figures on the FER+ majority):
    ``source.accuracy.publictest_macro_f1`` -> "Source model macro F1 on FER2013 PublicTest"."""
    metric, split = "accuracy", None
    for part in path.split("."):
        on = FERPLUS_SOURCE if part.startswith("ferplus_") else labels_from
        part = part.removeprefix("ferplus_")
        head, _, rest = part.partition("_")
        if head in ACCURACY_SPLITS:
            split = split_name(head, on)
            metric = _METRICS.get(rest, rest.replace("_", " ")) if rest else metric
        elif part in _METRICS:
            metric = _METRICS[part]
        elif part not in ("source", "parity", "metrics"):
            split = part.replace("_", " ")
    words = ("source model " if path.startswith("source.") else "") + metric
    text = words + (f" on {split}" if split else "")
    return text[0].upper() + text[1:]


def figure_value(path: str, value: float) -> str:
    """A fraction (accuracy, F1, agreement) as a percentage; other figures as numbers."""
    if "diff" not in path and 0.0 <= value <= 1.0:
        return f"{100 * value:.2f}%"
    return f"{value:.3g}"


#: The About tab's table of models: one row per model and label set its accuracy is on.
MODEL_HEADERS = ("model", "classes", "accuracy on", *ACCURACY_SPLITS.values())


def model_rows(stems: dict[str, Path]) -> list[list]:
    """Each model's (``stem -> the artifact whose sidecar speaks for it``) recorded
    accuracy, a row per label set it was measured on; a model without figures gets one row
    of dashes, an unreadable sidecar is logged and left out."""
    rows = []
    for stem, path in stems.items():
        try:
            sidecar = read_sidecar(path)
        except EmotionEdgeError as exc:
            log.warning("%s: %s", stem, exc)
            continue
        classes = len(sidecar["labels"])
        by_labels = accuracy_by_labels(sidecar) or {"—": {}}
        for on, figures in by_labels.items():
            on = f"{on} labels" if on != "—" else on
            rows.append([stem, classes, on, *(figure_value(s, figures[s]) if s in figures
                                              else "—" for s in ACCURACY_SPLITS)])
    return rows


def read_benchmark(report: str | os.PathLike | None) -> tuple[Path | None, list[dict]]:
    """The accuracy-latency plot and one summary row per artifact of the benchmark report
    written by ``emotion-edge bench`` (``report`` is its folder or its ``benchmark.json``);
    missing parts are None / empty, and an unreadable report is logged and left out."""
    if report is None:
        return None, []
    report = Path(report)
    folder = report if report.is_dir() else report.parent
    table = report if report.suffix == ".json" else folder / "benchmark.json"
    plot = folder / "plots" / "accuracy_vs_latency.png"
    rows: list[dict] = []
    if table.is_file():
        try:
            result = BenchmarkResult.load(table)
        except DataError as exc:
            log.warning("unreadable benchmark report: %s", exc)
        else:
            rows = [_benchmark_row(row, result.primary_dataset) for row in result.rows]
    return (plot if plot.is_file() else None), rows


def _benchmark_row(row: Row, dataset: str) -> dict:
    """One artifact's headline figures for the About tab: top-1 on the report's first data
    set, latency and memory at one thread."""
    top1 = row.accuracy[dataset].top1 if dataset in row.accuracy else None
    one_thread = row.threads.get("1")
    p50 = one_thread.latency.p50_ms if one_thread else None
    rss = one_thread.peak_rss_mb if one_thread else None
    return {
        "artifact": row.name, "kind": row.title, "status": row.status,
        "top-1 %": None if top1 is None else round(100 * top1, 2),
        "p50 ms (1 thread)": p50,
        "size KiB": None if row.file_bytes is None else round(row.file_bytes / 1024),
        "peak RSS MiB": None if rss is None else round(rss),
    }
