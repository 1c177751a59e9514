"""Packaging: one namespace in site-packages, the CLI entry points, and `info`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from emotion_edge.cli import SUBCOMMANDS

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
    from emotion_edge.runtime.formats import BACKENDS

    assert list(info["engines"]) == list(BACKENDS)
    assert {"litert", "onnxruntime", "keras"} <= set(info["engines"])
    assert info["engines"]["litert"]["extra"] == "tflite"
    default = info["bundled_models"]["default.int8.tflite"]
    path = REPO / "runtime" / "models" / "default.int8.tflite"
    assert default["precision"] == "int8" and default["bytes"] == path.stat().st_size
    assert default["accuracy"] == json.loads(path.with_name(path.name + ".json").read_text())[
        "accuracy"]["privatetest"]
    pair = REPO / "runtime" / "models" / "default.int8.openvino.xml"
    assert info["bundled_models"][pair.name]["bytes"] == (
        pair.stat().st_size + pair.with_suffix(".bin").stat().st_size)
    assert {(f["format"], f["precision"]) for f in info["formats"]} >= {("tflite", "int8"),
                                                                       ("onnx", "int8")}


def test_no_command_prints_help():
    result = subprocess.run([sys.executable, "-m", "emotion_edge"], capture_output=True, text=True)
    assert result.returncode == 2 and "train" in result.stdout


HEAVY = ("tensorflow", "keras", "gradio", "matplotlib", "emotion_edge.train",
         "emotion_edge.export", "emotion_edge.benchmarks", "emotion_edge.app",
         "emotion_edge.video", "emotion_edge.batch")


def _modules_loaded_by(argv: list[str]) -> set[str]:
    """Run ``emotion_edge.cli.main(argv)`` in a fresh interpreter; the heavy modules it loaded."""
    code = ("import contextlib, io, sys\n"
            "from emotion_edge.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            f"    main({argv!r})\n"
            f"print(*[m for m in sys.modules if any(m == h or m.startswith(h + '.')\n"
            f"                                      for h in {HEAVY!r})])\n")
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env).stdout
    return set(out.split())


@pytest.mark.parametrize("argv", [["--help"], []])
def test_top_level_help_imports_no_stage(argv):
    assert _modules_loaded_by(argv) == set()


def test_a_subcommand_imports_its_stage_only_when_it_runs():
    loaded = _modules_loaded_by(["app", "--help"])
    assert "emotion_edge.app" in loaded and "emotion_edge.train" not in loaded


@pytest.mark.parametrize("command", list(SUBCOMMANDS))
def test_a_subcommands_help_imports_no_engine_and_no_other_stage(command):
    module = SUBCOMMANDS[command][0]
    own_stage = ".".join(module.split(".")[:2])
    loaded = _modules_loaded_by([command, "--help"])
    assert {m for m in loaded if not m.startswith(own_stage)} == set()
