"""Evaluation sets for the benchmark: FER2013 PrivateTest and image folders, loaded at each
model's own input size and label set, optionally as a stratified sample.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.datasets import Split, load_split
from ..data.sampling import stratified_indices
from ..runtime.errors import DataError
from ..runtime.sidecar import InputSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalSet:
    """One data set named by ``--data``: a FER2013 CSV (its PrivateTest) or an image folder."""

    name: str
    path: str
    kind: str    # "fer2013-csv" or "image-folder"
    split: str   # "test" (PrivateTest) for the CSV; "test" or the root for folders


#: The evaluation set every report has a column for, even when no ``--data`` was given.
PRIMARY = EvalSet("fer2013-privatetest", "", "fer2013-csv", "test")
NO_DATA_REASON = ("no data set given; pass --data PATH (the FER2013 CSV, or an image folder "
                  "of <label>/ subfolders) to measure accuracy")


def eval_sets(paths: tuple[str, ...]) -> list[EvalSet]:
    """Name each ``--data`` path; names are unique (``fer2013-privatetest``, folder names).

    With no paths, the primary set is listed without a path, so its accuracy is skipped
    with the reason instead of vanishing from the report.
    """
    if not paths:
        return [PRIMARY]
    out: list[EvalSet] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            name, kind = path.name or "images", "image-folder"
        else:
            name, kind = "fer2013-privatetest", "fer2013-csv"
        taken = {e.name for e in out}
        base, k = name, 2
        while name in taken:
            name, k = f"{base}-{k}", k + 1
        out.append(EvalSet(name, str(path), kind, "test"))
    return out


class CropStore:
    """Crops of each evaluation set per (input size, channels, labels), saved as ``.npy`` for the
    child processes; a set that cannot be read is remembered with its reason."""

    def __init__(self, folder: str | os.PathLike, sample: int | None, seed: int = 0) -> None:
        self.folder = Path(folder)
        self.sample = sample
        self.seed = seed
        self._made: dict[tuple, tuple[Path, np.ndarray] | str] = {}

    def crops(self, data: EvalSet, spec: InputSpec,
              labels: tuple[str, ...]) -> tuple[Path, np.ndarray]:
        """``(path of uint8 crops .npy, true labels)``; raises DataError with the reason."""
        channels = 3 if spec.channels == 3 else 1
        if not data.path:
            raise DataError(NO_DATA_REASON)
        key = (data.name, spec.height, channels, labels)
        if key not in self._made:
            self._made[key] = self._load(data, spec.height, channels, labels, len(self._made))
        made = self._made[key]
        if isinstance(made, str):
            raise DataError(made)
        return made

    def _load(self, data: EvalSet, size: int, channels: int, labels: tuple[str, ...],
              number: int) -> tuple[Path, np.ndarray] | str:
        log.info("loading %s (%s) at %dx%dx%d", data.name, data.path, size, size, channels)
        try:
            split: Split = load_split(data.path, data.split, labels, size, channels)
        except DataError as exc:
            log.warning("accuracy on %s skipped: %s", data.name, exc)
            return str(exc)
        except OSError as exc:
            log.warning("accuracy on %s skipped: %s", data.name, exc)
            return f"{data.path}: cannot read ({exc})"
        if len(split) == 0:
            return f"{data.path}: no images of the model's labels {list(labels)}"
        keep = stratified_indices(split.y, self.sample, self.seed) if self.sample else None
        x, y = (split.x, split.y) if keep is None else (split.x[keep], split.y[keep])
        path = self.folder / f"crops-{number}.npy"
        np.save(path, x)
        return path, y
