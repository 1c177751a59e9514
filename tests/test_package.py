"""Packaging: one namespace in site-packages, the CLI entry points, and `info`."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                             str(out), str(REPO)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{result.stderr[-2000:]}")
    return next(out.glob("emotion_edge-*.whl"))


def test_wheel_installs_only_the_emotion_edge_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"emotion_edge"}
    for stage in ("train", "export", "runtime", "benchmarks", "app"):
        assert f"emotion_edge/{stage}/__init__.py" in names
    assert any(n.startswith("emotion_edge/runtime/detectors/") and n.endswith(".tflite")
               for n in names)


def test_python_dash_m_and_console_script_agree():
    out = subprocess.run([sys.executable, "-m", "emotion_edge", "--version"],
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith("emotion-edge ")


def test_info_json_lists_engines():
    out = subprocess.run([sys.executable, "-m", "emotion_edge", "info", "--json", "--formats"],
                         capture_output=True, text=True, check=True).stdout
    info = json.loads(out)
    assert set(info["engines"]) == {"litert", "onnxruntime", "keras"}
    assert info["engines"]["litert"]["extra"] == "tflite"
    assert isinstance(info["bundled_models"], dict)
    assert {(f["format"], f["precision"]) for f in info["formats"]} >= {("tflite", "int8"),
                                                                       ("onnx", "int8")}


def test_no_command_prints_help():
    result = subprocess.run([sys.executable, "-m", "emotion_edge"], capture_output=True, text=True)
    assert result.returncode == 2 and "train" in result.stdout
