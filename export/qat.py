"""Quantisation-aware training (QAT) to a full-integer TFLite model, in a child process.

tensorflow-model-optimization (tfmot) only wraps legacy ``tf_keras`` models, and importing
it sets ``TF_USE_LEGACY_KERAS=1`` for the whole process. So the parent calls ``run_qat``,
which starts ``python -m emotion_edge.export.qat`` and reads back a small JSON report; the
child:

1. loads the Keras 3 model and rebuilds the same functional graph with ``tf_keras`` layers
   (``to_tf_keras``: every layer from its ``get_config()``), copies the weights with
   ``set_weights`` and checks the rebuilt model gives the same probabilities;
2. wraps it with ``tfmot.quantization.keras.quantize_model`` and fine-tunes it for a few
   epochs on the training split, against the float model's own probabilities (self-
   distillation), so the class-prior correction folded into the logits is kept;
3. converts it to full int8 TFLite, calibrated on the parent's representative images.
"""

from __future__ import annotations

import argparse
import inspect
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

if TYPE_CHECKING:
    from .exporter import ExportJob

log = logging.getLogger(__name__)

#: the float rebuild must match the Keras 3 model this closely (max abs probability diff)
REBUILD_TOLERANCE = 1e-4
#: keyword arguments every tf_keras layer takes besides its own
_BASE_LAYER_KWARGS = {"name", "trainable", "dtype"}
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


# ---------------------------------------------------------------- the Keras 3 -> tf_keras rebuild


def _plain_config(value: Any) -> Any:
    """A Keras 3 config value in a form tf_keras accepts: serialized objects lose their
    ``module``/``registered_name``, dtype policies become their name."""
    if isinstance(value, dict):
        if value.get("class_name") == "DTypePolicy":
            return value["config"]["name"]
        if "class_name" in value and "config" in value:
            return {"class_name": value["class_name"], "config": _plain_config(value["config"])}
        return {k: _plain_config(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain_config(v) for v in value)
    return value


def _layer_kwargs(cls: type, config: dict[str, Any]) -> dict[str, Any]:
    """The entries of a Keras 3 layer config that ``cls`` (a tf_keras layer) accepts."""
    accepted = set(_BASE_LAYER_KWARGS)
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            accepted |= set(inspect.signature(init).parameters) - {"self", "kwargs"}
    # initial values do not matter (the weights are copied), and Keras 3 initializers take
    # arguments tf_keras ones lack, so initializers keep tf_keras' defaults
    accepted = {k for k in accepted if not k.endswith("_initializer")}
    kwargs = {k: _plain_config(v) for k, v in config.items() if k in accepted}
    dropped = {k: v for k, v in config.items() if k not in accepted and v not in (None, False)
               and not k.endswith("_initializer")}
    if dropped:
        log.debug("%s: dropping Keras 3 options tf_keras lacks: %s", cls.__name__, dropped)
    return kwargs


def _resolve(value: Any, tensors: dict[tuple[str, int, int], Any]) -> Any:
    """Replace serialized Keras 3 tensors in a node's arguments with rebuilt tf_keras ones."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        name, node, index = value["config"]["keras_history"]
        return tensors[(name, node, index)]
    if isinstance(value, (list, tuple)):
        return [_resolve(v, tensors) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, tensors) for k, v in value.items()}
    return value


def _separable_as_two(tf_keras, config: dict[str, Any]):
    """A SeparableConv2D as DepthwiseConv2D + 1x1 Conv2D: the same function (and what the
    TFLite converter makes of it), in a form tfmot's graph rewriting handles; its separable
    transform miswires models with residual branches."""
    kwargs = _layer_kwargs(tf_keras.layers.SeparableConv2D, config)
    name = kwargs["name"]
    depthwise = tf_keras.layers.DepthwiseConv2D(
        kwargs["kernel_size"], strides=kwargs.get("strides", 1),
        padding=kwargs.get("padding", "valid"),
        depth_multiplier=kwargs.get("depth_multiplier", 1),
        dilation_rate=kwargs.get("dilation_rate", 1), use_bias=False, name=f"{name}_depthwise")
    pointwise = tf_keras.layers.Conv2D(
        kwargs["filters"], 1, use_bias=kwargs.get("use_bias", True),
        activation=kwargs.get("activation"), name=name, dtype=kwargs.get("dtype"))
    return lambda x: pointwise(depthwise(x))


def _dense_batchnorm_pairs(config: dict[str, Any]) -> dict[str, str]:
    """BatchNormalization layers (-> their Dense) that can be folded into that Dense: it feeds
    only them. tfmot leaves such a Dense in float, which would break full-integer export."""
    classes = {spec["name"]: spec["class_name"] for spec in config["layers"]}
    uses: dict[str, int] = {}
    for spec in config["layers"]:
        for node in spec["inbound_nodes"]:
            for name in _history_names(node["args"]):
                uses[name] = uses.get(name, 0) + 1
    pairs = {}
    for spec in config["layers"]:
        if spec["class_name"] != "BatchNormalization" or len(spec["inbound_nodes"]) != 1:
            continue
        inputs = _history_names(spec["inbound_nodes"][0]["args"])
        axis = spec["config"].get("axis", -1)
        if (len(inputs) == 1 and classes.get(inputs[0]) == "Dense" and uses[inputs[0]] == 1
                and axis in (-1, 1, [-1], [1])):
            pairs[spec["name"]] = inputs[0]
    return pairs


def _history_names(value: Any) -> list[str]:
    """Names of the layers whose outputs a node's serialized arguments use."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        return [value["config"]["keras_history"][0]]
    if isinstance(value, (list, tuple)):
        return [n for v in value for n in _history_names(v)]
    return []


def to_tf_keras(model):
    """Rebuild a Keras 3 functional ``model`` with tf_keras layers and copy its weights.

    SeparableConv2D becomes DepthwiseConv2D + Conv2D, and a BatchNormalization after a Dense
    is folded into the Dense's kernel and bias: the same function, in the forms tfmot
    quantises fully.
    """
    import tf_keras

    config = model.get_config()
    if "layers" not in config or "input_layers" not in config:
        raise ExportError(f"QAT needs a functional Keras model; {model.name!r} is not one")
    folded = _dense_batchnorm_pairs(config)
    tensors: dict[tuple[str, int, int], Any] = {}
    for spec in config["layers"]:
        name, class_name, layer_config = spec["name"], spec["class_name"], spec["config"]
        if name in folded:
            tensors[(name, 0, 0)] = tensors[(folded[name], 0, 0)]
            continue
        if name in folded.values():
            layer_config = {**layer_config, "use_bias": True}
        if class_name == "InputLayer":
            shape = layer_config["batch_shape"]
            tensors[(name, 0, 0)] = tf_keras.Input(shape=shape[1:], batch_size=shape[0],
                                                   name=name, dtype=layer_config.get("dtype"))
            continue
        cls = getattr(tf_keras.layers, class_name, None)
        if cls is None:
            raise ExportError(f"QAT: layer {name!r} is a {class_name}, which tf_keras lacks")
        if class_name == "SeparableConv2D":
            layer = _separable_as_two(tf_keras, layer_config)
        else:
            layer = cls(**_layer_kwargs(cls, layer_config))
        for node_index, node in enumerate(spec["inbound_nodes"]):
            args = _resolve(node["args"], tensors)
            kwargs = _resolve(node.get("kwargs", {}), tensors)
            outputs = layer(*args, **kwargs)
            for i, out in enumerate(outputs if isinstance(outputs, (list, tuple)) else [outputs]):
                tensors[(name, node_index, i)] = out
    rebuilt = tf_keras.Model([tensors[t] for t in _endpoints(config["input_layers"])],
                             [tensors[t] for t in _endpoints(config["output_layers"])],
                             name=config["name"])
    _copy_weights(model, rebuilt, folded)
    return rebuilt


def _endpoints(value: list) -> list[tuple[str, int, int]]:
    """A functional config's ``input_layers``/``output_layers``: one ``[name, node, index]``
    or a list of them."""
    items = [value] if value and isinstance(value[0], str) else value
    return [(name, node, index) for name, node, index in items]


def _copy_weights(source, target, folded: dict[str, str]) -> None:
    for layer in source.layers:
        weights = layer.get_weights()
        if not weights or layer.name in folded or layer.name in folded.values():
            continue  # folded pairs are set below
        if type(layer).__name__ == "SeparableConv2D":  # split by _separable_as_two
            _set_weights(target.get_layer(f"{layer.name}_depthwise"), weights[:1], layer.name)
            _set_weights(target.get_layer(layer.name), weights[1:], layer.name)
        else:
            _set_weights(target.get_layer(layer.name), weights, layer.name)
    for bn_name, dense_name in folded.items():
        _set_weights(target.get_layer(dense_name),
                     _fold(source.get_layer(dense_name), source.get_layer(bn_name)), dense_name)


def _fold(dense, bn) -> list[np.ndarray]:
    """Kernel and bias of ``bn(dense(x))`` as one Dense (inference-mode BatchNormalization)."""
    kernel = np.asarray(dense.kernel)
    bias = np.asarray(dense.bias) if dense.use_bias else np.zeros(kernel.shape[-1], np.float32)
    gamma = np.asarray(bn.gamma) if bn.scale else 1.0
    beta = np.asarray(bn.beta) if bn.center else 0.0
    factor = gamma / np.sqrt(np.asarray(bn.moving_variance) + bn.epsilon)
    return [(kernel * factor).astype(np.float32),
            ((bias - np.asarray(bn.moving_mean)) * factor + beta).astype(np.float32)]


def _set_weights(layer, weights: list[np.ndarray], source_name: str) -> None:
    shapes = [w.shape for w in layer.get_weights()]
    if shapes != [w.shape for w in weights]:
        raise ExportError(f"QAT: layer {source_name!r} rebuilt with weight shapes {shapes}, "
                          f"expected {[w.shape for w in weights]}")
    layer.set_weights(weights)


# ---------------------------------------------------------------- child side


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
