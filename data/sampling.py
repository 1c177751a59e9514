"""Stratified sampling: the one way every stage draws a class-balanced subset (calibration
images for quantisation, the QAT subset, the benchmark's quick-run sample)."""

from __future__ import annotations

import numpy as np

from ..runtime.errors import ConfigError


def stratified_indices(y: np.ndarray, size: int | None, seed: int) -> np.ndarray:
    """``size`` sorted indices drawn per class in proportion to its count (largest remainders
    fill up to ``size``; at least one per class), seeded.

    ``None`` or a size at least ``len(y)`` keeps every index.
    """
    if size is None or size >= len(y):
        return np.arange(len(y))
    if size < 1:
        raise ConfigError(f"sample size must be at least 1, got {size}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    quota = counts * size / counts.sum()
    take = np.maximum(np.floor(quota).astype(int), 1)
    for i in np.argsort(-(quota - np.floor(quota))):  # largest remainders fill up to size
        if take.sum() >= size:
            break
        take[i] += 1
    while take.sum() > size:  # the at-least-one rule overshot: trim the largest classes
        take[np.argmax(take)] -= 1
    picked = [rng.choice(np.flatnonzero(y == c), min(n, cnt), replace=False)
              for c, n, cnt in zip(classes, take, counts, strict=True)]
    return np.sort(np.concatenate(picked))
