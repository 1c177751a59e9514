"""Parity: does an exported artifact agree with its Keras source on real images?

The tolerances live here, keyed by precision: float exports must match the source's
probabilities closely, quantised ones must pick the same class nearly always.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.errors import ExportParityError


@dataclass(frozen=True)
class Tolerance:
    metric: str      # "max_abs_diff" (at most) or "top1_agreement" (at least)
    limit: float


#: precision -> how far an artifact of that precision may stray from its source
TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance("max_abs_diff", 1e-4),
    "fp16": Tolerance("max_abs_diff", 1e-2),
    "dynamic": Tolerance("top1_agreement", 0.98),
    "int8": Tolerance("top1_agreement", 0.98),
    "qat": Tolerance("top1_agreement", 0.98),
}


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


def measure_parity(precision: str, reference: np.ndarray, candidate: np.ndarray,
                   data: str = "") -> ParityResult:
    """Compare two ``(N, K)`` probability arrays under ``precision``'s tolerance."""
    tolerance = TOLERANCES[precision]
    if reference.shape != candidate.shape or not len(reference):
        raise ExportParityError(f"cannot compare outputs of shapes {reference.shape} and "
                                f"{candidate.shape}")
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    max_abs_diff = float(diff.max()) if np.isfinite(diff).all() else float("inf")
    agreement = float((reference.argmax(1) == candidate.argmax(1)).mean())
    if tolerance.metric == "max_abs_diff":
        value, passed = max_abs_diff, max_abs_diff <= tolerance.limit
    else:
        value, passed = agreement, agreement >= tolerance.limit
    return ParityResult(metric=tolerance.metric, value=value, tolerance=tolerance.limit,
                        passed=bool(passed), images=len(reference),
                        max_abs_diff=max_abs_diff, top1_agreement=agreement, data=data)


def require_parity(result: ParityResult, artifact: str | Path) -> ParityResult:
    """Raise ``ExportParityError`` (measured vs tolerance) unless ``result`` passed."""
    if not result.passed:
        raise ExportParityError(
            f"{Path(artifact).name}: disagrees with its source model on {result.images} images: "
            f"{result.metric} {result.value:.6g}, tolerance "
            f"{'<=' if result.metric == 'max_abs_diff' else '>='} {result.tolerance:g}")
    return result
