"""After training: predictions on the splits, the PublicTest-picked prior correction, and
the run's report (``model.keras`` with its sidecar, ``metrics.json`` and the plots)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from typing import Any

import numpy as np

from ..runtime.sidecar import InputSpec, sha256_of, write_sidecar
from .run_folder import HISTORY_KEYS
from .targets import subsample

log = logging.getLogger("emotion_edge.train.trainer")

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


def write_report(cfg, out, model, splits, val_s, val_probs, history, cost, correction,
                 train_seconds, tf_version, keras_version,
                 inputs: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Evaluate the final model on both splits, write the plots, ``metrics.json`` and
    ``model.keras`` with its sidecar (which records the config, the data's sha256 and
    ``inputs``: the sha256 of the teacher and ``--init-from`` files)."""
    from ..data.metrics import classification_report
    from . import plots

    labels = val_s.labels
    test_s = subsample(splits["test"], cfg.limit, cfg.seed)
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
            "inputs_sha256": inputs,
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
