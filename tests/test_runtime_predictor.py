"""The predictor layer on real engines: tiny artifacts made here, one per format."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import threading
from dataclasses import FrozenInstanceError
from pathlib import Path

import numpy as np
import pytest
from artifacts import (
    build_varied_keras,
    edit_sidecar,
    make_all,
    make_onnx,
    make_tflite,
    sample_batch,
    sample_faces,
    set_operator_input,
)
from conftest import build_tiny_keras
from emotion_edge.runtime import (
    BackendUnavailableError,
    ConfigError,
    InputShapeError,
    ModelLoadError,
    bundled,
    load_predictor,
    prepare_batch,
)
from emotion_edge.runtime.formats import BACKENDS, Backend
from emotion_edge.runtime.labels import FER2013_LABELS
from emotion_edge.runtime.sidecar import InputSpec, sha256_of, sidecar_path

pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")

KEYS = ("keras-fp32", "tflite-fp32", "tflite-fp16", "tflite-int8", "onnx-fp32",
        *(("openvino-fp32",) if importlib.util.find_spec("openvino") else ()))


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    return make_all(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def reference(models) -> np.ndarray:
    with load_predictor(models["keras-fp32"]) as predictor:
        return predictor.predict(sample_batch(8, seed=5))


def copy_artifact(src: Path, dst: Path, *, sidecar: bool = True) -> Path:
    shutil.copyfile(src, dst)
    if sidecar:
        shutil.copyfile(sidecar_path(src), sidecar_path(dst))
    return dst


@pytest.mark.parametrize("key", KEYS)
def test_backends_agree_with_keras(models, reference, key):
    with load_predictor(models[key], threads=2) as predictor:
        probs = predictor.predict(sample_batch(8, seed=5))
        assert (predictor.info.format, predictor.info.precision) == tuple(key.split("-"))
    assert probs.shape == (8, 7) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    agreement = np.mean(probs.argmax(1) == reference.argmax(1))
    assert len(set(reference.argmax(1))) > 2, "the test model should not predict one class"
    if key.endswith("int8"):
        assert agreement >= 0.75
    else:
        assert agreement == 1.0
        assert np.abs(probs - reference).max() <= (1e-2 if key.endswith("fp16") else 1e-4)


@pytest.mark.parametrize("key", KEYS)
def test_any_batch_size(models, key):
    x = sample_batch(5, seed=2)
    with load_predictor(models[key]) as predictor:
        five = predictor.predict(x)
        one = predictor.predict(x[:1])
        again = predictor.predict(x)
        empty = predictor.predict(x[:0])
    assert one.shape == (1, 7) and empty.shape == (0, 7)
    np.testing.assert_allclose(one[0], five[0], atol=1e-5)
    np.testing.assert_allclose(again, five, atol=1e-6)


def test_info_labels_and_spec(models):
    with load_predictor(models["tflite-int8"], threads=1) as predictor:
        info = predictor.info
        assert (info.backend, info.format, info.precision) == ("litert", "tflite", "int8")
        assert info.threads == 1 and info.file_size == models["tflite-int8"].stat().st_size
        assert predictor.labels == FER2013_LABELS
        assert (predictor.input_spec.height, predictor.input_spec.channels) == (48, 1)
        with pytest.raises(FrozenInstanceError):
            info.backend = "onnxruntime"
    with pytest.raises(ModelLoadError, match="closed"):
        predictor.predict(sample_batch(1))


@pytest.mark.parametrize("bad, match", [
    (np.zeros((48, 48, 1), np.float32), r"\(N, 48, 48, 1\)"),
    (np.zeros((2, 32, 32, 1), np.float32), r"\(N, 48, 48, 1\).*\(2, 32, 32, 1\)"),
    (np.zeros((2, 48, 48, 3), np.float32), r"\(N, 48, 48, 1\)"),
    (np.zeros((2, 48, 48, 1), np.uint8), "dtype uint8"),
    (np.full((2, 48, 48, 1), np.nan, np.float32), "NaN or infinite"),
    (np.full((1, 48, 48, 1), np.inf), "NaN or infinite"),
    ([[0.0]], "NumPy array"),
])
def test_wrong_input_is_an_input_shape_error(models, bad, match):
    with load_predictor(models["tflite-fp32"]) as predictor, \
            pytest.raises(InputShapeError, match=match):
        predictor.predict(bad)


def test_float64_is_cast(models):
    x = sample_batch(2)
    with load_predictor(models["onnx-fp32"]) as predictor:
        np.testing.assert_allclose(predictor.predict(x.astype(np.float64)), predictor.predict(x))


def test_plain_tflite_name_takes_precision_from_sidecar(models, tmp_path):
    path = copy_artifact(models["tflite-int8"], tmp_path / "model.tflite")
    with load_predictor(path) as predictor:
        assert predictor.info.precision == "int8"


@pytest.mark.parametrize("key, damage", [
    ("tflite-fp32", lambda data: data[:100]),
    ("tflite-fp32", lambda data: data[:len(data) // 2]),
    ("tflite-fp32", lambda data: b"this is not a model\n"),
    ("onnx-fp32", lambda data: data[:100]),
    ("onnx-fp32", lambda data: b"this is not a model\n"),
    ("keras-fp32", lambda data: data[:100]),
    ("keras-fp32", lambda data: b""),
])
def test_corrupt_model_is_a_load_error(models, tmp_path, key, damage):
    src = models[key]
    path = copy_artifact(src, tmp_path / src.name)
    path.write_bytes(damage(src.read_bytes()))
    with pytest.raises(ModelLoadError, match=path.name):
        load_predictor(path)


def test_missing_file_and_sidecar(models, tmp_path):
    with pytest.raises(ModelLoadError, match="no such model file"):
        load_predictor(tmp_path / "absent.int8.tflite")
    path = copy_artifact(models["tflite-fp32"], tmp_path / "x.fp32.tflite", sidecar=False)
    with pytest.raises(ModelLoadError, match="sidecar .* is missing"):
        load_predictor(path)
    sidecar_path(path).write_text("{not json")
    with pytest.raises(ModelLoadError, match="JSON"):
        load_predictor(path)


def test_a_file_of_no_model_format_is_not_a_model_file(tmp_path):
    """The name is checked against the registry before the sidecar is looked for."""
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list\n")
    with pytest.raises(ModelLoadError, match=r"notes\.txt: not a model file; expected one of "
                                             r"\.keras, \.onnx, \.tflite, \.xml"):
        load_predictor(notes)


@pytest.mark.parametrize("changes, match", [
    ({"labels": list(FER2013_LABELS) + ["contempt"]}, "7 outputs .* 8 labels"),
    ({"input": InputSpec(height=64, width=64).to_dict()}, r"\(48, 48, 1\).*\(64, 64, 1\)"),
    ({"input": InputSpec(channels=3, color="rgb").to_dict()}, "sidecar says"),
    ({"input": {k: v for k, v in InputSpec().to_dict().items() if k != "scale"}},
     "lacks scale; a sidecar must record every field"),
    ({"precision": "fp16"}, "sidecar says tflite fp16"),
    ({"format": "onnx"}, "sidecar says onnx"),
    ({"labels": ["a", "a", "b", "c", "d", "e", "f"]}, "duplicates"),
])
@pytest.mark.parametrize("key", ["tflite-int8", "onnx-fp32"])
def test_disagreeing_sidecar_is_a_load_error(models, tmp_path, key, changes, match):
    if key.startswith("onnx") and "format" in changes:
        changes = {"format": "tflite"}
        match = "sidecar says tflite"
    if key.startswith("onnx") and "precision" in changes:
        match = "sidecar says onnx fp16"
    path = copy_artifact(models[key], tmp_path / models[key].name)
    edit_sidecar(path, **changes)
    with pytest.raises(ModelLoadError, match=match):
        load_predictor(path)


def test_backend_choice(models):
    with load_predictor(models["onnx-fp32"], backend="onnxruntime") as predictor:
        assert predictor.info.backend == "onnxruntime"
    with pytest.raises(ConfigError, match="'litert' backend, not 'onnxruntime'"):
        load_predictor(models["tflite-fp32"], backend="onnxruntime")
    with pytest.raises(ConfigError, match="unknown backend"):
        load_predictor(models["tflite-fp32"], backend="tensorrt")
    with pytest.raises(ConfigError, match="threads"):
        load_predictor(models["tflite-fp32"], threads=0)


@pytest.mark.parametrize("key, extra", [("onnx-fp32", "onnx"), ("tflite-fp32", "tflite"),
                                        ("keras-fp32", "keras")])
def test_missing_engine_names_the_extra(models, monkeypatch, key, extra):
    name = {"onnx": "onnxruntime", "tflite": "litert", "keras": "keras"}[extra]
    real = BACKENDS[name]
    monkeypatch.setitem(BACKENDS, name, Backend(name, "no_such_engine_xyz", real.extra,
                                                real.title))
    with pytest.raises(BackendUnavailableError, match=rf"pip install 'emotion-edge\[{extra}\]'"):
        load_predictor(models[key])


@pytest.mark.parametrize("key", ["tflite-int8", "onnx-fp32"])
def test_shared_between_threads(models, key):
    batches = [sample_batch(n, seed=n) for n in (1, 3, 5, 2, 4, 1, 5, 3)]
    with load_predictor(models[key]) as predictor:
        expected = [predictor.predict(b) for b in batches]
        results: dict[tuple[int, int], np.ndarray] = {}

        def work(worker: int) -> None:
            for _ in range(3):
                for i, batch in enumerate(batches):
                    results[worker, i] = predictor.predict(batch)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(results) == 4 * len(batches)
    for (_, i), probs in results.items():
        np.testing.assert_allclose(probs, expected[i], atol=1e-6)


def test_bundled_names(models, tmp_path, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setattr(bundled, "models_dir", lambda: folder)
    assert bundled.bundled_models() == {}
    with pytest.raises(ModelLoadError, match=r"no bundled model 'default' \(bundled: none\)"):
        load_predictor()
    for key in ("keras-fp32", "tflite-fp32", "tflite-int8", "onnx-fp32"):
        suffix = models[key].name.removeprefix("tiny")
        copy_artifact(models[key], folder / f"default{suffix}")
    (folder / "README.md").write_text("not a model")
    assert [p.name for p in bundled.bundled_models()["default"]] == [
        "default.keras", "default.fp32.tflite", "default.int8.tflite", "default.fp32.onnx"]
    assert bundled.resolve_model(None).name == "default.int8.tflite"
    assert bundled.resolve_model("default").name == "default.int8.tflite"
    assert bundled.resolve_model("default-keras").name == "default.keras"
    assert bundled.resolve_model("default-tflite").name == "default.fp32.tflite"
    assert bundled.resolve_model("default-onnx-fp32").name == "default.fp32.onnx"
    assert bundled.resolve_model("default.fp32.tflite").name == "default.fp32.tflite"
    with pytest.raises(ModelLoadError, match="no bundled model 'default-tflite-fp16'"):
        bundled.resolve_model("default-tflite-fp16")
    with pytest.raises(ModelLoadError, match="no such model file"):
        bundled.resolve_model("other.int8.tflite")
    with load_predictor() as predictor:
        assert predictor.info.path == folder / "default.int8.tflite"


def _no_tensorflow_script(model: Path | None) -> str:
    return (
        "import json, sys\n"
        "import numpy as np\n"
        "import emotion_edge.runtime as rt\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        f"with rt.load_predictor({str(model)!r} if {model is not None} else None) as p:\n"
        "    spec = p.input_spec\n"
        "    faces = [np.full((60, 50), 128, np.uint8), np.zeros((40, 40, 3), np.uint8)]\n"
        "    probs = p.predict(rt.prepare_batch(faces, spec))\n"
        "assert probs.shape == (2, len(p.labels)), probs.shape\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras', 'tf2onnx', 'onnx', 'onnxruntime'))\n"
        "print(json.dumps(heavy))\n"
    )


@pytest.mark.parametrize("which", ["tiny", "bundled"])
def test_runtime_runs_tflite_without_tensorflow(models, which):
    model = models["tflite-int8"] if which == "tiny" else None
    if which == "bundled" and not bundled.bundled_models():
        pytest.skip("no bundled model yet")
    done = subprocess.run([sys.executable, "-c", _no_tensorflow_script(model)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_int8_model_xnnpack_refuses_runs_on_builtin_kernels(tmp_path, caplog):
    import keras

    # Features scaled one by one, so near-dead ones get huge weights: XNNPACK cannot
    # represent that fully-connected layer's int8 scales and refuses the whole model.
    model = build_tiny_keras()
    layer = model.get_layer("logits")
    kernel, bias = layer.get_weights()
    features = keras.Model(model.input, layer.input).predict(sample_batch(32, seed=1),
                                                             verbose=0)
    layer.set_weights([kernel / (features.std(axis=0) + 1e-6)[:, None], bias])
    path = make_tflite(tmp_path / "odd.int8.tflite", model, "int8")
    with caplog.at_level("WARNING"), load_predictor(path) as predictor:
        probs = predictor.predict(sample_batch(3))
    assert "XNNPACK cannot run this model" in caplog.text
    assert np.isfinite(probs).all() and probs.shape == (3, 7)


# ---- the model contract: complete input spec, intact files, probabilities out


@pytest.mark.parametrize("field", ["scale", "offset", "color", "layout"])
def test_sidecar_missing_an_input_field_is_refused(models, tmp_path, field):
    path = copy_artifact(models["tflite-fp32"], tmp_path / "m.fp32.tflite")
    spec = {k: v for k, v in InputSpec().to_dict().items() if k != field}
    edit_sidecar(path, input=spec)
    with pytest.raises(ModelLoadError, match=rf"lacks {field}; a sidecar must record every"):
        load_predictor(path)


@pytest.mark.parametrize("key", ["tflite-fp32", "onnx-fp32", "keras-fp32"])
def test_flipped_bits_are_refused(models, tmp_path, key):
    path = copy_artifact(models[key], tmp_path / models[key].name)
    data = bytearray(path.read_bytes())
    for i in range(16):  # 16 bits in the second half, where the weights are
        data[len(data) // 2 + 131 * i] ^= 0x04
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="sha256 differs .* damaged or replaced"):
        load_predictor(path)


def test_size_and_missing_hash_are_checked(models, tmp_path):
    path = copy_artifact(models["onnx-fp32"], tmp_path / "m.fp32.onnx")
    edit_sidecar(path, size_bytes=123)
    with pytest.raises(ModelLoadError, match="its sidecar records 123"):
        load_predictor(path)
    edit_sidecar(path, size_bytes=path.stat().st_size, sha256=None)
    with pytest.raises(ModelLoadError, match="records no sha256"):
        load_predictor(path)


def _logits_model():
    import keras

    model = build_varied_keras()
    return keras.Model(model.input, model.get_layer("logits").output)


def test_logits_model_is_refused_at_load(tmp_path):
    path = make_tflite(tmp_path / "logits.fp32.tflite", _logits_model())
    with pytest.raises(ModelLoadError, match="outputs are not probabilities .* softmax"):
        load_predictor(path)


def test_nan_model_is_refused_at_load(tmp_path):
    model = build_tiny_keras()
    layer = model.get_layer("logits")
    kernel, bias = layer.get_weights()
    layer.set_weights([np.full_like(kernel, np.nan), bias])
    path = make_onnx(tmp_path / "nan.fp32.onnx", model)
    with pytest.raises(ModelLoadError, match="NaN or infinite outputs"):
        load_predictor(path)


def test_big_batches_are_chunked_with_the_same_result(models):
    import tracemalloc

    faces = np.concatenate([sample_faces(7, seed=s) for s in range(20000 // 7 + 1)])[:20000]
    with load_predictor(models["tflite-int8"]) as predictor:
        tracemalloc.start()
        probs = predictor.predict_batch(faces, batch_size=500)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        pieces = [predictor.predict(prepare_batch(list(faces[i:i + 1000]), InputSpec()))
                  for i in range(0, len(faces), 1000)]
        floats = predictor.predict_batch(prepare_batch(list(faces[:300]), InputSpec()), 64)
    assert probs.shape == (20000, 7)
    np.testing.assert_allclose(probs, np.concatenate(pieces), atol=1e-6)
    np.testing.assert_allclose(floats, probs[:300], atol=1e-6)
    # one float batch of every face would take 184 MB; chunks of 500 stay far below that
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    assert len(set(probs.argmax(1))) > 2


def test_predict_batch_refuses_unprepared_floats(models):
    with load_predictor(models["onnx-fp32"]) as predictor:
        with pytest.raises(InputShapeError, match=r"prepared model input .* \(N, 48, 48, 1\)"):
            predictor.predict_batch(np.zeros((3, 48, 48), np.float32))
        with pytest.raises(ConfigError, match="batch size"):
            predictor.predict_batch(sample_faces(3), batch_size=0)
        assert predictor.predict_batch(sample_faces(0)).shape == (0, 7)


def test_a_tflite_that_crashes_litert_is_a_load_error(models, tmp_path):
    """A weights index of -1 makes LiteRT dereference nothing: a process that opens and runs
    the file directly dies; ours opens it in a child first and raises."""
    bundled_int8 = bundled.models_dir() / "default.int8.tflite"
    if not bundled_int8.is_file():
        pytest.skip("no bundled int8 model to mutate")
    path = copy_artifact(bundled_int8, tmp_path / "bad.int8.tflite")
    from ai_edge_litert.interpreter import Interpreter

    ops = Interpreter(model_path=str(path))._get_ops_details()  # read, not run
    first_conv = next(op["index"] for op in ops if op["op_name"] == "CONV_2D")
    set_operator_input(path, operator=first_conv, slot=1, value=-1)  # its weights
    edit_sidecar(path, sha256=sha256_of(path))  # a hostile file comes with a matching sidecar
    direct = subprocess.run([sys.executable, "-c", (
        "import sys, numpy as np; from ai_edge_litert.interpreter import Interpreter\n"
        "i = Interpreter(model_path=sys.argv[1]); i.allocate_tensors()\n"
        "i.set_tensor(i.get_input_details()[0]['index'], np.zeros((1, 48, 48, 1), 'f4'))\n"
        "i.invoke()"), str(path)], capture_output=True, timeout=120)
    assert direct.returncode < 0, "the mutation should crash LiteRT"
    with pytest.raises(ModelLoadError, match=r"bad.int8.tflite: LiteRT crashed \(SIG"):
        load_predictor(path)
    with load_predictor(models["tflite-int8"]) as predictor:  # this process lives on
        assert predictor.predict(sample_batch(2)).shape == (2, 7)


def test_a_big_prepared_batch_runs_in_chunks(models):
    x = np.concatenate([sample_batch(7, seed=s) for s in range(100)])  # 700 > one chunk
    with load_predictor(models["onnx-fp32"]) as predictor:
        whole = predictor.predict(x)
        pieces = np.concatenate([predictor.predict(x[i:i + 100]) for i in range(0, 700, 100)])
    np.testing.assert_allclose(whole, pieces, atol=1e-6)
