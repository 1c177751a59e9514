"""The run folder: which files a run writes, the refusal to clobber one, the per-epoch
history, checkpoints and early stopping."""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path

from ..runtime.errors import ConfigError
from .config import TrainConfig, lr_at

log = logging.getLogger("emotion_edge.train.trainer")

RUN_FILES = ("config.json", "last.keras", "best.keras", "history.csv")
PLOT_FILES = ("learning_curves.png", "confusion_publictest.png", "confusion_privatetest.png",
              "per_class_publictest.png", "per_class_privatetest.png", "class_balance.png",
              "augmented_samples.png")
#: the sha256 of the teacher and --init-from files, recorded when a run starts
INPUTS_FILE = "inputs.json"
#: everything a run writes into its folder (``--overwrite`` removes these and only these)
RUN_OUTPUTS = (*RUN_FILES, INPUTS_FILE, "model.keras", "model.keras.json", "metrics.json",
               "train.log", *PLOT_FILES)
HISTORY_KEYS = ("epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")


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


def input_files(cfg: TrainConfig) -> dict[str, list[str]]:
    """The model files a run reads besides the data: its teacher(s) and ``--init-from``."""
    from .distill import teacher_paths
    from .warm_start import source_path

    out: dict[str, list[str]] = {}
    if cfg.teacher:
        out["teacher"] = teacher_paths(cfg.teacher)
    if cfg.init_from:
        out["init_from"] = [str(source_path(cfg.init_from))]
    return out


def record_inputs(out: Path, cfg: TrainConfig, *, resume: bool) -> dict[str, dict[str, str]]:
    """The sha256 of every model file the run reads, by role (``{"teacher": {path: sha}}``),
    saved in ``inputs.json`` when the run starts. A resume checks them: a teacher replaced
    since the start (a new bundled ``accurate``) would otherwise change the run's targets
    half way, so it is an error that names the file. Runs started before the record existed
    get it on their next resume."""
    from ..runtime.sidecar import sha256_of

    now = {role: {file: sha256_of(file) for file in files}
           for role, files in input_files(cfg).items()}  # validate() saw that they exist
    path = out / INPUTS_FILE
    if resume and path.is_file():
        try:
            started = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: not readable ({exc}); it records the sha256 of the "
                              "run's teacher and --init-from files") from None
        for role, files in started.items():
            for file, sha in files.items():
                if now.get(role, {}).get(file) != sha:
                    raise ConfigError(
                        f"--{role.replace('_', '-')} {file} is not the file this run started "
                        f"from (its sha256 was {sha[:12]}…, now "
                        f"{now.get(role, {}).get(file, 'not given')[:12]}…); put that file "
                        f"back to resume, or start a new run")
        return started
    path.write_text(json.dumps(now, indent=2) + "\n")
    return now


def _save_atomically(model, path: Path) -> None:
    """Save under a temporary name, then rename: a checkpoint is never half written."""
    tmp = path.with_name(path.name + ".tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def read_history(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def append_history(path: Path, row: dict[str, float]) -> None:
    new = not path.is_file()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=HISTORY_KEYS)
        if new:
            writer.writeheader()
        writer.writerow({k: row[k] for k in HISTORY_KEYS})


def epoch_callback(out: Path, cfg: TrainConfig, history: list[dict[str, float]]):
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
                with averaged_weights(self.model):  # what PublicTest scored
                    _save_atomically(self.model, out / "best.keras")
            _save_atomically(self.model, out / "last.keras")
            append_history(out / "history.csv", row)
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


def averaged_validation(cfg: TrainConfig) -> list:
    """With ``--ema``, the callback that scores PublicTest with the averaged weights."""
    import keras

    return [keras.callbacks.SwapEMAWeights()] if cfg.ema else []


@contextmanager
def averaged_weights(model):
    """The optimizer's moving average of the weights in place of the weights, for the
    duration (nothing changes without ``--ema``); the trained weights come back after."""
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    if not getattr(optimizer, "use_ema", False):
        yield
        return
    weights = optimizer._trainable_variables  # noqa: SLF001 - Keras keeps the pairing here
    averages = optimizer._model_variables_moving_average  # noqa: SLF001
    kept = [w.numpy() for w in weights]
    for weight, average in zip(weights, averages, strict=True):
        weight.assign(average)
    try:
        yield
    finally:
        for weight, value in zip(weights, kept, strict=True):
            weight.assign(value)


def stopped_early(history, cfg: TrainConfig) -> bool:
    if not history:
        return False
    best_epoch = max(history, key=lambda h: h["val_accuracy"])["epoch"]
    return len(history) - best_epoch >= cfg.patience


def configure_logging(out: Path) -> None:
    handler = logging.FileHandler(out / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("emotion_edge").addHandler(handler)
