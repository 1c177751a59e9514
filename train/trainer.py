"""Training runs: one config in, one folder out (checkpoints, history, plots, metrics).

A run folder holds ``config.json`` (enough to repeat the run), ``last.keras`` (model and
optimizer state, rewritten each epoch, resumed from), ``best.keras`` (best PublicTest
accuracy so far), ``history.csv``, and at the end ``model.keras`` with its sidecar,
``metrics.json`` and the plots. PublicTest picks the checkpoint and the prior
correction; PrivateTest is scored once, at the end.

This module runs the loop; ``config`` describes a run, ``run_folder`` keeps its files and
history, ``targets`` says what it learns, and ``report`` writes what it produced.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .config import TrainConfig
from .report import choose_prior_correction, fold_into_logits, predict_probs, write_report
from .run_folder import (
    averaged_validation,
    configure_logging,
    epoch_callback,
    prepare_run_dir,
    read_history,
    record_inputs,
    stopped_early,
)
from .targets import load_splits, one_hot, subsample, training_targets

log = logging.getLogger(__name__)

def _compile(model, cfg: TrainConfig) -> None:
    import keras

    average = {"use_ema": cfg.ema > 0, "ema_momentum": cfg.ema or 0.99}
    if cfg.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(cfg.learning_rate, momentum=cfg.momentum, nesterov=True,
                                         weight_decay=cfg.weight_decay, **average)
    else:
        optimizer = keras.optimizers.AdamW(cfg.learning_rate, weight_decay=cfg.weight_decay,
                                           **average)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
        metrics=["accuracy"],
    )


def train(cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    out = Path(cfg.out)
    if resume and (out / "config.json").is_file():
        saved = TrainConfig.load(out / "config.json")
        saved.epochs = cfg.epochs  # the one thing a resume may extend
        cfg = saved
    cfg.validate()  # the config the run goes on with
    splits = load_splits(cfg)  # bad data fails before the folder is touched
    prepare_run_dir(out, resume=resume, overwrite=overwrite)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    inputs = record_inputs(out, cfg, resume=resume)
    configure_logging(out)

    import keras
    import tensorflow as tf

    from . import plots
    from .augment import AugmentConfig, augmented_samples, drawn_class_counts, training_dataset
    from .models import build_model, input_spec_of, model_cost

    spec = input_spec_of(cfg.model)
    keras.utils.set_random_seed(cfg.seed)
    keras.mixed_precision.set_global_policy(cfg.precision)
    train_s = subsample(splits["train"], cfg.limit, cfg.seed)
    val_s = subsample(splits["val"], cfg.limit, cfg.seed)
    labels = train_s.labels
    k = len(labels)
    counts = np.bincount(train_s.y, minlength=k)
    log.info("train %d images %s, PublicTest %d", len(train_s), counts.tolist(), len(val_s))

    steps = cfg.steps_per_epoch or max(len(train_s) // cfg.batch_size, 1)
    aug = AugmentConfig() if cfg.augment else None
    targets, views = training_targets(cfg, splits, train_s, out)
    ds = training_dataset(train_s.x, targets, train_s.y, batch_size=cfg.batch_size, steps=steps,
                          balance_power=cfg.balance_power, augment=aug, seed=cfg.seed,
                          scale=spec.scale, offset=spec.offset, views=views)
    val_x = val_s.x[..., None].astype(np.float32) * spec.scale + spec.offset
    val_t = one_hot(val_s.y, k)

    history = read_history(out / "history.csv")
    if resume:
        model = keras.models.load_model(out / "last.keras")
        log.info("resuming %s after epoch %d", out, len(history))
    else:
        model = build_model(cfg.model, num_classes=k, **cfg.model_kwargs)
        if cfg.init_from:
            from .warm_start import copy_weights

            copy_weights(cfg.init_from, model)
        _compile(model, cfg)
        drawn = drawn_class_counts(train_s.y, k, cfg.balance_power, steps * cfg.batch_size,
                                   cfg.seed)
        plots.class_balance(labels, counts, drawn, out / "class_balance.png")
        plots.augmented_grid(augmented_samples(train_s, aug or AugmentConfig(), cfg.seed),
                             out / "augmented_samples.png")
    cost = model_cost(model)
    log.info("%s: %s parameters, %s MACs", cfg.model, f"{cost.parameters:,}", f"{cost.macs:,}")

    class_weight = None
    if cfg.class_weights:
        class_weight = {i: float(len(train_s.y) / (k * max(c, 1))) for i, c in enumerate(counts)}
    started = time.time()
    if len(history) < cfg.epochs and not stopped_early(history, cfg):
        model.fit(ds, epochs=cfg.epochs, initial_epoch=len(history), steps_per_epoch=steps,
                  validation_data=(val_x, val_t), class_weight=class_weight,
                  callbacks=[*averaged_validation(cfg), epoch_callback(out, cfg, history)],
                  verbose=1 if sys.stdout.isatty() else 2)
    train_seconds = time.time() - started

    best = keras.models.load_model(out / "best.keras", compile=False)  # no optimizer state
    if cfg.precision != "float32":
        best = _as_float32(best, cfg, k)
    val_probs = predict_probs(best, val_s.x)
    correction = {"tau": 0.0, "publictest_accuracy_by_tau": {}}
    if cfg.prior_correction and cfg.balance_power < 1.0:
        log_ratio = (1.0 - cfg.balance_power) * np.log(np.maximum(counts, 1) / counts.sum())
        tau, scores = choose_prior_correction(val_probs, val_s.y, log_ratio)
        correction = {"tau": tau, "publictest_accuracy_by_tau": scores}
        if tau:
            fold_into_logits(best, tau * log_ratio)
            val_probs = predict_probs(best, val_s.x)
        log.info("prior correction tau=%g picked on PublicTest %s", tau, scores)
    return write_report(cfg, out, best, splits, val_s, val_probs, history, cost, correction,
                        train_seconds, tf.__version__, keras.__version__, inputs)


def _as_float32(model, cfg: TrainConfig, num_classes: int):
    """The same network rebuilt under the float32 policy with the trained weights copied in:
    exports and the bundled ``.keras`` are always float32."""
    import keras

    from .models import build_model

    keras.mixed_precision.set_global_policy("float32")
    fp32 = build_model(cfg.model, num_classes=num_classes, **cfg.model_kwargs)
    fp32.set_weights(model.get_weights())
    return fp32
