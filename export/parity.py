"""Parity: does an exported artifact agree with its Keras source on real images?

Each row of the format registry carries its rule (``ParityRule``): float exports must
match the source's probabilities closely (fp32 max abs diff <= 1e-4, fp16 <= 1e-2),
quantised ones must pick the same class nearly always (top-1 agreement >= 98%).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.errors import ExportParityError
from ..runtime.formats import ParityRule


@dataclass(frozen=True)
class ParityResult:
    """Measured agreement of an artifact with its source on ``images`` images."""

    metric: str
    value: float
    tolerance: float
    passed: bool
    images: int
    max_abs_diff: float
    top1_agreement: float
    data: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        if self.metric == "max_abs_diff":
            return f"max|diff| {self.value:.2e} (<= {self.tolerance:g})"
        return f"top-1 {self.value:.2%} (>= {self.tolerance:.0%})"


def measure_parity(rule: ParityRule, reference: np.ndarray, candidate: np.ndarray,
                   data: str = "") -> ParityResult:
    """Compare two ``(N, K)`` probability arrays under ``rule``."""
    if reference.shape != candidate.shape or not len(reference):
        raise ExportParityError(f"cannot compare outputs of shapes {reference.shape} and "
                                f"{candidate.shape}")
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    max_abs_diff = float(diff.max()) if np.isfinite(diff).all() else float("inf")
    agreement = float((reference.argmax(1) == candidate.argmax(1)).mean())
    value = max_abs_diff if rule.metric == "max_abs_diff" else agreement
    return ParityResult(metric=rule.metric, value=value, tolerance=rule.limit,
                        passed=bool(rule.passes(value)), images=len(reference),
                        max_abs_diff=max_abs_diff, top1_agreement=agreement, data=data)


def require_parity(result: ParityResult, artifact: str | Path) -> ParityResult:
    """Raise ``ExportParityError`` (measured vs tolerance) unless ``result`` passed."""
    if not result.passed:
        raise ExportParityError(
            f"{Path(artifact).name}: disagrees with its source model on {result.images} images: "
            f"{result.metric} {result.value:.6g}, tolerance "
            f"{'<=' if result.metric == 'max_abs_diff' else '>='} {result.tolerance:g}")
    return result
