"""Tiny model artifacts for tests: a Keras model exported to TFLite, ONNX and OpenVINO, each
with a sidecar.

Test files import these helpers (``from artifacts import make_tflite``); conversions take a
second or two each, so callers build them once per module.
"""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import numpy as np
from conftest import build_tiny_keras, save_with_sidecar
from emotion_edge.runtime.formats import find_format
from emotion_edge.runtime.labels import FER2013_LABELS
from emotion_edge.runtime.preprocess import prepare_batch
from emotion_edge.runtime.sidecar import InputSpec, read_sidecar, write_sidecar


def sample_faces(n: int = 8, seed: int = 0) -> np.ndarray:
    """``n`` uint8 48x48 gray "faces" with class-like brightness patterns."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, (n, 48, 48)).astype(np.int32)
    for i in range(n):
        label = i % 7
        images[i] += label * 28
        images[i, label * 6:(label + 1) * 6, :] = 255
    return np.clip(images, 0, 255).astype(np.uint8)


def sample_batch(n: int = 8, seed: int = 0) -> np.ndarray:
    """``sample_faces`` as model input for the default input spec: float32 (n, 48, 48, 1)."""
    return prepare_batch(list(sample_faces(n, seed)), InputSpec())


def build_varied_keras(seed: int = 0):
    """``build_tiny_keras`` with its last layer set so the top-1 class varies by input.

    The untrained model gives every input nearly the same probabilities; standardising
    the pooled features of ``sample_batch`` in the ``logits`` layer spreads them out (one
    scale for all features, so int8 quantisation keeps them), and
    backends can be compared on their top-1.
    """
    import keras

    model = build_tiny_keras(seed=seed)
    layer = model.get_layer("logits")
    kernel, _ = layer.get_weights()
    features = keras.Model(model.input, layer.input).predict(sample_batch(32, seed=1),
                                                             verbose=0)
    kernel = kernel / features.std(axis=0).mean() * 10.0
    layer.set_weights([kernel, -features.mean(axis=0) @ kernel])
    return model


def build_trained_keras(seed: int = 0):
    """``build_tiny_keras`` trained for a few seconds to tell ``sample_faces``' seven classes
    apart (the tiny CSV's images follow the same pattern): its predictions vary by input,
    with margins wide enough that a correct int8 export agrees on every image."""
    import keras

    model = build_tiny_keras(seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(sample_batch(140, seed=11), np.arange(140) % 7, epochs=40, batch_size=35,
              verbose=0)
    return model


def make_all(folder: Path, model=None) -> dict[str, Path]:
    """One model as Keras, TFLite fp32/fp16/int8, ONNX fp32 and (when OpenVINO is installed)
    OpenVINO fp32 in ``folder``, by registry key."""
    model = model or build_varied_keras()
    folder = Path(folder)
    made = {
        "keras-fp32": make_keras(folder / "tiny.keras", model),
        "tflite-fp32": make_tflite(folder / "tiny.fp32.tflite", model),
        "tflite-fp16": make_tflite(folder / "tiny.fp16.tflite", model, "fp16"),
        "tflite-int8": make_tflite(folder / "tiny.int8.tflite", model, "int8"),
        "onnx-fp32": make_onnx(folder / "tiny.fp32.onnx", model),
    }
    if importlib.util.find_spec("openvino"):
        made["openvino-fp32"] = make_openvino(folder / "tiny.fp32.openvino.xml", made["onnx-fp32"])
    return made


def write_artifact_sidecar(path: Path, fmt: str, precision: str, labels=None,
                           spec: InputSpec | None = None) -> Path:
    row = find_format(fmt, precision)
    write_sidecar(path, {
        "name": "tiny", "format": fmt, "precision": precision,
        "labels": list(labels or FER2013_LABELS), "input": (spec or InputSpec()).to_dict(),
        "sha256": row.sha256(path), "size_bytes": row.size_bytes(path),
    })
    return path


def make_keras(path: Path, model=None) -> Path:
    """The tiny Keras model saved at ``path`` (``*.keras``) with its sidecar."""
    return save_with_sidecar(model or build_tiny_keras(), Path(path))


def make_tflite(path: Path, model=None, precision: str = "fp32") -> Path:
    """Convert the tiny Keras model to TFLite: ``fp32``, ``fp16`` or ``int8`` (int8 I/O)."""
    from emotion_edge.export.tflite import convert_tflite

    calibration = sample_batch(32, seed=1) if precision == "int8" else None
    path = Path(path)
    path.write_bytes(convert_tflite(model or build_tiny_keras(), precision, calibration,
                                    int8_io=True))
    return write_artifact_sidecar(path, "tflite", precision)


def make_onnx(path: Path, model=None) -> Path:
    """Convert the tiny Keras model to ONNX (fp32, opset 17) with a dynamic batch."""
    import tensorflow as tf
    import tf2onnx

    model = model or build_tiny_keras()
    signature = [tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="image")]
    path = Path(path)
    tf2onnx.convert.from_keras(model, input_signature=signature, opset=17,
                               output_path=str(path))
    return write_artifact_sidecar(path, "onnx", "fp32")


def make_openvino(path: Path, onnx_path: Path) -> Path:
    """Convert the ONNX model at ``onnx_path`` to OpenVINO IR at ``path`` (+ its ``.bin``)."""
    from emotion_edge.export.openvino_export import onnx_to_openvino

    onnx_to_openvino(Path(onnx_path), Path(path))
    return write_artifact_sidecar(Path(path), "openvino", "fp32")


def set_operator_input(path: Path, operator: int, slot: int, value: int) -> None:
    """Overwrite input ``slot`` of ``operator`` in the first subgraph of the TFLite flatbuffer
    at ``path`` (fields by the TFLite schema: Model.subgraphs = 2, SubGraph.operators = 3,
    Operator.inputs = 1), as a fuzzer's structural mutation would."""
    data = bytearray(Path(path).read_bytes())

    def field(table: int, index: int) -> int:
        vtable = table - struct.unpack_from("<i", data, table)[0]
        return table + struct.unpack_from("<H", data, vtable + 4 + 2 * index)[0]

    def element(vector_field: int, i: int) -> int:  # position of the i-th element
        vector = vector_field + struct.unpack_from("<I", data, vector_field)[0]
        assert i < struct.unpack_from("<I", data, vector)[0]
        return vector + 4 + 4 * i

    def table_at(pos: int) -> int:
        return pos + struct.unpack_from("<I", data, pos)[0]

    subgraph = table_at(element(field(table_at(0), 2), 0))
    op = table_at(element(field(subgraph, 3), operator))
    struct.pack_into("<i", data, element(field(op, 1), slot), value)
    Path(path).write_bytes(bytes(data))


def edit_sidecar(path: Path, **changes) -> None:
    """Change fields of an artifact's sidecar in place (for tests of disagreeing sidecars)."""
    data = read_sidecar(path)
    data.update(changes)
    write_sidecar(path, data)
