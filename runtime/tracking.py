"""A light multi-face tracker: stable ids for faces across video frames, NumPy only.

Each track keeps its last detected box and a velocity (pixels per second, per box corner).
At a detection round, every track's box is predicted at the new time (constant velocity),
detections are matched to predictions greedily by IoU, best pair first (a handful of faces
per frame makes the optimal Hungarian assignment unnecessary), unmatched detections open
new tracks, and a track survives unmatched for ``max_miss_s`` seconds before it is
dropped, so a face hidden for a frame or two keeps its id. A track that missed the last
round may also take a detection that does not overlap its prediction but lies close to
it (centre within ``max_distance`` box sides, similar size): a face that reappears from
behind another, having moved meanwhile. Between detection rounds,
:meth:`IoUTracker.predict` moves the boxes without detecting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError

Box = tuple[float, float, float, float]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``a`` (N, 4) with every box in ``b`` (M, 4)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)[:, None, :]
    b = np.asarray(b, np.float64).reshape(-1, 4)[None, :, :]
    wide = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    high = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = wide * high
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def centre_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance between the centres of every box in ``a`` (N, 4) and in ``b`` (M, 4), in
    units of the mean side of the ``a`` box; infinite where the sizes differ more than 2x."""
    a = np.asarray(a, np.float64).reshape(-1, 4)[:, None, :]
    b = np.asarray(b, np.float64).reshape(-1, 4)[None, :, :]
    side_a = ((a[..., 2] - a[..., 0]) + (a[..., 3] - a[..., 1])) / 2
    side_b = ((b[..., 2] - b[..., 0]) + (b[..., 3] - b[..., 1])) / 2
    shift = (a[..., :2] + a[..., 2:]) / 2 - (b[..., :2] + b[..., 2:]) / 2
    distance = np.hypot(shift[..., 0], shift[..., 1]) / np.maximum(side_a, 1e-9)
    similar = (side_b <= 2 * side_a) & (side_a <= 2 * side_b)
    return np.where(similar, distance, np.inf)


def greedy_match(score: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs (row, column) of ``score``, highest first, each row and column used once,
    every pair scoring at least ``threshold``."""
    pairs: list[tuple[int, int]] = []
    if score.size == 0:
        return pairs
    order = np.argsort(-score, axis=None, kind="stable")
    used_rows, used_cols = set(), set()
    for flat in order:
        row, col = divmod(int(flat), score.shape[1])
        if score[row, col] < threshold:
            break
        if row in used_rows or col in used_cols:
            continue
        pairs.append((row, col))
        used_rows.add(row)
        used_cols.add(col)
    return pairs


@dataclass
class Track:
    """One face followed over time: its id, last detected box and time, and velocity."""

    track_id: int
    box: np.ndarray          # last detected (x0, y0, x1, y1)
    seen_s: float            # time of the last detection matched to it
    velocity: np.ndarray     # pixels per second for each box coordinate
    hits: int = 1

    def predicted(self, time_s: float, horizon_s: float) -> np.ndarray:
        """The box moved at constant velocity to ``time_s`` (for at most ``horizon_s``)."""
        return self.box + self.velocity * min(max(time_s - self.seen_s, 0.0), horizon_s)


@dataclass(frozen=True)
class TrackUpdate:
    """Where one live track is at a detection round; ``detection`` indexes the matched
    detection, or is None when the track was not seen in this round."""

    track_id: int
    box: Box
    detection: int | None


class IoUTracker:
    """Greedy IoU matching on constant-velocity predictions; see the module docstring.

    iou_threshold: a detection continues a track when they overlap at least this much.
    max_miss_s: an unmatched track is dropped once it has not been seen for longer.
    max_predict_s: boxes move with their velocity for at most this long after the last
        detection, then stay (constant velocity holds for a moment, not for seconds).
    velocity_weight: how much of the newest velocity measurement enters the estimate.
    max_distance: how far (in box sides) a detection may be from a missed track's
        prediction and still continue it.
    """

    def __init__(self, iou_threshold: float = 0.3, max_miss_s: float = 0.5,
                 max_predict_s: float = 0.3,
                 velocity_weight: float = 0.5, max_distance: float = 0.75) -> None:
        if not 0.0 < iou_threshold < 1.0:
            raise ConfigError(f"iou_threshold must be in (0, 1), got {iou_threshold}")
        if max_miss_s < 0:
            raise ConfigError(f"max_miss_s must be >= 0 seconds, got {max_miss_s}")
        if max_predict_s < 0:
            raise ConfigError(f"max_predict_s must be >= 0 seconds, got {max_predict_s}")
        if not 0.0 <= velocity_weight <= 1.0:
            raise ConfigError(f"velocity_weight must be in [0, 1], got {velocity_weight}")
        self.iou_threshold = iou_threshold
        self.max_miss_s = max_miss_s
        self.max_predict_s = max_predict_s
        self.velocity_weight = velocity_weight
        self.max_distance = max_distance
        self.tracks: list[Track] = []
        self._next_id = 1
        self._last_round_s = -math.inf  # time of the previous update

    def update(self, boxes: np.ndarray, time_s: float) -> list[TrackUpdate]:
        """Match ``boxes`` (N, 4) detected at ``time_s``; returns every live track, matched
        ones at their detection, the rest at their prediction, in track-id order."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        predicted = np.array([t.predicted(time_s, self.max_predict_s) for t in self.tracks])
        matched = self._match(predicted, boxes)
        updates, alive = [], []
        for row, track in enumerate(self.tracks):
            col = matched.get(row)
            if col is not None:
                self._observe(track, boxes[col], time_s)
                updates.append(TrackUpdate(track.track_id, _as_box(track.box), col))
                alive.append(track)
            elif time_s - track.seen_s <= self.max_miss_s:
                updates.append(TrackUpdate(track.track_id, _as_box(predicted[row]), None))
                alive.append(track)
        taken = set(matched.values())
        for col in range(len(boxes)):
            if col not in taken:
                track = Track(self._next_id, boxes[col].copy(), time_s, np.zeros(4))
                self._next_id += 1
                alive.append(track)
                updates.append(TrackUpdate(track.track_id, _as_box(track.box), col))
        self.tracks = alive
        self._last_round_s = time_s
        return sorted(updates, key=lambda u: u.track_id)

    def _match(self, predicted: np.ndarray, boxes: np.ndarray) -> dict[int, int]:
        """Track row -> detection column: by IoU, then missed tracks by centre distance."""
        if not self.tracks or not len(boxes):
            return {}
        matched = dict(greedy_match(iou_matrix(predicted, boxes), self.iou_threshold))
        rows = [r for r, t in enumerate(self.tracks)
                if r not in matched and t.seen_s < self._last_round_s]
        cols = [c for c in range(len(boxes)) if c not in matched.values()]
        if rows and cols:
            distance = centre_distance(predicted[rows], boxes[cols])
            for r, c in greedy_match(-distance, -self.max_distance):
                matched[rows[r]] = cols[c]
        return matched

    def predict(self, time_s: float) -> list[TrackUpdate]:
        """Every live track's box at ``time_s`` without detecting (between detection
        rounds); tracks are not dropped here."""
        return [TrackUpdate(t.track_id, _as_box(t.predicted(time_s, self.max_predict_s)), None)
                for t in self.tracks]

    def _observe(self, track: Track, box: np.ndarray, time_s: float) -> None:
        dt = time_s - track.seen_s
        if dt > 0:
            measured = (box - track.box) / dt
            weight = 1.0 if track.hits == 1 else self.velocity_weight  # first: no estimate yet
            track.velocity += weight * (measured - track.velocity)
        track.box = box.copy()
        track.seen_s = time_s
        track.hits += 1


def _as_box(values: np.ndarray) -> Box:
    return tuple(float(v) for v in values)  # type: ignore[return-value]
