"""What a video run writes, and how: staged files, the per-face CSV, per-track statistics.

:class:`StagedOutputs` gives each output a temporary name in its target's folder and
renames them all at the end, so a reader never sees a half-written file and nothing is
replaced without ``overwrite``. :class:`FaceLog` writes one CSV row per face per analysed
frame; :class:`TrackStats` gathers each track's times, labels and timeline for the JSON
summary and the plot.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..runtime.errors import ConfigError


class StagedOutputs:
    """Temporary names for output files, renamed to their targets by :meth:`commit`.

    Raises ConfigError at once when a target exists (without ``overwrite``), is a folder,
    or is named twice.
    """

    def __init__(self, targets: dict[str, Path | None], *, overwrite: bool = False) -> None:
        self.targets = {kind: Path(path) for kind, path in targets.items() if path is not None}
        seen: dict[Path, str] = {}
        for kind, path in self.targets.items():
            resolved = path.resolve()
            if resolved in seen:
                raise ConfigError(f"--{seen[resolved]} and --{kind} name the same file {path}")
            seen[resolved] = kind
            if path.is_dir():
                raise ConfigError(f"--{kind} {path}: is a folder; give a file name")
            if path.exists() and not overwrite:
                raise ConfigError(f"--{kind} {path}: already exists; pass --overwrite to "
                                  "replace it")
            if not path.parent.is_dir():
                raise ConfigError(f"--{kind} {path}: the folder {path.parent} does not exist")
        self.temporary = {kind: path.with_name(f".{path.stem}.partial-{os.getpid()}"
                                               f"{path.suffix}")
                          for kind, path in self.targets.items()}

    def __contains__(self, kind: str) -> bool:
        return kind in self.targets

    def commit(self) -> dict[str, str]:
        """Rename every written temporary file to its target; returns kind -> path."""
        done = {}
        for kind, temp in self.temporary.items():
            if temp.exists():
                os.replace(temp, self.targets[kind])
                done[kind] = str(self.targets[kind])
        return done

    def discard(self) -> None:
        for temp in self.temporary.values():
            temp.unlink(missing_ok=True)


def csv_columns(labels: tuple[str, ...]) -> list[str]:
    return ["frame", "time_s", "track_id", "x0", "y0", "x1", "y1", "detection_score",
            "label", "score", "raw_label", "raw_score",
            *(f"raw_{k}" for k in labels), *(f"smoothed_{k}" for k in labels)]


class FaceLog:
    """The CSV of detected faces: one row per face per analysed frame."""

    def __init__(self, handle: IO[str], labels: tuple[str, ...]) -> None:
        self.labels = labels
        self._writer = csv.writer(handle)
        self._writer.writerow(csv_columns(labels))

    def write(self, frame: int, result: Any) -> None:
        for face in result.faces:
            raw = face.raw
            if raw is None:
                continue
            self._writer.writerow([
                frame, f"{result.timestamp_s:.4f}", face.track_id,
                *(f"{v:.1f}" for v in face.box),
                "" if face.detection_score is None else f"{face.detection_score:.4f}",
                face.label, f"{face.score:.4f}", raw.label, f"{raw.score:.4f}",
                *(f"{raw.probabilities[k]:.4f}" for k in self.labels),
                *(f"{face.probabilities[k]:.4f}" for k in self.labels)])


@dataclass
class TrackStats:
    """One track over the run: when it was seen and what it showed, frame by frame."""

    track_id: int
    times: list[float] = field(default_factory=list)
    smoothed: list[np.ndarray] = field(default_factory=list, repr=False)
    raw_labels: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def add(self, time_s: float, face: Any) -> None:
        self.times.append(time_s)
        self.smoothed.append(np.fromiter(face.probabilities.values(), np.float64))
        self.raw_labels.append(face.raw.label)
        self.labels.append(face.label)

    def summary(self, emotions: tuple[str, ...]) -> dict[str, Any]:
        """First and last time, dominant (most frequent smoothed) label, each emotion's
        share of the analysed frames, how often the raw and smoothed labels left the
        dominant one, and how many times each changed from one analysed frame to the next."""
        counts = Counter(self.labels)
        dominant = counts.most_common(1)[0][0]
        n = len(self.labels)
        return {
            "track_id": self.track_id, "first_s": round(self.times[0], 3),
            "last_s": round(self.times[-1], 3), "frames": n, "dominant": dominant,
            "share": {k: round(counts.get(k, 0) / n, 4) for k in emotions},
            "off_dominant": {
                "raw": round(sum(label != dominant for label in self.raw_labels) / n, 4),
                "smoothed": round(sum(label != dominant for label in self.labels) / n, 4)},
            "label_changes": {"raw": _changes(self.raw_labels), "smoothed": _changes(self.labels)},
        }


def _changes(labels: list[str]) -> int:
    return sum(a != b for a, b in zip(labels, labels[1:], strict=False))


class RunStats:
    """Per-track statistics of the detected faces of every analysed frame."""

    def __init__(self) -> None:
        self.tracks: dict[int, TrackStats] = {}

    def add(self, result: Any) -> None:
        for face in result.faces:
            if face.raw is not None:
                self.tracks.setdefault(face.track_id, TrackStats(face.track_id)).add(
                    result.timestamp_s, face)

    def summaries(self, emotions: tuple[str, ...]) -> list[dict[str, Any]]:
        return [self.tracks[k].summary(emotions) for k in sorted(self.tracks)]
