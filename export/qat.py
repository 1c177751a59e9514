"""Quantisation-aware training (QAT) to a full-integer TFLite model, in a child process.

tensorflow-model-optimization (tfmot) only wraps legacy ``tf_keras`` models, and importing
it sets ``TF_USE_LEGACY_KERAS=1`` for the whole process. So the parent calls ``run_qat``,
which starts ``python -m emotion_edge.export.qat`` and reads back a small JSON report; the
child:

1. loads the Keras 3 model and rebuilds the same functional graph with ``tf_keras`` layers
   (``tf_keras_rebuild.to_tf_keras``: every layer from its ``get_config()``), copies the
   weights with ``set_weights`` and checks the rebuilt model gives the same probabilities;
2. wraps it with ``tfmot.quantization.keras.quantize_model`` and fine-tunes it for a few
   epochs on the training split, against the float model's own probabilities (self-
   distillation), so the class-prior correction folded into the logits is kept;
3. converts it to full int8 TFLite, calibrated on the parent's representative images.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..runtime.errors import EmotionEdgeError, ExportError
from .tf_keras_rebuild import to_tf_keras

if TYPE_CHECKING:
    from .exporter import ExportJob

log = logging.getLogger(__name__)

#: the float rebuild must match the Keras 3 model this closely (max abs probability diff)
REBUILD_TOLERANCE = 1e-4
_ERROR_PREFIX = "qat error: "


@dataclass(frozen=True)
class QatOptions:
    """Fine-tuning settings: a few epochs at a low learning rate."""

    epochs: int = 2
    train_size: int | None = None   # training images to fine-tune on (None: the whole split)
    batch_size: int = 64
    learning_rate: float = 1e-4
    seed: int = 0


# ---------------------------------------------------------------- parent side


def run_qat(model_path: Path, data_path: Path, calibration: np.ndarray, out_path: Path,
            options: QatOptions = QatOptions(), int8_io: bool = False) -> dict[str, Any]:
    """Fine-tune ``model_path`` with QAT in a child process and write int8 TFLite to
    ``out_path``; returns the child's report (epochs, images, loss, timings)."""
    if options.epochs < 1:
        raise ExportError(f"QAT needs at least 1 epoch, got {options.epochs}")
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".qat-") as tmp:
        calib_path, report_path = Path(tmp) / "calibration.npy", Path(tmp) / "report.json"
        np.save(calib_path, calibration.astype(np.float32))
        cmd = [sys.executable, "-m", __name__, "--model", str(model_path),
               "--data", str(data_path), "--calibration", str(calib_path),
               "--out", str(out_path), "--report", str(report_path),
               "--options", json.dumps(asdict(options))]
        if int8_io:
            cmd.append("--int8-io")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        log.info("QAT: fine-tuning %d epoch(s) in a child process", options.epochs)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        for line in proc.stderr.splitlines():
            log.debug("qat child: %s", line)
        if proc.returncode != 0 or not report_path.is_file():
            raise ExportError(f"QAT export failed: {_child_error(proc)}")
        return json.loads(report_path.read_text())


def export_qat(job: ExportJob) -> dict[str, Any]:
    """The registry's exporter for TFLite QAT int8."""
    if job.calibration is None or job.data_path is None:
        raise ExportError("QAT export needs calibration images and the training data")
    int8_io = job.options.int8_io
    report = run_qat(job.source_path, job.data_path, job.calibration, job.out,
                     job.options.qat, int8_io)
    return {"io": "int8" if int8_io else "float32", "qat": report,
            "calibration_used_for": "checking the tf_keras rebuild; the quantisation ranges "
                                    "come from QAT"}


def _child_error(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith(_ERROR_PREFIX):
            return line[len(_ERROR_PREFIX):]
    tail = lines[-1] if lines else "no output"
    return f"the child process exited with code {proc.returncode}: {tail[:300]}"


def _training_images(data: str, labels: tuple[str, ...], spec, options: QatOptions) -> np.ndarray:
    from ..data.datasets import load_split
    from ..data.sampling import stratified_indices
    from ..runtime.preprocess import prepare_batch

    split = load_split(data, "train", labels=labels, size=spec.height, channels=spec.channels)
    keep = stratified_indices(split.y, options.train_size, options.seed)
    return prepare_batch(list(split.x[keep]), spec)


def quantization_aware_export(model_path: Path, data: str, calibration: np.ndarray,
                              out_path: Path, options: QatOptions,
                              int8_io: bool) -> dict[str, Any]:
    """The child's work (see the module docstring); call only with TF_USE_LEGACY_KERAS=1."""
    import keras

    from ..runtime.preprocess import predict_in_batches
    from ..runtime.sidecar import InputSpec, read_sidecar

    sidecar = read_sidecar(model_path)
    spec = InputSpec.from_dict(sidecar["input"])
    source = keras.models.load_model(model_path, compile=False)

    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras

    started = time.time()
    tf_keras.utils.set_random_seed(options.seed)
    rebuilt = to_tf_keras(source)
    classes = len(sidecar["labels"])
    reference = predict_in_batches(source.predict_on_batch, calibration, spec,
                                   num_outputs=classes)
    rebuilt_probs = predict_in_batches(rebuilt.predict_on_batch, calibration, spec,
                                       num_outputs=classes)
    rebuild_diff = float(np.abs(reference - rebuilt_probs).max())
    if not rebuild_diff <= REBUILD_TOLERANCE:
        raise ExportError(f"QAT: the tf_keras rebuild differs from the Keras 3 model by "
                          f"{rebuild_diff:.3g} (tolerance {REBUILD_TOLERANCE:g})")
    del source

    x = _training_images(data, tuple(sidecar["labels"]), spec, options)
    targets = predict_in_batches(rebuilt.predict_on_batch, x, spec, num_outputs=classes)
    for layer in rebuilt.layers:  # fine-tune with frozen statistics, as the float model runs
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            layer.trainable = False
    quantized = tfmot.quantization.keras.quantize_model(rebuilt)
    quantized.compile(optimizer=tf_keras.optimizers.Adam(options.learning_rate),
                      loss=tf_keras.losses.CategoricalCrossentropy())
    history = quantized.fit(x, targets, batch_size=options.batch_size, epochs=options.epochs,
                            shuffle=True, verbose=2)
    # the ranges learned in training are kept: a representative dataset here would
    # recalibrate them (top-1 agreement fell from 98% to 72% on a vgg_s2)
    converter = tf.lite.TFLiteConverter.from_keras_model(quantized)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if int8_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    flatbuffer = converter.convert()
    float_ops = _float_ops(flatbuffer)
    if float_ops:
        raise ExportError(f"QAT: the converted model still computes {', '.join(float_ops)} "
                          "in float; it is not a full-integer model")
    out_path.write_bytes(flatbuffer)
    return {
        "method": "tfmot quantize_model, BatchNormalization frozen, self-distillation on the "
                   "training split; ranges learned in training (no recalibration)",
        "options": asdict(options),
        "train_images": int(len(x)),
        "loss_by_epoch": [round(float(v), 6) for v in history.history["loss"]],
        "rebuild_max_abs_diff": rebuild_diff,
        "seconds": round(time.time() - started, 1),
    }


def _float_ops(flatbuffer: bytes) -> list[str]:
    """Operators computing in float, besides the QUANTIZE/DEQUANTIZE at float I/O."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    found = []
    for op in interpreter._get_ops_details():  # private, but LiteRT's only per-op listing
        dtypes = {interpreter._get_tensor_details(i, 0)["dtype"] for i in op["inputs"] if i >= 0}
        if np.float32 in dtypes and op["op_name"] not in ("QUANTIZE", "DEQUANTIZE"):
            found.append(op["op_name"])
    return found


def main(argv: list[str] | None = None) -> int:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before TensorFlow is imported
    parser = argparse.ArgumentParser(prog="python -m emotion_edge.export.qat",
                                     description="QAT fine-tuning and int8 TFLite conversion")
    for flag in ("--model", "--data", "--calibration", "--out", "--report", "--options"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--int8-io", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        options = QatOptions(**json.loads(args.options))
        report = quantization_aware_export(Path(args.model), args.data,
                                           np.load(args.calibration), Path(args.out),
                                           options, args.int8_io)
    except EmotionEdgeError as exc:
        print(f"{_ERROR_PREFIX}{exc}", file=sys.stderr)
        return 2
    Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
