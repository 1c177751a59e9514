"""Evaluation sets for the benchmark: FER2013 PrivateTest, the same rows relabelled by the FER+
votes, and image folders, loaded at each model's own input size and label set, optionally as
a stratified sample.

FER2013's labels are its seven classes, so a FER2013 CSV set scores only models with exactly
those seven labels; a model with other labels (FER+'s eight, with contempt) gets no FER2013
figure, with the reason, instead of a number measured against a label set it does not share.
The FER+ set is loaded by ``load_split(..., ferplus=...)``, the loader ``emotion-edge
evaluate --ferplus`` uses: the rows with the clear majority the FER+ authors score on, and
for a 7-class model not the rows whose majority it does not know (contempt).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.datasets import Split, load_split
from ..data.sampling import stratified_indices
from ..runtime.errors import ConfigError, DataError
from ..runtime.labels import FER2013_LABELS
from ..runtime.sidecar import InputSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalSet:
    """One data set: a FER2013 CSV (its PrivateTest) or an image folder named by ``--data``,
    or the CSV's PrivateTest with the FER+ majority labels of ``--ferplus``."""

    name: str
    path: str
    kind: str    # "fer2013-csv", "ferplus" or "image-folder"
    split: str   # "test" (PrivateTest) for the CSVs; "test" or the root for folders
    ferplus: str | None = None  # the FER+ votes file, for kind "ferplus"


#: The evaluation set every report has a column for, even when no ``--data`` was given.
PRIMARY = EvalSet("fer2013-privatetest", "", "fer2013-csv", "test")
#: The name of the FER+ set in a report (FER2013's PrivateTest, FER+ majority labels).
FERPLUS_SET = "ferplus-test"
#: How the reason begins when a set does not score a model because their labels differ.
NOT_APPLICABLE = "not applicable"
NO_DATA_REASON = ("no data set given; pass --data PATH (the FER2013 CSV, or an image folder "
                  "of <label>/ subfolders) to measure accuracy")


def eval_sets(paths: tuple[str, ...], ferplus: str | None = None) -> list[EvalSet]:
    """Name each ``--data`` path; names are unique (``fer2013-privatetest``, folder names).
    With ``ferplus``, the first CSV's PrivateTest relabelled by it comes last.

    With no paths, the primary set is listed without a path, so its accuracy is skipped
    with the reason instead of vanishing from the report.
    """
    if not paths:
        if ferplus:
            raise ConfigError(f"--ferplus {ferplus} relabels FER2013's rows: also pass --data "
                              "with the FER2013 CSV")
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
    if ferplus:
        out.append(_ferplus_set(out, ferplus))
    return out


def _ferplus_set(sets: list[EvalSet], ferplus: str) -> EvalSet:
    """The FER+ set over the first FER2013 CSV of ``sets``, checked by loading it once, so a
    votes file that does not match the CSV is refused before anything is measured."""
    csvs = [s for s in sets if s.kind == "fer2013-csv"]
    if not csvs:
        raise ConfigError(f"--ferplus {ferplus} relabels FER2013's rows: one --data must be "
                          "the FER2013 CSV, not only image folders")
    data = EvalSet(FERPLUS_SET, csvs[0].path, "ferplus", "test", ferplus)
    load_split(data.path, data.split, ferplus=ferplus)  # DataError naming the file if bad
    return data


def not_applicable(data: EvalSet, labels: tuple[str, ...]) -> str | None:
    """Why ``data`` cannot score a model with ``labels``, or None when it can."""
    if data.kind != "fer2013-csv" or set(labels) == set(FER2013_LABELS):
        return None
    return (f"{NOT_APPLICABLE}: the model's {len(labels)} labels ({', '.join(labels)}) are not "
            f"FER2013's {len(FER2013_LABELS)}; it is scored on the FER+ labels ({FERPLUS_SET}, "
            "--ferplus)")


class CropStore:
    """Crops of each evaluation set per (input size, channels, labels), saved as ``.npy`` for the
    child processes, with the true labels and the rows left out by reason; a set that cannot
    be read is remembered with its reason."""

    def __init__(self, folder: str | os.PathLike, sample: int | None, seed: int = 0) -> None:
        self.folder = Path(folder)
        self.sample = sample
        self.seed = seed
        self._made: dict[tuple, tuple[Path, np.ndarray, dict[str, int]] | str] = {}

    def crops(self, data: EvalSet, spec: InputSpec,
              labels: tuple[str, ...]) -> tuple[Path, np.ndarray, dict[str, int]]:
        """``(path of uint8 crops .npy, true labels, rows left out by reason)``; raises
        DataError with the reason when the set cannot score this model."""
        channels = 3 if spec.channels == 3 else 1
        if not data.path:
            raise DataError(NO_DATA_REASON)
        reason = not_applicable(data, labels)
        if reason:
            raise DataError(reason)
        key = (data.name, spec.height, channels, labels)
        if key not in self._made:
            self._made[key] = self._load(data, spec.height, channels, labels, len(self._made))
        made = self._made[key]
        if isinstance(made, str):
            raise DataError(made)
        return made

    def _load(self, data: EvalSet, size: int, channels: int, labels: tuple[str, ...],
              number: int) -> tuple[Path, np.ndarray, dict[str, int]] | str:
        log.info("loading %s (%s) at %dx%dx%d", data.name, data.path, size, size, channels)
        try:
            split: Split = load_split(data.path, data.split, labels, size, channels,
                                      ferplus=data.ferplus)
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
        return path, y, dict(split.skipped)
