"""Knowledge distillation with precomputed teacher outputs.

The teacher scores every training image once, over the image and its mirror image, and
the averaged probabilities, softened by a temperature, become part of the student's
targets: ``(1 - w) * labels + w * teacher``. A teacher may be an ensemble: several models
(``--teacher A --teacher B``) whose probabilities are averaged. A student epoch therefore
costs no teacher pass, and the balanced, augmented pipeline stays as it is. The teacher's
outputs are cached in the run folder, keyed by each teacher file's sha256 and the training
images.

With ``--teacher-views K`` the teaching is consistent instead: each training image gets K
fixed views (the image itself and K - 1 augmented variants, made once), the teacher scores
every view (and its mirror image), and the student is shown a view together with the
teacher's probabilities for that same view, not for the clean image. Training then only
mirrors views, which leaves the targets as they are (they are mirror-averaged). The views
and their scores are cached in the run folder too.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..runtime.errors import ConfigError
from ..runtime.sidecar import sha256_of

log = logging.getLogger(__name__)

CACHE_NAME = "teacher_targets.npz"
VIEWS_NAME = "teacher_views.npz"


def soften(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(p) / T)``: T > 1 spreads the teacher's mass over the other classes."""
    if temperature <= 0:
        raise ConfigError("--distill-temperature must be positive")
    logits = np.log(np.clip(probs.astype(np.float64), 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    out = np.exp(logits)
    return (out / out.sum(axis=-1, keepdims=True)).astype(np.float32)


def teacher_paths(teacher: str | Sequence[str]) -> list[str]:
    """The teacher's model files: one path, or the members of an ensemble."""
    return [teacher] if isinstance(teacher, str) else list(teacher)


def teacher_probabilities(teacher: str | Sequence[str], x: np.ndarray,
                          labels: tuple[str, ...]) -> np.ndarray:
    """The teacher's probabilities for ``x`` (uint8 ``(N, H, W)``), averaged with those of
    the mirrored images (and over an ensemble's members), in the order of ``labels``."""
    from ..runtime import load_predictor

    paths = teacher_paths(teacher)
    total = np.zeros((len(x), len(labels)), np.float64)
    for path in paths:
        with load_predictor(path) as predictor:
            if tuple(predictor.labels) != tuple(labels):
                raise ConfigError(f"teacher {path} predicts {list(predictor.labels)}, but the "
                                  f"student learns {list(labels)}")
            total += predictor.predict_batch(x) + predictor.predict_batch(x[:, :, ::-1])
    return (total / (2 * len(paths))).astype(np.float32)


def _key(teacher: str | Sequence[str], x: np.ndarray) -> str:
    digest = hashlib.sha256(x.tobytes()).hexdigest()
    return "+".join(sha256_of(path) for path in teacher_paths(teacher)) + f":{digest}"


def check_teachers(teacher: str | Sequence[str]) -> None:
    """``ConfigError`` naming the first teacher file that is not there."""
    for path in teacher_paths(teacher):
        if not Path(path).is_file():
            raise ConfigError(f"--teacher {path}: no such model file")


def teacher_targets(teacher: str | Sequence[str], x: np.ndarray, labels: tuple[str, ...],
                    run_dir: Path, temperature: float) -> np.ndarray:
    """Softened teacher probabilities for the training images, computed once per run."""
    check_teachers(teacher)
    cache = run_dir / CACHE_NAME
    key = _key(teacher, x)
    probs = None
    if cache.is_file():
        with np.load(cache) as saved:
            if str(saved["key"]) == key and saved["probs"].shape == (len(x), len(labels)):
                probs = saved["probs"]
    if probs is None:
        log.info("scoring %d training images (and their mirror images) with the teacher %s",
                 len(x), teacher)
        probs = teacher_probabilities(teacher, x, labels)
        np.savez(cache, key=np.asarray(key), probs=probs)
    return soften(probs, temperature)


def make_views(x: np.ndarray, count: int, seed: int, chunk: int = 4096) -> np.ndarray:
    """``count`` views of each image of ``x`` (uint8 ``(N, H, W)``) as uint8
    ``(count, N, H, W)``: view 0 is the image itself, the others are augmented as training
    augments (mirroring aside: the student's pipeline mirrors), seeded by ``seed``."""
    import tensorflow as tf

    from .augment import AugmentConfig, augment_batch

    cfg = replace(AugmentConfig(), flip=False)
    views = np.empty((count, *x.shape), np.uint8)
    views[0] = x
    tf.random.set_seed(seed)
    for v in range(1, count):
        for start in range(0, len(x), chunk):
            batch = tf.constant(x[start:start + chunk, ..., None], tf.float32) / 255.0
            out = augment_batch(batch, cfg).numpy()[..., 0]
            views[v, start:start + chunk] = np.rint(out * 255.0).astype(np.uint8)
    return views


def view_targets(teacher: str | Sequence[str], x: np.ndarray, labels: tuple[str, ...],
                 run_dir: Path, temperature: float, count: int,
                 seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` views of every training image (uint8 ``(count, N, H, W)``) and the
    teacher's softened probabilities for each (``(count, N, C)``), computed once per run."""
    check_teachers(teacher)
    cache = run_dir / VIEWS_NAME
    key = f"{_key(teacher, x)}:views={count}:seed={seed}"
    if cache.is_file():
        with np.load(cache) as saved:
            if str(saved["key"]) == key and saved["probs"].shape == (count, len(x), len(labels)):
                return saved["views"], soften(saved["probs"], temperature)
    log.info("making %d views of %d training images and scoring them (and their mirror "
             "images) with the teacher %s", count, len(x), teacher)
    views = make_views(x, count, seed)
    probs = np.stack([teacher_probabilities(teacher, view, labels) for view in views])
    np.savez(cache, key=np.asarray(key), views=views, probs=probs)
    return views, soften(probs, temperature)
