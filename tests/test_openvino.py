"""OpenVINO IR through the runtime: the bundled pair agrees with the other formats, a broken
or incomplete pair is refused, threads and backend choice; OpenVINO also runs the ONNX
files."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from artifacts import sample_faces
from conftest import FER_CSV
from emotion_edge.runtime import (
    BackendUnavailableError,
    ConfigError,
    ModelLoadError,
    load_predictor,
)
from emotion_edge.runtime.bundled import models_dir
from emotion_edge.runtime.formats import BACKENDS, Backend

pytest.importorskip("openvino")
FOLDER = models_dir()
FP32, INT8 = FOLDER / "default.fp32.openvino.xml", FOLDER / "default.int8.openvino.xml"
pytestmark = pytest.mark.skipif(not INT8.is_file(), reason="no bundled OpenVINO model")


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    """Varied uint8 crops: 300 PublicTest faces when FER2013 is here, the tiny data's class
    patterns and plain noise otherwise."""
    if FER_CSV.is_file():
        from emotion_edge.data.datasets import load_split

        return load_split(FER_CSV, "val").x[:300]
    noise = np.random.default_rng(3).integers(0, 256, (50, 48, 48), dtype=np.uint8)
    return np.concatenate([sample_faces(70, seed=4), noise])


def _probs(model: Path | str, faces: np.ndarray, **kw) -> np.ndarray:
    with load_predictor(model, **kw) as predictor:
        return predictor.predict_batch(faces, batch_size=32)


def test_fp32_ir_matches_onnx_fp32(faces):
    ov, onnx = _probs(FP32, faces), _probs(FOLDER / "default.fp32.onnx", faces)
    assert len(set(onnx.argmax(1))) >= 3, "the inputs should not all get one class"
    assert np.abs(ov - onnx).max() <= 1e-4


def test_int8_ir_agrees_with_fp32(faces):
    int8, fp32 = _probs(INT8, faces), _probs(FOLDER / "default.fp32.onnx", faces)
    assert np.mean(int8.argmax(1) == fp32.argmax(1)) >= 0.95
    np.testing.assert_allclose(int8.sum(1), 1.0, atol=1e-5)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_onnx_files_run_on_openvino_as_their_ir_does(faces, precision):
    """OpenVINO reads the ONNX file itself: the same numbers as the IR made from it (int8:
    within one step of the quantised output, 1/255, as the two graphs are compiled apart)."""
    onnx = FOLDER / f"default.{precision}.onnx"
    with load_predictor(onnx, backend="openvino") as predictor:
        info = predictor.info
        assert (info.backend, info.format, info.precision) == ("openvino", "onnx", precision)
        direct = predictor.predict_batch(faces, batch_size=32)
    ir = _probs(FP32 if precision == "fp32" else INT8, faces)
    assert len(set(ir.argmax(1))) >= 3, "the inputs should not all get one class"
    np.testing.assert_allclose(direct, ir, atol=1e-6 if precision == "fp32" else 1 / 255 + 1e-6)
    assert np.mean(direct.argmax(1) == ir.argmax(1)) >= 0.99
    if precision == "fp32":  # and within fp32 parity of ONNX Runtime on the same file
        assert np.abs(direct - _probs(onnx, faces)).max() <= 1e-4
    with pytest.raises(ConfigError, match=f"ONNX {precision} models run on the 'onnxruntime' "
                                          "or 'openvino' backend, not 'litert'"):
        load_predictor(onnx, backend="litert")


def test_names_threads_and_backend(faces):
    with load_predictor("default-openvino-int8", threads=1, backend="openvino") as predictor:
        info = predictor.info
        assert (info.backend, info.format, info.precision) == ("openvino", "openvino", "int8")
        assert info.file_size == INT8.stat().st_size + INT8.with_suffix(".bin").stat().st_size
        one = predictor.predict_batch(faces[:5])
    np.testing.assert_allclose(one, _probs(INT8, faces[:5], threads=2), atol=1e-6)
    with pytest.raises(ConfigError, match="OpenVINO int8 models run on the 'openvino' backend"):
        load_predictor(INT8, backend="onnxruntime")


def test_shared_between_threads(faces):
    with load_predictor(INT8) as predictor:
        expected = predictor.predict_batch(faces)
        results = {}

        def work(i: int) -> None:
            results[i] = predictor.predict_batch(faces[i * 7:], batch_size=5 + i)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for i, probs in results.items():
        np.testing.assert_allclose(probs, expected[i * 7:], atol=1e-6)


def _copy_pair(tmp_path: Path, src: Path = INT8) -> Path:
    dst = tmp_path / src.name
    for suffix in (".xml", ".bin", ".xml.json"):
        shutil.copy(src.with_name(src.name[:-4] + suffix), dst.with_name(dst.name[:-4] + suffix))
    return dst


def test_missing_bin_is_named(tmp_path):
    xml = _copy_pair(tmp_path)
    xml.with_suffix(".bin").unlink()
    with pytest.raises(ModelLoadError, match=r"needs default.int8.openvino.bin beside it"):
        load_predictor(xml)


@pytest.mark.parametrize("member", [".xml", ".bin"])
def test_flipped_bits_in_either_file_are_refused(tmp_path, member):
    path = _copy_pair(tmp_path).with_suffix(member)
    data = bytearray(path.read_bytes())
    for i in range(16):
        data[len(data) // 3 + 97 * i] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="sha256 differs"):
        load_predictor(path.with_suffix(".xml"))


def test_missing_engine_names_the_extra(monkeypatch):
    real = BACKENDS["openvino"]
    monkeypatch.setitem(BACKENDS, "openvino", Backend("openvino", "no_such_engine_xyz",
                                                      real.extra, real.title, real.engine_class))
    with pytest.raises(BackendUnavailableError, match=r"pip install 'emotion-edge\[openvino\]'"):
        load_predictor(INT8)


def test_evaluate_reads_the_registry(tiny_csv, tmp_path):
    import json

    from emotion_edge.data.datasets import load_split

    from emotion_edge.cli import main

    out = tmp_path / "eval.json"
    assert main(["evaluate", "default-openvino-int8", "--data", str(tiny_csv), "--split", "test",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert (report["format"], report["precision"], report["backend"]) == (
        "openvino", "int8", "openvino")
    test = load_split(tiny_csv, "test")
    expected = float((_probs(INT8, test.x).argmax(1) == test.y).mean())
    assert report["accuracy"] == pytest.approx(expected) and report["images_scored"] == 14
