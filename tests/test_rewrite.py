"""The int8 TFLite export's space-to-depth stem (``export/rewrite.py``): the same function as
the trained model, in a graph XNNPACK's int8 kernels run faster.

The oracle is the trained graph itself: the stem's activations and the model's outputs of the
rewritten model must equal the original's on varied inputs, with batch-norm statistics far
from the identity so a wrong fold, tap or channel order shows.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("keras")
pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_litert")

import keras  # noqa: E402
from artifacts import sample_batch  # noqa: E402
from conftest import build_tiny_keras  # noqa: E402
from emotion_edge.export.exporter import ExportJob, ExportOptions  # noqa: E402
from emotion_edge.export.rewrite import SPACE_TO_DEPTH_STEM, space_to_depth_stem  # noqa: E402
from emotion_edge.export.tflite import convert_tflite  # noqa: E402
from emotion_edge.runtime.formats import artifact_name, find_format, import_object  # noqa: E402
from emotion_edge.train.models import build_model  # noqa: E402


def _random_batch_norms(model, seed: int = 0):
    """Batch norms with statistics and affine terms far from the identity."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.3, n),
                               rng.normal(0, 0.3, n), rng.uniform(0.3, 2.0, n)])
    return model


def stem_model(shape=(48, 48, 1), c0: int = 4, c1: int = 8, conv_bias: bool = False,
               activation=None, seed: int = 0):
    """Input -> conv 3x3 (c0), BN, ReLU -> conv 3x3 stride 2 (c1), BN, ReLU -> a small head."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape, name="image")
    x = inputs
    for filters, strides in ((c0, 1), (c1, 2)):
        x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=conv_bias,
                                activation=activation)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(7, name="logits")(x)
    outputs = keras.layers.Activation("softmax", name="probabilities")(x)
    return _random_batch_norms(keras.Model(inputs, outputs, name="stem"), seed)


def _inputs(shape, n: int = 12, seed: int = 3) -> np.ndarray:
    """Noise images of differing brightness and contrast, so outputs differ by image."""
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.1, 1.0, (n, 1, 1, 1))
    return (rng.random((n, *shape)) * scale + rng.uniform(0, 1 - scale)).astype(np.float32)


def _stem_output(model, index: int, x: np.ndarray) -> np.ndarray:
    return keras.Model(model.inputs, model.layers[index].output).predict_on_batch(x)


@pytest.mark.parametrize("shape,c0,c1", [((48, 48, 1), 4, 8), ((8, 10, 3), 5, 6),
                                         ((6, 6, 2), 3, 4)])
def test_the_rewritten_stem_computes_the_same_activations(shape, c0, c1):
    model = stem_model(shape, c0, c1, conv_bias=shape[2] == 3)
    rewritten = space_to_depth_stem(model)
    assert rewritten is not None
    assert [type(layer).__name__ for layer in rewritten.layers[1:6]] == [
        "SpaceToDepth", "Conv2D", "ReLU", "Conv2D", "ReLU"]
    x = _inputs(shape)
    before = _stem_output(model, 6, x)  # the second ReLU: (H/2, W/2, c1)
    after = _stem_output(rewritten, 5, x)
    assert before.shape == after.shape == (len(x), shape[0] // 2, shape[1] // 2, c1)
    assert 0.05 < (before > 0).mean() < 0.95  # a stem that passes some values, not all
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5 * np.abs(before).max())
    # log-probabilities: the logits up to a constant per image (the layers are shared)
    before, after = (np.log(m.predict_on_batch(x)) for m in (model, rewritten))
    assert np.ptp(before - before.mean(axis=1, keepdims=True), axis=0).max() > 0.05
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)


def test_the_bundled_shape_is_rewritten_whole():
    """The default's architecture: the layers after the stem are copied, weights and all,
    and the source model is left as it was (it can be rewritten again)."""
    model = _random_batch_norms(build_model("vgg_fast", widths=(16, 32, 32, 32),
                                            depths=(2, 1, 1, 1), dense=16))
    rewritten = space_to_depth_stem(model)
    assert rewritten is not None
    tail = list(zip(rewritten.layers[6:], model.layers[7:], strict=True))
    assert all(a is not b and a.get_config() | {"name": ""} == b.get_config() | {"name": ""}
               for a, b in tail)
    assert all(len(layer._inbound_nodes) == 1 for layer in model.layers)
    assert space_to_depth_stem(model) is not None
    assert rewritten.count_params() > model.count_params()  # the zero taps are real weights
    x = _inputs((48, 48, 1))
    np.testing.assert_allclose(rewritten.predict_on_batch(x), model.predict_on_batch(x),
                               atol=1e-6)


@pytest.mark.parametrize("build", [
    build_tiny_keras,                                       # stride-2 first convolution
    lambda: build_model("mini_xception"),                   # residual branches: no chain
    lambda: stem_model((7, 8, 1)),                          # odd height
    lambda: stem_model(activation="relu"),                  # activation inside the conv
])
def test_other_models_are_left_alone(build):
    assert space_to_depth_stem(build()) is None


def _export(fmt: str, precision: str, model, calibration, folder: Path) -> tuple[dict, Path]:
    """Run the registry's exporter of ``fmt``/``precision`` on ``model``; what it adds to the
    sidecar, and the file."""
    row = find_format(fmt, precision)
    out = folder / artifact_name("m", row)
    job = ExportJob(row=row, model=model, source_path=out, out=out, calibration=calibration,
                    data_path=None, options=ExportOptions())
    return dict(import_object(row.exporter)(job) or {}), out


def test_the_int8_export_converts_the_rewritten_graph(tmp_path):
    """The registry's TFLite exporter rewrites int8 only, records it, and the int8 file stays
    as close to the float model as the plain graph's int8 file."""
    from ai_edge_litert.interpreter import Interpreter

    model, calibration = stem_model(), sample_batch(32, seed=1)
    added, path = _export("tflite", "int8", model, calibration, tmp_path)
    rewritten = path.read_bytes()
    assert added["graph"] == SPACE_TO_DEPTH_STEM
    assert "graph" not in _export("tflite", "fp32", model, calibration, tmp_path)[0]
    plain = convert_tflite(model, "int8", calibration)

    def run(flatbuffer: bytes, x: np.ndarray) -> tuple[np.ndarray, list[str]]:
        it = Interpreter(model_content=flatbuffer, num_threads=1)
        it.resize_tensor_input(0, x.shape)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        ops = [op["op_name"] for op in it._get_ops_details()]
        return it.get_tensor(it.get_output_details()[0]["index"]), ops

    x = sample_batch(16, seed=2)
    reference = model.predict_on_batch(x)
    got, ops = run(rewritten, x)
    baseline, plain_ops = run(plain, x)
    assert "SPACE_TO_DEPTH" in ops and "SPACE_TO_DEPTH" not in plain_ops
    assert np.abs(got - reference).max() <= max(2 * np.abs(baseline - reference).max(), 0.02)


def test_the_onnx_int8_export_converts_the_rewritten_graph(tmp_path):
    """ONNX int8 takes the same graph (a SpaceToDepth node), ONNX fp32 the trained one; the
    int8 file stays as close to the float model as the plain graph's int8 file."""
    pytest.importorskip("tf2onnx")
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from emotion_edge.export.onnx_export import convert_onnx

    model, calibration = stem_model(), sample_batch(32, seed=1)
    added, rewritten = _export("onnx", "int8", model, calibration, tmp_path)
    assert added == {"graph": SPACE_TO_DEPTH_STEM}
    assert _export("onnx", "fp32", model, calibration, tmp_path)[0] == {}
    if importlib.util.find_spec("openvino"):  # the int8 IR is converted from the same graph
        assert _export("openvino", "int8", model, calibration, tmp_path)[0] == added
    plain = tmp_path / "plain.int8.onnx"
    convert_onnx(model, "int8", plain, calibration)

    def run(path: Path, x: np.ndarray) -> tuple[np.ndarray, set[str]]:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        ops = {node.op_type for node in onnx.load(str(path)).graph.node}
        return session.run(None, {session.get_inputs()[0].name: x})[0], ops

    x = sample_batch(16, seed=2)
    reference = model.predict_on_batch(x)
    (got, ops), (baseline, plain_ops) = run(rewritten, x), run(plain, x)
    assert "SpaceToDepth" in ops and "SpaceToDepth" not in plain_ops
    assert np.abs(got - reference).max() <= max(2 * np.abs(baseline - reference).max(), 0.02)
