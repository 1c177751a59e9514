"""What a run learns from: the splits it loads and the target distribution of every
training image (labels, FER+ votes, a teacher's probabilities)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..data.datasets import Split, load_fer2013
from .config import TrainConfig

log = logging.getLogger("emotion_edge.train.trainer")

def load_splits(cfg: TrainConfig) -> dict[str, Split]:
    if cfg.task == "ferplus":
        from ..data.datasets import load_ferplus

        return load_ferplus(cfg.data, cfg.ferplus, cfg.cache_dir)
    return load_fer2013(cfg.data, cfg.cache_dir)


def subsample(split: Split, limit: int | None, seed: int) -> Split:
    if not limit or len(split) <= limit:
        return split
    idx = np.sort(np.random.default_rng(seed).choice(len(split), limit, replace=False))
    soft = split.soft[idx] if split.soft is not None else None
    return Split(x=split.x[idx], y=split.y[idx], labels=split.labels, soft=soft,
                 source=split.source)


def one_hot(y: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k, dtype=np.float32)[y]


def training_targets(cfg: TrainConfig, splits: dict[str, Split], train_s: Split,
                     out: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """What the network learns to output for each training image, as ``(targets, views)``.

    ``fer2013``: one-hot labels, mixed with the FER+ vote distribution when ``--ferplus``
    is given (``(1 - w) * onehot + w * votes`` on the rows FER+ keeps). ``ferplus``: the
    vote distribution over FER+'s eight classes (cross-entropy against it, as the FER+
    authors found best). With ``--teacher``, ``(1 - d) * those + d * teacher``.

    ``views`` is None and ``targets`` is ``(N, C)``, one row per image; with
    ``--teacher-views K``, ``views`` holds K views of every image (``(K, N, H, W)``) and
    ``targets`` one row per view (``(K, N, C)``), the teacher's part scored on that view.
    """
    if cfg.task == "ferplus":
        targets = train_s.soft.astype(np.float32)
    else:
        targets = one_hot(train_s.y, len(train_s.labels))
        if cfg.ferplus:
            from ..data.datasets import ferplus_soft_targets

            soft, has_votes = ferplus_soft_targets(cfg.ferplus, splits, train_s.labels)["train"]
            w = cfg.ferplus_weight
            targets[has_votes] = (1.0 - w) * targets[has_votes] + w * soft[has_votes]
            log.info("FER+ soft labels mixed in with weight %.2f on %d of %d training images",
                     w, int(has_votes.sum()), len(targets))
    views = None
    if cfg.teacher:
        from .distill import teacher_targets, view_targets

        if cfg.teacher_views:
            views, teacher = view_targets(cfg.teacher, train_s.x, train_s.labels, out,
                                          cfg.distill_temperature, cfg.teacher_views, cfg.seed)
        else:
            teacher = teacher_targets(cfg.teacher, train_s.x, train_s.labels, out,
                                      cfg.distill_temperature)
        d = cfg.distill_weight
        targets = (1.0 - d) * targets + d * teacher
        agree = float((teacher.argmax(-1) == train_s.y).mean())
        log.info("distilling from %s (weight %.2f, T=%g%s); the teacher agrees with %.1f%% of "
                 "the training labels", cfg.teacher, d, cfg.distill_temperature,
                 f", {cfg.teacher_views} views an image" if views is not None else "",
                 100 * agree)
    return targets.astype(np.float32), views
