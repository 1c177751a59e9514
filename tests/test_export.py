"""The export stage: every format and precision from a tiny model, sidecars, parity, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from artifacts import make_tflite
from conftest import build_tiny_keras, save_with_sidecar, write_tiny_csv
from emotion_edge.export import parity
from emotion_edge.export.calibration import stratified_indices
from emotion_edge.export.exporter import Exporter, ExportOptions, export_model, load_source
from emotion_edge.runtime.errors import (
    ConfigError,
    ExportError,
    ExportParityError,
    ModelLoadError,
)
from emotion_edge.runtime.formats import FORMATS, artifact_name
from emotion_edge.runtime.sidecar import read_sidecar, sha256_of

from emotion_edge.cli import main

EXPORTED = [r for r in FORMATS if r.format != "keras"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    for engine in ("tensorflow", "tf2onnx", "onnxruntime", "ai_edge_litert",
                   "tensorflow_model_optimization"):
        pytest.importorskip(engine)
    folder = tmp_path_factory.mktemp("export")
    save_with_sidecar(build_tiny_keras(), folder / "tiny.keras")
    write_tiny_csv(folder / "tiny.csv")
    return folder


@pytest.fixture(scope="module")
def all_rows(workdir: Path) -> list[dict]:
    """``emotion-edge export --all --json`` on the tiny model (QAT with one epoch)."""
    out = workdir / "all"
    code, stdout = _cli(["export", str(workdir / "tiny.keras"), "--all", "--json",
                         "--out", str(out), "--calibration-data", str(workdir / "tiny.csv"),
                         "--qat-epochs", "1"])
    assert code == 0, stdout
    return json.loads(stdout)


def _cli(argv: list[str]) -> tuple[int, str]:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(argv)
    return code, buf.getvalue()


def _options(workdir: Path, out: Path, **kw) -> ExportOptions:
    return ExportOptions(out_dir=out, calibration_data=workdir / "tiny.csv", **kw)


def test_all_exports_every_row_with_sidecar_and_parity(workdir, all_rows):
    assert [(r["format"], r["precision"]) for r in all_rows] == [
        ("keras", "fp32"), *[(r.format, r.precision) for r in EXPORTED]]
    assert all(r["error"] is None and r["accuracy"] is not None for r in all_rows)
    source_sha = sha256_of(workdir / "tiny.keras")
    for row in EXPORTED:
        path = workdir / "all" / artifact_name("tiny", row)
        sidecar = read_sidecar(path)
        assert (sidecar["format"], sidecar["precision"]) == (row.format, row.precision)
        assert sidecar["labels"] == read_sidecar(workdir / "tiny.keras")["labels"]
        assert sidecar["input"] == read_sidecar(workdir / "tiny.keras")["input"]
        assert sidecar["sha256"] == sha256_of(path)
        assert sidecar["size_bytes"] == path.stat().st_size
        assert sidecar["source"]["file"] == "tiny.keras"
        assert sidecar["source"]["sha256"] == source_sha
        assert sidecar["export"]["versions"]["tensorflow"]
        assert sidecar["export"]["quantization"]
        assert "--all" in sidecar["export"]["command"]
        tolerance = parity.TOLERANCES[row.precision]
        assert sidecar["parity"]["passed"] and sidecar["parity"]["metric"] == tolerance.metric
        assert sidecar["parity"]["images"] == 14  # the tiny CSV's PublicTest
        calibrated = row.precision in ("int8", "qat")
        assert (sidecar["export"]["calibration"] is not None) == calibrated
        if calibrated:
            assert sidecar["export"]["calibration"]["images"] == 42
        assert sidecar["accuracy"]["privatetest"] == next(
            r["accuracy"] for r in all_rows if (r["format"], r["precision"]) == (
                row.format, row.precision))
    qat = read_sidecar(workdir / "all" / "tiny.qat.tflite")["export"]["qat"]
    assert qat["options"]["epochs"] == 1 and qat["rebuild_max_abs_diff"] <= 1e-4
    assert not [p for p in (workdir / "all").iterdir() if p.name.startswith(".")]


def test_float_exports_match_tightly(workdir, all_rows):
    by_key = {(r["format"], r["precision"]): r for r in all_rows}
    assert by_key[("tflite", "fp32")]["parity_value"] <= 1e-4
    assert by_key[("onnx", "fp32")]["parity_value"] <= 1e-4
    assert by_key[("tflite", "fp16")]["parity_value"] <= 1e-2


def test_export_refuses_to_overwrite(workdir, all_rows):
    out = workdir / "all"
    before = sha256_of(out / "tiny.fp32.tflite")
    with pytest.raises(ExportError, match="--overwrite"):
        export_model(workdir / "tiny.keras", "tflite", "fp32", _options(workdir, out))
    assert sha256_of(out / "tiny.fp32.tflite") == before
    code, _ = _cli(["export", str(workdir / "tiny.keras"), "--all", "--out", str(out),
                    "--calibration-data", str(workdir / "tiny.csv")])
    assert code == 2
    result = export_model(workdir / "tiny.keras", "tflite", "fp32",
                          _options(workdir, out, overwrite=True))
    assert result.parity.passed


def test_int8_io_and_cli_json(workdir, capsys):
    out = workdir / "int8io"
    code, stdout = _cli(["export", str(workdir / "tiny.keras"), "--to", "tflite",
                         "--precision", "int8", "--int8-io", "--out", str(out),
                         "--calibration-data", str(workdir / "tiny.csv"),
                         "--calibration-size", "21", "--json"])
    assert code == 0
    report = json.loads(stdout)
    assert report["parity"]["passed"] and report["precision"] == "int8"
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(out / "tiny.int8.tflite"))
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    sidecar = read_sidecar(out / "tiny.int8.tflite")
    assert sidecar["io"] == {"input": "int8", "output": "int8"}
    assert sidecar["export"]["calibration"]["images"] == 21


def test_perturbed_artifact_fails_parity(workdir, all_rows, tmp_path):
    exporter = Exporter(workdir / "tiny.keras", _options(workdir, tmp_path))
    broken = tmp_path / "tiny.fp32.tflite"
    shutil.copy(workdir / "all" / "tiny.fp32.tflite", broken)
    shutil.copy(workdir / "all" / "tiny.fp32.tflite.json", f"{broken}.json")
    assert exporter.check_parity(broken, "fp32").passed
    other = build_tiny_keras()
    other.set_weights([w * 1.05 for w in other.get_weights()])
    broken.write_bytes(make_tflite(tmp_path / "other.fp32.tflite", other).read_bytes())
    result = exporter.check_parity(broken, "fp32")
    assert not result.passed and result.max_abs_diff > 1e-4
    with pytest.raises(ExportParityError, match=r"max_abs_diff .* tolerance <= 0.0001"):
        parity.require_parity(result, broken)


def test_failed_parity_leaves_no_file(workdir, tmp_path, monkeypatch):
    monkeypatch.setitem(parity.TOLERANCES, "fp16", parity.Tolerance("max_abs_diff", -1.0))
    with pytest.raises(ExportParityError, match="tiny.fp16.tflite"):
        export_model(workdir / "tiny.keras", "tflite", "fp16", _options(workdir, tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_truncated_artifacts_fail_to_load(workdir, all_rows, tmp_path):
    from emotion_edge.runtime import load_predictor

    for name in ("tiny.fp32.tflite", "tiny.fp32.onnx"):
        data = (workdir / "all" / name).read_bytes()
        (tmp_path / name).write_bytes(data[:len(data) // 2])
        shutil.copy(workdir / "all" / f"{name}.json", tmp_path / f"{name}.json")
        with pytest.raises(ModelLoadError, match=name):
            load_predictor(tmp_path / name)
    data = (workdir / "tiny.keras").read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[:len(data) // 2])
    shutil.copy(workdir / "tiny.keras.json", tmp_path / "cut.keras.json")
    with pytest.raises(ModelLoadError, match="cut.keras"):
        load_source(tmp_path / "cut.keras")


def test_bad_model_files(workdir, tmp_path):
    with pytest.raises(ModelLoadError, match="no such model file"):
        load_source(tmp_path / "missing.keras")
    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    shutil.copy(workdir / "tiny.keras.json", f"{text}.json")
    with pytest.raises(ModelLoadError, match="not a readable Keras model"):
        load_source(text)
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"\x08\x01")
    with pytest.raises(ModelLoadError, match=r"\*\.keras"):
        load_source(onnx_file)
    bare = tmp_path / "bare.keras"
    shutil.copy(workdir / "tiny.keras", bare)
    with pytest.raises(ModelLoadError, match="sidecar"):
        load_source(bare)


@pytest.mark.parametrize("fmt, precision, message", [
    ("coreml", "fp32", "valid formats: keras, onnx, tflite"),
    ("tflite", "int4", "valid precisions: fp32, fp16, dynamic, int8, qat"),
    ("onnx", "fp16", "valid precisions: fp32, int8"),
    ("keras", "fp32", "source format"),
])
def test_unknown_format_or_precision(workdir, tmp_path, fmt, precision, message):
    with pytest.raises(ConfigError, match=message):
        export_model(workdir / "tiny.keras", fmt, precision, _options(workdir, tmp_path))


@pytest.mark.parametrize("fmt, precision", [("tflite", "int8"), ("tflite", "qat"),
                                            ("onnx", "int8")])
def test_calibration_data_required(workdir, tmp_path, fmt, precision):
    with pytest.raises(ConfigError, match="--calibration-data PATH"):
        export_model(workdir / "tiny.keras", fmt, precision, ExportOptions(out_dir=tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_cli_reports_errors_cleanly(workdir, tmp_path, capsys):
    model = str(workdir / "tiny.keras")
    cases = [
        (["export", str(tmp_path / "none.keras"), "--to", "tflite", "--precision", "fp32"],
         "no such model file"),
        (["export", model, "--to", "tflite", "--precision", "int3"], "valid precisions"),
        (["export", model, "--to", "tflite"], "--precision"),
        (["export", model, "--to", "tflite", "--precision", "int8", "--out", str(tmp_path)],
         "--calibration-data"),
        (["export", model, "--to", "tflite", "--precision", "fp32", "--calibration-data",
          str(tmp_path / "missing.csv"), "--out", str(tmp_path)], "missing.csv"),
        (["export", model, "--all", "--precision", "fp32"], "--all"),
        (["export", model, "--to", "tflite", "--precision", "int8", "--calibration-size", "0"],
         "--calibration-size"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    assert [p for p in tmp_path.iterdir() if p.suffix != ".keras"] == []


def test_stratified_calibration_sample():
    y = np.repeat(np.arange(7), [400, 40, 400, 700, 480, 310, 500])
    picked = stratified_indices(y, 500, seed=3)
    assert len(picked) == 500 and len(set(picked)) == 500
    counts = np.bincount(y[picked], minlength=7)
    assert counts.min() >= 1 and abs(counts[3] - 700 * 500 / len(y)) <= 1
    assert np.array_equal(picked, stratified_indices(y, 500, seed=3))
    assert not np.array_equal(picked, stratified_indices(y, 500, seed=4))
    assert len(stratified_indices(y, 5000, seed=0)) == len(y)


def test_tolerances_cover_every_exported_precision():
    assert {r.precision for r in EXPORTED} == set(parity.TOLERANCES)


def test_export_cli_module_is_light():
    code = ("import sys, emotion_edge.export.cli; "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.slow
def test_bundled_artifacts_meet_their_bars(fer_csv):
    from emotion_edge.runtime import load_predictor, prepare_batch
    from emotion_edge.runtime.bundled import models_dir
    from emotion_edge.data.datasets import load_split

    folder = models_dir()
    if not (folder / "default.keras").is_file():
        pytest.skip(f"no bundled model at {folder / 'default.keras'}")
    test = load_split(fer_csv, "test")

    def top1(name: str) -> np.ndarray:
        with load_predictor(folder / name) as predictor:
            x = prepare_batch(list(test.x), predictor.input_spec)
            return np.concatenate([predictor.predict(x[i:i + 512]).argmax(1)
                                   for i in range(0, len(x), 512)])

    keras_pred = top1("default.keras")
    accuracy = {name: float((top1(name) == test.y).mean()) * 100
                for name in ("default.int8.tflite", "default.fp16.tflite")}
    keras_acc = float((keras_pred == test.y).mean()) * 100
    assert abs(accuracy["default.int8.tflite"] - keras_acc) <= 1.0
    assert abs(accuracy["default.fp16.tflite"] - keras_acc) <= 0.1
    assert np.array_equal(top1("default.fp32.onnx"), keras_pred)
    int8_size = (folder / "default.int8.tflite").stat().st_size
    assert int8_size <= 0.3 * (folder / "default.fp32.tflite").stat().st_size
