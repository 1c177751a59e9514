"""Matplotlib figures of a training run: curves, confusion matrices, class balance, samples."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def learning_curves(history: dict[str, list[float]], path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    for ax, key, title in ((axes[0], "accuracy", "Accuracy"), (axes[1], "loss", "Loss")):
        ax.plot(epochs, history[key], label="train (augmented, balanced)")
        ax.plot(epochs, history[f"val_{key}"], label="validation (PublicTest)")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def confusion(cm: np.ndarray, labels, title: str, path: Path) -> Path:
    cm = np.asarray(cm, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _save(fig, path)


def per_class_bars(report: dict, title: str, path: Path) -> Path:
    labels = report["labels"]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(9, 4))
    for k, key in enumerate(("precision", "recall", "f1")):
        ax.bar(x + (k - 1) * 0.27, [report["per_class"][lab][key] for lab in labels], 0.27,
               label=key)
    ax.set_xticks(x, labels)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    return _save(fig, path)


def class_balance(labels, before: np.ndarray, after: np.ndarray, path: Path) -> Path:
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.bar(x - 0.2, before, 0.4, label="training set")
    ax.bar(x + 0.2, after, 0.4, label="drawn in one epoch (balanced sampling)")
    ax.set_xticks(x, labels)
    ax.set_ylabel("images")
    ax.set_title("Class balance before and after balanced sampling")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def augmented_grid(samples: dict[str, np.ndarray], path: Path) -> Path:
    """One row per class: the original image first, then augmented variants."""
    rows = len(samples)
    cols = max(len(v) for v in samples.values())
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.2), squeeze=False)
    for r, (label, images) in enumerate(samples.items()):
        for c in range(cols):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(images):
                ax.imshow(np.squeeze(images[c]), cmap="gray", vmin=0, vmax=1)
        axes[r][0].set_title(label, fontsize=8, loc="left")
    fig.suptitle("Augmented samples per class (first column: original)")
    return _save(fig, path)
