"""The one LiteRT helper: loading from a path or bytes, batch resizing, typed errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from emotion_edge.runtime.bundled import resolve_model
from emotion_edge.runtime.errors import ModelLoadError
from emotion_edge.runtime.litert import open_litert

pytest.importorskip("ai_edge_litert")


@pytest.fixture(scope="module")
def model_path():
    return resolve_model("default.fp32.tflite")


def _faces(count: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.random((count, 48, 48, 1), dtype=np.float32)


def test_path_and_bytes_give_the_same_outputs(model_path):
    faces = _faces(1)
    with open_litert(model_path, threads=1) as by_path, \
            open_litert(model_path.read_bytes(), threads=1, name="bytes") as by_bytes:
        (a,), (b,) = by_path.run([faces]), by_bytes.run([faces])
    np.testing.assert_array_equal(a, b)
    assert a.shape == (1, 7) and a.sum() == pytest.approx(1.0, abs=1e-5)


def test_a_new_batch_size_resizes_and_matches_single_runs(model_path):
    faces = _faces(5)
    with open_litert(model_path, threads=1) as interpreter:
        singles = np.concatenate([interpreter.run([face[None]])[0] for face in faces])
        (batch,) = interpreter.run([faces])
        assert tuple(interpreter.inputs[0]["shape"]) == (5, 48, 48, 1)
        assert tuple(interpreter.outputs[0]["shape"]) == (5, 7)
    np.testing.assert_allclose(batch, singles, atol=1e-6)
    assert batch.std(axis=0).max() > 1e-3  # rows differ, so a mix-up would show


def test_outputs_are_copies(model_path):
    with open_litert(model_path, threads=1) as interpreter:
        (first,) = interpreter.run([_faces(1)])
        kept = first.copy()
        interpreter.run([np.zeros((1, 48, 48, 1), np.float32)])
    np.testing.assert_array_equal(first, kept)


def test_typed_errors(model_path, tmp_path):
    with pytest.raises(ModelLoadError, match="cannot load this model"):
        open_litert(b"not a flatbuffer", name="junk.tflite")
    with pytest.raises(ModelLoadError, match="cannot load this model"):
        open_litert(tmp_path / "absent.tflite")
    interpreter = open_litert(model_path, threads=1)
    with pytest.raises(ModelLoadError, match="1 inputs, got 2 arrays"):
        interpreter.run([_faces(1), _faces(1)])
    with pytest.raises(ModelLoadError, match="failed to run"):
        interpreter.run([np.zeros((1, 48, 48, 1), np.float64)])
    interpreter.close()
    with pytest.raises(ModelLoadError, match="was closed"):
        interpreter.run([_faces(1)])


_RECOGNISE = """
import os, sys
from emotion_edge.runtime import EmotionRecognizer, RecognizerOptions
os.write(2, b"before\\n")
with EmotionRecognizer(RecognizerOptions(model=sys.argv[1])) as recognizer:
    print(len(recognizer.analyze(sys.argv[2])))
"""


def test_the_xnnpack_banner_is_not_printed(demo_faces):
    """Opening the classifier and the detector through the library prints nothing of
    LiteRT's on stderr (evaluate, the app, bench and video open models this way)."""
    result = subprocess.run([sys.executable, "-c", _RECOGNISE, "default.int8.tflite",
                             str(demo_faces / "grace_hopper.jpg")],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0 and result.stdout == "1\n", result.stderr
    assert "before" in result.stderr and "XNNPACK" not in result.stderr


def test_other_output_on_fd2_is_passed_on():
    code = ("import os; from emotion_edge.runtime.litert import _without_banner\n"
            "with _without_banner():\n"
            "    os.write(2, b'kept 1\\nINFO: Created TensorFlow Lite XNNPACK delegate for "
            "CPU.\\nkept 2\\n')\n"
            "os.write(2, b'after\\n')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stderr == "kept 1\nkept 2\nafter\n"
