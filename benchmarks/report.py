"""Write a benchmark's result: ``benchmark.json`` (every figure), ``benchmark.csv`` (one line
per artifact and thread count), ``benchmark.md`` (tables and plots), and the README's
results section, which is generated from the JSON, never typed. Everything here reads the
typed ``BenchmarkResult`` (``emotion_edge.data.benchmark``), never the JSON's keys.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

from ..data.benchmark import Accuracy, BenchmarkResult, HeadToHead, Row
from ..runtime.bundled import DEFAULT_STEM
from ..runtime.errors import ConfigError, DataError
from .datasets import NOT_APPLICABLE
from .plots import make_plots

REPORT_FILES = ("benchmark.json", "benchmark.csv", "benchmark.md")
README_START = "<!-- results:start -->"
README_END = "<!-- results:end -->"


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse to replace an existing report unless ``overwrite``."""
    existing = [name for name in REPORT_FILES if (out / name).exists()]
    if existing and not overwrite:
        raise ConfigError(f"{out} already holds a benchmark report ({', '.join(existing)}); "
                          "pass --overwrite to replace it, or --out to write elsewhere")


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def write_reports(result: BenchmarkResult, out: Path) -> list[Path]:
    """All report files and plots in ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    rounded = _rounded(result.to_dict())
    result = BenchmarkResult.from_dict(rounded)
    plots = make_plots(result, out / "plots")
    json_path = out / "benchmark.json"
    json_path.write_text(json.dumps(rounded, indent=1) + "\n", encoding="utf-8")
    csv_path = write_csv(result, out / "benchmark.csv")
    md_path = out / "benchmark.md"
    md_path.write_text(markdown(result, {k: p.relative_to(out) for k, p in plots.items()}),
                       encoding="utf-8")
    return [json_path, csv_path, md_path, *plots.values()]


def csv_rows(result: BenchmarkResult) -> list[dict[str, Any]]:
    """One flat dict per artifact and thread count."""
    lines = []
    labels = list(dict.fromkeys(lab for r in result.rows for lab in r.labels))
    for row in result.rows:
        for threads, run in row.threads.items():
            line = {k: getattr(row, k) for k in (
                "artifact", "title", "format", "precision", "backend", "engine_version",
                "peer", "status", "reason", "file_bytes", "parameters", "source_fp32")}
            e2e = run.end_to_end
            line.update(threads=int(threads), run_status=run.status,
                        engine_import_ms=run.engine_import_ms, load_ms=run.load_ms,
                        first_inference_ms=run.first_inference_ms,
                        **{f"latency_{k}": getattr(run.latency, k) for k in
                           ("mean_ms", "p50_ms", "p90_ms", "p99_ms", "runs")},
                        **{f"faces_per_s_batch{b}": t.faces_per_s
                           for b, t in run.throughput.items()},
                        baseline_rss_mb=run.baseline_rss_mb, peak_rss_mb=run.peak_rss_mb,
                        e2e_total_ms=e2e.mean_total_ms, e2e_detection_ms=e2e.mean_detection_ms,
                        e2e_classification_ms=e2e.mean_classification_ms)
            for name, acc in row.accuracy.items():
                line.update({f"{name}_images": acc.images, f"{name}_left_out": _left_out(acc),
                             f"{name}_top1": acc.top1, f"{name}_macro_f1": acc.macro_f1,
                             f"{name}_drop_pp": acc.drop_pp})
                line.update({f"{name}_recall_{lab}": acc.per_class_recall.get(lab)
                             for lab in labels})
            lines.append(line)
    return lines


def write_csv(result: BenchmarkResult, path: Path) -> Path:
    lines = csv_rows(result)
    fields = list(dict.fromkeys(k for line in lines for k in line))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(lines)
    return path


def _f(value: Any, digits: int = 2, scale: float = 1.0) -> str:
    return "–" if value is None else f"{value * scale:,.{digits}f}"


def _left_out(acc: Accuracy) -> int | None:
    """Images of the split left out before scoring (FER+'s dropped rows, say)."""
    return sum(acc.skipped.values()) if acc.status == "ok" else None


def _ferplus_column(result: BenchmarkResult) -> tuple[list[str], Callable[[Row], list[str]]]:
    """The FER+ top-1 column's header and cells: none when the run had no ``--ferplus``."""
    name = result.ferplus_dataset
    if name is None:
        return [], lambda row: []
    return [f"FER+ top-1 % ({name})"], lambda row: [_f(row.accuracy[name].top1, 2, 100)]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def _environment_lines(result: BenchmarkResult) -> list[str]:
    env, s = result.environment, result.settings
    load = f"{env.load_average_start} at start, {env.load_average_end} at end"
    packages = ", ".join(f"{k} {v}" for k, v in env.packages.items() if v)
    kind = "quick run" if s.quick else "full run"
    return [f"Measured {env.date} ({kind}, {s.duration_s} s) on {env.cpu}, "
            f"{env.cores} cores, {env.os}, Python {env.python}.",
            f"Load average (1, 5, 15 min): {load}.", f"Packages: {packages}."]


def summary_table(result: BenchmarkResult) -> list[str]:
    data, threads = result.primary_dataset, result.primary_threads
    ferplus_header, ferplus_cells = _ferplus_column(result)
    rows = []
    for r in result.rows:
        acc, run = r.accuracy[data], r.threads[threads]
        rows.append([r.name, r.title, r.status, _f(r.file_bytes, 0, 1 / 1024),
                     _f(r.parameters, 0), _f(acc.top1, 2, 100), *ferplus_cells(r),
                     _f(acc.macro_f1, 3), _f(acc.drop_pp, 2), _f(run.latency.p50_ms, 3),
                     _f(run.peak_rss_mb, 0)])
    return _table(["artifact", "kind", "status", "size (KiB)", "params", f"top-1 % ({data})",
                   *ferplus_header, "macro-F1", "lost vs fp32 (pp)", f"p50 ms ({threads} thr)",
                   "peak RSS (MiB)"], rows)


def speed_table(result: BenchmarkResult) -> list[str]:
    batches = [str(b) for b in result.settings.batches]
    rows = []
    for r in result.rows:
        for n, run in r.threads.items():
            lat = run.latency
            rows.append([r.name, n, run.status, _f(run.load_ms, 1),
                         _f(run.first_inference_ms, 2), _f(lat.mean_ms, 3),
                         _f(lat.p50_ms, 3), _f(lat.p90_ms, 3), _f(lat.p99_ms, 3),
                         *[_f(run.throughput[b].faces_per_s, 0) for b in batches],
                         _f(run.peak_rss_mb, 0)])
    return _table(["artifact", "threads", "status", "load ms", "first ms", "mean ms", "p50 ms",
                   "p90 ms", "p99 ms", *[f"faces/s @{b}" for b in batches], "peak RSS MiB"],
                  rows)


def head_to_head_table(result: BenchmarkResult) -> list[str]:
    """Our files (all but Keras) against the peer's TFLite file, timed round by round in
    one process."""
    if not result.head_to_head:
        return ["Not measured: the run had no measured peer TFLite file, or no file of ours "
                "besides Keras ones."]
    first = result.head_to_head[0]
    rows = [[h.artifact, _f(h.ratio), _f(h.ratio_min), _f(h.ratio_max),
             _f(median(h.p50_ms), 3), _f(median(h.peer_p50_ms), 3)]
            for h in result.head_to_head]
    return [f"Each file against {first.peer_artifact} (peer) on {first.threads} thread(s), "
            f"{len(first.p50_ms)} rounds of {first.runs} timed calls a file, the files taking "
            "turns within a round (see the notes).", "",
            *_table(["artifact", "x the peer (median)", "least", "most",
                     "p50 ms (median over rounds)", "peer p50 ms"], rows)]


def accuracy_tables(result: BenchmarkResult) -> list[str]:
    out: list[str] = []
    for data in result.datasets:
        name = data.name
        rows = [r for r in result.rows if r.accuracy[name].status == "ok"]
        out += [f"### {name}", ""]
        if not rows:
            reasons = {r.accuracy[name].reason for r in result.rows}
            out += [f"Not measured: {'; '.join(sorted(x for x in reasons if x))}", ""]
            continue
        labels = list(dict.fromkeys(lab for r in rows for lab in r.accuracy[name].labels))
        body = [[r.name, _f(acc.images, 0), _f(_left_out(acc), 0), _f(acc.top1, 2, 100),
                 _f(acc.drop_pp, 2), _f(acc.macro_f1, 3),
                 *[_f(acc.per_class_recall.get(lab), 2) for lab in labels]]
                for r in rows for acc in [r.accuracy[name]]]
        out += _table(["artifact", "images", "left out", "top-1 %", "lost vs fp32 (pp)",
                       "macro-F1", *[f"recall {lab}" for lab in labels]], body) + [""]
        out += _not_applicable_lines(result, name)
    return out


def _not_applicable_lines(result: BenchmarkResult, name: str) -> list[str]:
    """The rows a data set does not score because their labels differ from its own."""
    rows = [r for r in result.rows if _is_not_applicable(r.accuracy[name])]
    return [f"Not scored here: {r.name}: {r.accuracy[name].reason}." for r in rows] + (
        [""] if rows else [])


def _is_not_applicable(acc: Accuracy) -> bool:
    return (acc.reason or "").startswith(NOT_APPLICABLE)


def end_to_end_table(result: BenchmarkResult) -> list[str]:
    rows, photos = [], []
    for r in result.rows:
        for n, run in r.threads.items():
            e2e = run.end_to_end
            if e2e.status != "ok":
                continue
            photos = photos or e2e.photos
            rows.append([r.name, n, _f(e2e.mean_total_ms, 2), _f(e2e.mean_detection_ms, 2),
                         _f(e2e.mean_classification_ms, 2),
                         str(sum(p.faces for p in e2e.photos))])
    if not rows:
        return [f"Not measured: {result.settings.photos_reason or 'every row skipped'}."]
    found = ", ".join(f"{p.photo} ({p.faces})" for p in photos)
    return [f"Mean over {len(photos)} photos (faces found: {found}).", "",
            *_table(["artifact", "threads", "mean total ms", "detection ms",
                     "classification ms", "faces"], rows)]


def skipped_table(result: BenchmarkResult) -> list[str]:
    rows = [[r.name, r.status, r.reason or ""] for r in result.rows if r.status != "ok"]
    return _table(["artifact", "status", "reason"], rows) if rows else ["None."]


def markdown(result: BenchmarkResult, plots: dict[str, Path]) -> str:
    lines = ["# emotion-edge benchmark", "", *_environment_lines(result), "",
             "## Summary", "", *summary_table(result), "",
             f"![accuracy vs latency]({plots['accuracy_vs_latency']})", "",
             "## Latency, throughput and memory", "", *speed_table(result), "",
             "## Against the peer, round by round", "", *head_to_head_table(result), "",
             f"![latency distributions]({plots['latency_distributions']})", "",
             f"![file sizes]({plots['file_sizes']})", "",
             "## Accuracy", "", *accuracy_tables(result),
             f"![per-class recall]({plots['per_class_recall']})", "",
             f"![confusion matrices]({plots['confusion_matrices']})", "",
             f"![quantisation loss]({plots['quantisation_loss']})", "",
             "## End to end (detection + classification)", "", *end_to_end_table(result), "",
             "## Skipped or failed", "", *skipped_table(result), "",
             "## Notes", "", *[f"- {n}" for n in result.notes], ""]
    return "\n".join(lines)


def peer_ratios(result: BenchmarkResult) -> list[str]:
    """One sentence per bundled model's int8 TFLite file (the default's first) against the
    peer's TFLite file, per face at the primary thread count, for those measured: the
    head-to-head ratio (rounds in one process) when the run has it, else the ratio of the
    p50s each measured alone."""
    threads = result.primary_threads
    peer = next((r for r in result.rows if r.peer and r.format == "tflite"), None)
    b = peer.threads[threads].latency.p50_ms if peer is not None else None
    if b is None:
        return []
    ours = sorted((r for r in result.rows if not r.peer and r.format == "tflite"
                   and r.precision == "int8"), key=lambda r: r.stem != DEFAULT_STEM)
    pairs = {h.artifact: h for h in result.head_to_head if h.peer_artifact == peer.artifact}
    sentences = []
    for row in ours:
        a = row.threads[threads].latency.p50_ms
        if row.name in pairs:
            sentences.append(_head_to_head_sentence(pairs[row.name], a, b))
        elif a is not None:
            sentences.append(f"{row.artifact} took {a / b:.2f} times the peer's {peer.artifact} "
                             f"per face on {threads} thread(s), in this run ({a:.3f} against "
                             f"{b:.3f} ms p50).")
    return sentences


def _head_to_head_sentence(h: HeadToHead, alone: float | None, peer_alone: float) -> str:
    alone_text = (f"; each measured alone in its own process, {alone:.3f} against "
                  f"{peer_alone:.3f} ms p50" if alone is not None else "")
    return (f"{h.artifact} took {h.ratio:.2f} times the peer's {h.peer_artifact} per face on "
            f"{h.threads} thread(s) in this run: the median over {len(h.p50_ms)} rounds timed "
            f"in turn in one process (least {h.ratio_min:.2f}, most {h.ratio_max:.2f}; "
            f"{median(h.p50_ms):.3f} against {median(h.peer_p50_ms):.3f} ms){alone_text}.")


def readme_section(result: BenchmarkResult, report_dir: str) -> str:
    """The README's results section: a short table and where the full report is."""
    data, threads = result.primary_dataset, result.primary_threads
    env = result.environment
    ferplus_header, ferplus_cells = _ferplus_column(result)
    rows = [[r.name, r.title, _f(r.file_bytes, 0, 1 / 1024),
             _f(r.accuracy[data].top1, 2, 100), *ferplus_cells(r),
             _f(r.accuracy[data].macro_f1, 3),
             _f(r.threads[threads].latency.p50_ms, 3), _f(r.threads[threads].peak_rss_mb, 0)]
            for r in result.rows if r.status == "ok"]
    kind = (f"quick run, accuracy on a {result.settings.sample}-image sample"
            if result.settings.quick else "full run")
    lines = [f"Measured {env.date} ({kind}) on {env.cpu} ({env.cores} cores, {env.os}); "
             f"full report with plots: [{report_dir}/benchmark.md]({report_dir}/benchmark.md).",
             "", *_table(["artifact", "kind", "size (KiB)", f"top-1 % ({data})",
                          *ferplus_header, f"macro-F1 ({data})",
                          f"p50 ms/face ({threads} thr)", "peak RSS (MiB)"], rows), ""]
    lines += [f"- {ratio}" for ratio in peer_ratios(result)]
    lines += [f"- {n}" for n in result.notes if "peer" in n.lower() or n.startswith("FER+")]
    lines += ["", f"_Generated by `emotion-edge bench --readme` from `{report_dir}/"
                  "benchmark.json`; do not edit by hand._"]
    return "\n".join(lines)


def update_readme(readme: Path, result_json: Path) -> Path:
    """Replace the text between the results markers of ``readme`` with ``readme_section``."""
    if not result_json.is_file():
        raise DataError(f"{result_json}: no benchmark result; run 'emotion-edge bench' first")
    result = BenchmarkResult.load(result_json)
    try:
        text = readme.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {readme}: {exc}") from None
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ConfigError(f"{readme}: needs the markers {README_START} and {README_END} "
                          "(in that order) around the results section")
    report_dir = Path(os.path.relpath(result_json.parent, readme.parent)).as_posix()
    section = readme_section(result, report_dir)
    new = f"{text[:start + len(README_START)]}\n{section}\n{text[end:]}"
    tmp = readme.with_name(readme.name + ".tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, readme)
    return readme
