"""Training runs: one config in, one folder out (checkpoints, history, plots, metrics).

A run folder holds ``config.json`` (enough to repeat the run), ``last.keras`` (model and
optimizer state, rewritten each epoch, resumed from), ``best.keras`` (best PublicTest
accuracy so far), ``history.csv``, and at the end ``model.keras`` with its sidecar,
``metrics.json`` and the plots. PublicTest picks the checkpoint and the prior
correction; PrivateTest is scored once, at the end.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.datasets import Split, load_fer2013
from ..runtime.errors import ConfigError
from ..runtime.sidecar import InputSpec, sha256_of, write_sidecar

log = logging.getLogger(__name__)

RUN_FILES = ("config.json", "last.keras", "best.keras", "history.csv")
PLOT_FILES = ("learning_curves.png", "confusion_publictest.png", "confusion_privatetest.png",
              "per_class_publictest.png", "per_class_privatetest.png", "class_balance.png",
              "augmented_samples.png")
#: everything a run writes into its folder (``--overwrite`` removes these and only these)
RUN_OUTPUTS = (*RUN_FILES, "model.keras", "model.keras.json", "metrics.json", "train.log",
               *PLOT_FILES)
OPTIMIZERS = ("adamw", "sgd")
#: what a run learns: FER2013's seven labels, or FER+'s eight classes from the crowd votes
TASKS = ("fer2013", "ferplus")
#: training precision policies; exports are always made from float32 weights
PRECISIONS = ("float32", "mixed_bfloat16")
HISTORY_KEYS = ("epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")


@dataclass
class TrainConfig:
    data: str
    out: str
    model: str = "vgg_s2"
    epochs: int = 60
    batch_size: int = 64
    steps_per_epoch: int | None = None
    learning_rate: float = 2e-3
    weight_decay: float = 5e-4
    warmup_epochs: int = 2
    label_smoothing: float = 0.1
    balance_power: float = 0.0
    class_weights: bool = False
    augment: bool = True
    patience: int = 15
    prior_correction: bool = True
    seed: int = 1
    ferplus: str | None = None
    ferplus_weight: float = 0.5
    task: str = "fer2013"
    teacher: str | None = None
    distill_weight: float = 0.7
    distill_temperature: float = 2.0
    optimizer: str = "adamw"
    momentum: float = 0.9
    precision: str = "float32"
    limit: int | None = None
    cache_dir: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("epochs and batch size must be at least 1")
        if not 0.0 <= self.balance_power <= 1.0:
            raise ConfigError("--balance-power must lie in [0, 1] (0 = even classes, 1 = as is)")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError("--label-smoothing must lie in [0, 1)")
        if self.learning_rate <= 0:
            raise ConfigError("--lr must be positive")
        if not 0.0 <= self.ferplus_weight <= 1.0:
            raise ConfigError("--ferplus-weight must lie in [0, 1]")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}")
        if self.task not in TASKS:
            raise ConfigError(f"--task must be one of {', '.join(TASKS)}")
        if self.task == "ferplus" and not self.ferplus:
            raise ConfigError("--task ferplus learns the FER+ votes: pass --ferplus "
                              "fer2013new.csv")
        if not 0.0 <= self.distill_weight <= 1.0:
            raise ConfigError("--distill-weight must lie in [0, 1]")
        if self.distill_temperature <= 0:
            raise ConfigError("--distill-temperature must be positive")
        if self.ferplus and self.limit and self.task == "fer2013":
            raise ConfigError("--ferplus needs the full training split; drop --limit")

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        try:
            data = json.loads(path.read_text())
            return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        except (OSError, json.JSONDecodeError, TypeError) as exc:
            raise ConfigError(f"{path}: not a readable run config ({exc})") from None


def lr_at(epoch: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 1% of the peak over the planned epochs."""
    if epoch < cfg.warmup_epochs:
        return cfg.learning_rate * (epoch + 1) / (cfg.warmup_epochs + 1)
    span = max(cfg.epochs - cfg.warmup_epochs, 1)
    progress = min((epoch - cfg.warmup_epochs) / span, 1.0)
    return cfg.learning_rate * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def prepare_run_dir(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Create ``out``, refusing to clobber an earlier run; ``overwrite`` removes only the
    files a run writes, nothing else in the folder."""
    existing = [f for f in RUN_FILES if (out / f).exists()] if out.is_dir() else []
    if resume:
        if not (out / "last.keras").is_file():
            raise ConfigError(f"{out}: nothing to resume (no last.keras); start without --resume")
        return
    if existing:
        if not overwrite:
            raise ConfigError(f"{out} already holds a run ({', '.join(existing)}); pass "
                              "--resume to continue it or --overwrite to start it afresh")
        for name in RUN_OUTPUTS:
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def _subsample(split: Split, limit: int | None, seed: int) -> Split:
    if not limit or len(split) <= limit:
        return split
    idx = np.sort(np.random.default_rng(seed).choice(len(split), limit, replace=False))
    soft = split.soft[idx] if split.soft is not None else None
    return Split(x=split.x[idx], y=split.y[idx], labels=split.labels, soft=soft,
                 source=split.source)


def _read_history(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _append_history(path: Path, row: dict[str, float]) -> None:
    new = not path.is_file()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=HISTORY_KEYS)
        if new:
            writer.writeheader()
        writer.writerow({k: row[k] for k in HISTORY_KEYS})


def _epoch_callback(out: Path, cfg: TrainConfig, history: list[dict[str, float]]):
    import keras

    class RunKeeper(keras.callbacks.Callback):
        """Sets the LR, saves last/best checkpoints, logs history, stops early."""

        def on_epoch_begin(self, epoch, logs=None):
            self.model.optimizer.learning_rate.assign(lr_at(epoch, cfg))
            self.started = time.time()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            row = {"epoch": epoch + 1, "lr": lr_at(epoch, cfg),
                   "seconds": round(time.time() - self.started, 1),
                   **{k: float(logs.get(k, float("nan"))) for k in HISTORY_KEYS[2:6]}}
            best = max((h["val_accuracy"] for h in history), default=-1.0)
            if row["val_accuracy"] > best:
                self.model.save(out / "best.keras")
            self.model.save(out / "last.keras.tmp.keras")
            os.replace(out / "last.keras.tmp.keras", out / "last.keras")
            _append_history(out / "history.csv", row)
            history.append(row)
            best_epoch = max(history, key=lambda h: h["val_accuracy"])["epoch"]
            log.info("epoch %d/%d  loss %.4f  acc %.4f  val_loss %.4f  val_acc %.4f  "
                     "(best %.4f at %d)  %.0fs", epoch + 1, cfg.epochs, row["loss"],
                     row["accuracy"], row["val_loss"], row["val_accuracy"],
                     max(h["val_accuracy"] for h in history), best_epoch, row["seconds"])
            if epoch + 1 - best_epoch >= cfg.patience:
                log.info("early stop: no PublicTest gain for %d epochs", cfg.patience)
                self.model.stop_training = True

    return RunKeeper()


def _one_hot(y: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k, dtype=np.float32)[y]


def _targets(cfg: TrainConfig, splits: dict[str, Split], train_s: Split,
             out: Path) -> np.ndarray:
    """What the network learns to output for each training image.

    ``fer2013``: one-hot labels, mixed with the FER+ vote distribution when ``--ferplus``
    is given (``(1 - w) * onehot + w * votes`` on the rows FER+ keeps). ``ferplus``: the
    vote distribution over FER+'s eight classes (cross-entropy against it, as the FER+
    authors found best). With ``--teacher``, ``(1 - d) * those + d * teacher``.
    """
    if cfg.task == "ferplus":
        targets = train_s.soft.astype(np.float32)
    else:
        targets = _one_hot(train_s.y, len(train_s.labels))
        if cfg.ferplus:
            from ..data.datasets import ferplus_soft_targets

            soft, has_votes = ferplus_soft_targets(cfg.ferplus, splits, train_s.labels)["train"]
            w = cfg.ferplus_weight
            targets[has_votes] = (1.0 - w) * targets[has_votes] + w * soft[has_votes]
            log.info("FER+ soft labels mixed in with weight %.2f on %d of %d training images",
                     w, int(has_votes.sum()), len(targets))
    if cfg.teacher:
        from .distill import teacher_targets

        teacher = teacher_targets(cfg.teacher, train_s.x, train_s.labels, out,
                                  cfg.distill_temperature)
        d = cfg.distill_weight
        targets = (1.0 - d) * targets + d * teacher
        agree = float((teacher.argmax(1) == train_s.y).mean())
        log.info("distilling from %s (weight %.2f, T=%g); the teacher agrees with %.1f%% of "
                 "the training labels", cfg.teacher, d, cfg.distill_temperature, 100 * agree)
    return targets


def _compile(model, cfg: TrainConfig) -> None:
    import keras

    if cfg.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(cfg.learning_rate, momentum=cfg.momentum, nesterov=True,
                                         weight_decay=cfg.weight_decay)
    else:
        optimizer = keras.optimizers.AdamW(cfg.learning_rate, weight_decay=cfg.weight_decay)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
        metrics=["accuracy"],
    )


def predict_probs(model, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Probabilities of a Keras ``model`` for uint8 crops ``x``, through the runtime's batched
    path and the input spec the trained model's sidecar records."""
    from ..runtime.preprocess import predict_in_batches

    return predict_in_batches(model.predict_on_batch, x, input_spec_of_model(model),
                              num_outputs=model.output_shape[-1], batch_size=batch_size)


def input_spec_of_model(model) -> InputSpec:
    """The input spec of a registered architecture, found by the Keras model's name."""
    from .models import input_spec_of, model_names

    return input_spec_of(model.name) if model.name in model_names() else InputSpec()


def choose_prior_correction(probs: np.ndarray, y: np.ndarray, log_prior: np.ndarray,
                            grid=(0.0, 0.25, 0.5, 0.75, 1.0)) -> tuple[float, dict[str, float]]:
    """Pick tau (on validation data) for logits + tau * log(prior ratio)."""
    logp = np.log(np.clip(probs, 1e-12, 1.0))
    scores = {f"{t:g}": float(((logp + t * log_prior).argmax(1) == y).mean()) for t in grid}
    best = max(grid, key=lambda t: (scores[f"{t:g}"], -abs(t)))
    return float(best), scores


def fold_into_logits(model, shift: np.ndarray) -> None:
    layer = model.get_layer("logits")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel, bias + shift.astype(bias.dtype)])


def train(cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    cfg.validate()
    out = Path(cfg.out)
    if resume and (out / "config.json").is_file():
        saved = TrainConfig.load(out / "config.json")
        saved.epochs = cfg.epochs  # the one thing a resume may extend
        cfg = saved
    splits = _load_splits(cfg)  # bad data fails before the folder is touched
    prepare_run_dir(out, resume=resume, overwrite=overwrite)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    _configure_logging(out)

    import keras
    import tensorflow as tf

    from . import plots
    from .augment import AugmentConfig, augmented_samples, drawn_class_counts, training_dataset
    from .models import build_model, input_spec_of, model_cost

    spec = input_spec_of(cfg.model)
    keras.utils.set_random_seed(cfg.seed)
    keras.mixed_precision.set_global_policy(cfg.precision)
    train_s = _subsample(splits["train"], cfg.limit, cfg.seed)
    val_s = _subsample(splits["val"], cfg.limit, cfg.seed)
    labels = train_s.labels
    k = len(labels)
    counts = np.bincount(train_s.y, minlength=k)
    log.info("train %d images %s, PublicTest %d", len(train_s), counts.tolist(), len(val_s))

    steps = cfg.steps_per_epoch or max(len(train_s) // cfg.batch_size, 1)
    aug = AugmentConfig() if cfg.augment else None
    ds = training_dataset(train_s.x, _targets(cfg, splits, train_s, out), train_s.y,
                          batch_size=cfg.batch_size, steps=steps,
                          balance_power=cfg.balance_power, augment=aug, seed=cfg.seed,
                          scale=spec.scale, offset=spec.offset)
    val_x = val_s.x[..., None].astype(np.float32) * spec.scale + spec.offset
    val_t = _one_hot(val_s.y, k)

    history = _read_history(out / "history.csv")
    if resume:
        model = keras.models.load_model(out / "last.keras")
        log.info("resuming %s after epoch %d", out, len(history))
    else:
        model = build_model(cfg.model, num_classes=k, **cfg.model_kwargs)
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
    if len(history) < cfg.epochs and not _stopped_early(history, cfg):
        model.fit(ds, epochs=cfg.epochs, initial_epoch=len(history), steps_per_epoch=steps,
                  validation_data=(val_x, val_t), class_weight=class_weight,
                  callbacks=[_epoch_callback(out, cfg, history)],
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
    return _finish(cfg, out, best, splits, val_s, val_probs, history, cost, correction,
                   train_seconds, tf.__version__, keras.__version__)


def _load_splits(cfg: TrainConfig) -> dict[str, Split]:
    if cfg.task == "ferplus":
        from ..data.datasets import load_ferplus

        return load_ferplus(cfg.data, cfg.ferplus, cfg.cache_dir)
    return load_fer2013(cfg.data, cfg.cache_dir)


def _as_float32(model, cfg: TrainConfig, num_classes: int):
    """The same network rebuilt under the float32 policy with the trained weights copied in:
    exports and the bundled ``.keras`` are always float32."""
    import keras

    from .models import build_model

    keras.mixed_precision.set_global_policy("float32")
    fp32 = build_model(cfg.model, num_classes=num_classes, **cfg.model_kwargs)
    fp32.set_weights(model.get_weights())
    return fp32


def _stopped_early(history, cfg: TrainConfig) -> bool:
    if not history:
        return False
    best_epoch = max(history, key=lambda h: h["val_accuracy"])["epoch"]
    return len(history) - best_epoch >= cfg.patience


def _finish(cfg, out, model, splits, val_s, val_probs, history, cost, correction,
            train_seconds, tf_version, keras_version) -> dict[str, Any]:
    from ..data.metrics import classification_report
    from . import plots

    labels = val_s.labels
    test_s = _subsample(splits["test"], cfg.limit, cfg.seed)
    val_report = classification_report(val_s.y, val_probs, labels)
    test_report = classification_report(test_s.y, predict_probs(model, test_s.x), labels)
    model_path = out / "model.keras"
    model.save(model_path)
    metrics = {
        "model": cfg.model,
        "parameters": cost.parameters,
        "macs": cost.macs,
        "epochs_run": len(history),
        "best_epoch": int(max(history, key=lambda h: h["val_accuracy"])["epoch"]) if history else 0,
        "prior_correction": correction,
        "publictest": val_report,
        "privatetest": test_report,
        "train_seconds_this_session": round(train_seconds, 1),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    cols = {k: [h[k] for h in history] for k in HISTORY_KEYS} if history else None
    if cols:
        plots.learning_curves(cols, out / "learning_curves.png")
    plots.confusion(val_report["confusion_matrix"], labels,
                    f"PublicTest (validation), acc {val_report['accuracy']:.3f}",
                    out / "confusion_publictest.png")
    plots.confusion(test_report["confusion_matrix"], labels,
                    f"PrivateTest (test), acc {test_report['accuracy']:.3f}",
                    out / "confusion_privatetest.png")
    plots.per_class_bars(val_report, "PublicTest per-class scores",
                         out / "per_class_publictest.png")
    plots.per_class_bars(test_report, "PrivateTest per-class scores",
                         out / "per_class_privatetest.png")
    write_sidecar(model_path, {
        "name": cfg.model,
        "format": "keras",
        "precision": "fp32",
        "labels": list(labels),
        "input": input_spec_of_model(model).to_dict(),
        "parameters": cost.parameters,
        "macs": cost.macs,
        "sha256": sha256_of(model_path),
        "training": {
            "config": asdict(cfg),
            "data_sha256": sha256_of(cfg.data),
            "epochs_run": len(history),
            "best_epoch": metrics["best_epoch"],
            "prior_correction_tau": correction["tau"],
            "tensorflow": tf_version,
            "keras": keras_version,
        },
        "accuracy": {"publictest": val_report["accuracy"], "privatetest": test_report["accuracy"],
                     "measured_by": "emotion-edge train (model.keras on the full splits)"
                     if not cfg.limit else f"emotion-edge train (limit={cfg.limit})"},
    })
    log.info("PublicTest acc %.4f, PrivateTest acc %.4f -> %s", val_report["accuracy"],
             test_report["accuracy"], model_path)
    return metrics


def _configure_logging(out: Path) -> None:
    handler = logging.FileHandler(out / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("emotion_edge").addHandler(handler)
