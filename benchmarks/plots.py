"""The benchmark's figures (Matplotlib, Agg backend, PNG), all drawn from a ``BenchmarkResult``.

A figure whose data was not measured (no data set, every row skipped) is still written,
with a line saying why, so a report always has the same files.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from ..data.benchmark import BenchmarkResult, Row  # noqa: E402

PEER_COLOR = "tab:red"
OWN_COLOR = "tab:blue"

def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _message(path: Path, title: str, text: str) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    return _save(fig, path)


def _plain_log_axis(axis) -> None:
    """Log-scale ticks as plain numbers (0.5, 2) rather than powers of ten."""
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def _measured(result: BenchmarkResult, data: str) -> list[Row]:
    """Rows with accuracy on ``data`` and latency at the primary thread count."""
    threads = result.primary_threads
    return [r for r in result.rows
            if r.accuracy[data].top1 is not None
            and r.threads[threads].latency.p50_ms is not None]


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both lower x and higher y, by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -np.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def accuracy_vs_latency(result: BenchmarkResult, path: Path) -> Path:
    """Top-1 against p50 latency on the primary set, and on the FER+ set below it when the
    run had one (8-class models have only that one)."""
    sets = [d for d in (result.primary_dataset, result.ferplus_dataset) if d]
    panels = [(data, _measured(result, data)) for data in sets]
    panels = [(data, rows) for data, rows in panels if rows]
    if not panels:
        title = (f"Top-1 on {result.primary_dataset} vs p50 latency "
                 f"({result.primary_threads} thread)")
        return _message(path, title, "no artifact has both accuracy and latency measured")
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 6 * len(panels)), squeeze=False)
    for ax, (data, rows) in zip(axes[:, 0], panels, strict=True):
        _accuracy_panel(ax, result, data, rows)
    return _save(fig, path)


def _accuracy_panel(ax, result: BenchmarkResult, data: str, rows: list[Row]) -> None:
    threads = result.primary_threads
    points = [(r.threads[threads].latency.p50_ms, r.accuracy[data].top1 * 100)
              for r in rows]
    sizes = np.array([r.file_bytes or 0 for r in rows], dtype=float)
    area = 40 + 900 * sizes / max(sizes.max(), 1)
    for k, ((x, y), a, r) in enumerate(zip(points, area, rows, strict=True), start=1):
        ax.scatter(x, y, s=a, alpha=0.6, color=PEER_COLOR if r.peer else OWN_COLOR,
                   marker="D" if r.peer else "o", edgecolors="black", linewidths=0.5)
        # numbers, not names, at the points: fp32 exports sit on top of each other
        ax.annotate(str(k), (x, y), textcoords="offset points", xytext=(5, 5 + 9 * (k % 2)),
                    fontsize=8)
    front = [points[i] for i in pareto_front(points)]
    ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="gray",
            linestyle="--", marker="o", markerfacecolor="none", markersize=14,
            label="Pareto front")
    ax.scatter([], [], color=OWN_COLOR, label="ours")
    ax.scatter([], [], color=PEER_COLOR, marker="D", label="peer (fer 25.10.3)")
    key = "\n".join(f"{k}  {r.name}" for k, r in enumerate(rows, start=1))
    ax.text(1.02, 1.0, key, transform=ax.transAxes, va="top", fontsize=8, family="monospace")
    ax.set_xscale("log")
    _plain_log_axis(ax.xaxis)
    ax.set_xlabel("p50 latency per face at batch 1 (ms, log scale)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"Top-1 on {data} vs p50 latency ({threads} thread)\nmarker area: file size")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right")


def latency_distributions(result: BenchmarkResult, path: Path) -> Path:
    threads = result.settings.threads
    series = [(f"{r.name}\n{n} thr", r.threads[str(n)].latency.samples_ms)
              for r in result.rows for n in threads
              if r.threads[str(n)].latency.samples_ms]
    title = "Latency per face at batch 1"
    if not series:
        return _message(path, title, "no latency was measured")
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(series) + 1.5))
    ax.boxplot([s for _, s in series], orientation="horizontal", showfliers=True, whis=(1, 99),
               flierprops={"markersize": 2})
    ax.set_yticks(range(1, len(series) + 1), [name for name, _ in series], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    _plain_log_axis(ax.xaxis)
    ax.set_xlabel("ms (log scale); whiskers at p1 and p99")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="x", which="both")
    return _save(fig, path)


def per_class_recall(result: BenchmarkResult, path: Path) -> Path:
    data = result.primary_dataset
    rows = [r for r in result.rows if r.accuracy[data].top1 is not None]
    title = f"Recall per class on {data}"
    if not rows:
        return _message(path, title, "accuracy was not measured")
    labels = list(dict.fromkeys(lab for r in rows for lab in r.accuracy[data].labels))
    width = 0.8 / len(rows)
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(12, 1.6 * len(labels)), 4.5))
    for k, r in enumerate(rows):
        recall = r.accuracy[data].per_class_recall
        ax.bar(x + (k - (len(rows) - 1) / 2) * width,
               [recall.get(lab) or 0.0 for lab in labels], width, label=r.name)
    ax.set_xticks(x, labels)
    ax.set_ylim(0, 1)
    ax.set_ylabel("recall")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def confusion_grid(result: BenchmarkResult, path: Path) -> Path:
    data = result.primary_dataset
    rows = [r for r in result.rows if r.accuracy[data].confusion_matrix is not None]
    title = f"Confusion matrices on {data} (rows: true, normalised)"
    if not rows:
        return _message(path, title, "accuracy was not measured")
    cols = min(3, len(rows))
    nrows = -(-len(rows) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 4 * nrows), squeeze=False)
    for ax in axes.flat[len(rows):]:
        ax.set_axis_off()
    for ax, r in zip(axes.flat, rows, strict=False):
        acc = r.accuracy[data]
        cm = np.asarray(acc.confusion_matrix, dtype=float)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        labels = acc.labels
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black")
        ax.set_title(f"{r.name}\ntop-1 {acc.top1 * 100:.2f}%", fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def _value_bars(rows: list[Row], values: list[float], names: list[str], text: str, *,
                height: float, name_size: int):
    """A figure with a horizontal bar per row (ours blue, the peer's red), named on the y
    axis, each value written at its bar's end as ``text.format(value)``."""
    fig, ax = plt.subplots(figsize=(8, height))
    ax.barh(range(len(rows)), values, color=[PEER_COLOR if r.peer else OWN_COLOR for r in rows])
    ax.set_yticks(range(len(rows)), names, fontsize=name_size)
    ax.invert_yaxis()
    for i, v in enumerate(values):
        ax.text(v, i, text.format(v), va="center", fontsize=7)
    return fig, ax


def file_sizes(result: BenchmarkResult, path: Path) -> Path:
    rows = [r for r in result.rows if r.file_bytes]
    title = "File size"
    if not rows:
        return _message(path, title, "no artifact file was found")
    fig, ax = _value_bars(rows, [r.file_bytes / 1024 for r in rows], [r.name for r in rows],
                          " {:,.0f} KiB", height=0.4 * len(rows) + 2, name_size=8)
    ax.set_xlabel("KiB")
    ax.set_title(title)
    return _save(fig, path)


def quantisation_loss(result: BenchmarkResult, path: Path) -> Path:
    data = result.primary_dataset
    rows = [r for r in result.rows if r.accuracy[data].drop_pp is not None]
    title = f"Top-1 lost by each quantised artifact vs its fp32 source\n({data})"
    if not rows:
        return _message(path, title, "no quantised artifact with a measured fp32 source")
    fig, ax = _value_bars(rows, [r.accuracy[data].drop_pp for r in rows],
                          [f"{r.name}\nvs {r.source_fp32}" for r in rows], " {:+.2f}",
                          height=0.5 * len(rows) + 2.5, name_size=7)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("percentage points lost (negative: the quantised artifact scored higher)")
    ax.set_title(title)
    return _save(fig, path)


PLOTS = {
    "accuracy_vs_latency": accuracy_vs_latency,
    "latency_distributions": latency_distributions,
    "per_class_recall": per_class_recall,
    "confusion_matrices": confusion_grid,
    "file_sizes": file_sizes,
    "quantisation_loss": quantisation_loss,
}


def make_plots(result: BenchmarkResult, folder: Path) -> dict[str, Path]:
    """Every figure of ``PLOTS`` as ``folder/<name>.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    return {name: draw(result, folder / f"{name}.png") for name, draw in PLOTS.items()}
