"""Edge cases of user input: EXIF orientation, bad sidecar types, names vs paths, options,
and images that are huge, malformed, not files, or of odd kinds."""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import zlib
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from conftest import write_tiny_csv
from emotion_edge.runtime.bundled import bundled_models, models_dir, resolve_model
from emotion_edge.runtime.errors import BadImageError, ConfigError, ModelLoadError
from emotion_edge.runtime.image import MAX_PIXELS, read_image
from emotion_edge.runtime.sidecar import InputSpec
from PIL import Image

from emotion_edge.cli import main


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((20, 40, 3), np.uint8)  # stored 40 wide, 20 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    path = tmp_path / "phone.jpg"
    Image.fromarray(pixels).save(path, exif=exif)
    assert read_image(path).shape == (40, 20, 3)


@pytest.mark.parametrize("spec", [{"height": "48"}, {"scale": "1/255"}, {"channels": 1.5},
                                  {"channels": 1, "color": "rgb"}, ["not", "a", "dict"]])
def test_input_spec_with_wrong_types_is_a_model_error(spec):
    with pytest.raises(ModelLoadError):
        InputSpec.from_dict(spec)


def test_a_local_folder_does_not_hide_a_bundled_model(tmp_path, monkeypatch):
    if not bundled_models():
        pytest.skip("no bundled model")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "default").mkdir()
    assert resolve_model("default").parent == models_dir()


def test_predict_option_errors(tmp_path, capsys):
    not_a_folder = tmp_path / "afile"
    not_a_folder.write_text("x")
    image = tmp_path / "img.png"
    Image.new("RGB", (64, 64)).save(image)
    assert main(["predict", str(image), "--annotate", str(not_a_folder)]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["predict", str(image), "--no-detect", "--tiling", "1"]) == 2
    assert "tiling" in capsys.readouterr().err


def test_evaluate_option_errors(tiny_csv, tmp_path, capsys, monkeypatch):
    if not bundled_models():
        pytest.skip("no bundled model")
    assert main(["evaluate", "--data", str(tiny_csv), "--batch-size", "0"]) == 2
    assert "--batch-size" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(tiny_csv), "--json",
                 str(tmp_path / "missing" / "out.json")]) == 2
    assert "folder does not exist" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(tiny_csv), "--json", str(tmp_path),
                 "--overwrite"]) == 2
    assert "is a folder" in capsys.readouterr().err
    empty_test = write_tiny_csv(tmp_path / "no_test.csv", rows_per_split=(7, 7, 0))
    monkeypatch.setenv("EMOTION_EDGE_CACHE", str(tmp_path / "cache"))
    assert main(["evaluate", "--data", str(empty_test)]) == 2
    assert "'test' split has no rows" in capsys.readouterr().err


def test_recognizer_refuses_tiling_without_detection():
    from emotion_edge.runtime import EmotionRecognizer, RecognizerOptions

    if not bundled_models():
        pytest.skip("no bundled model")
    with pytest.raises(ConfigError, match="tiling"):
        EmotionRecognizer(RecognizerOptions(detect_faces=False, tiling=2))


def png_header(width: int, height: int) -> bytes:
    """A PNG claiming ``width`` x ``height`` RGB pixels, with almost no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("width, height", [(28_000, 28_000), (19_999, 19_999), (10_000, 5_001)])
def test_huge_images_are_refused_from_the_header(width, height):
    assert width * height > MAX_PIXELS
    with pytest.raises(BadImageError, match="too large"):
        read_image(png_header(width, height))


def test_the_limit_holds_for_lazy_pil_images_and_not_below_it():
    with pytest.warns(Image.DecompressionBombWarning):  # Pillow only warns at this size
        lazy = Image.open(io.BytesIO(png_header(10_000, 9_000)))
    with pytest.raises(BadImageError, match="too large"):
        read_image(lazy)
    with pytest.raises(BadImageError, match="not a readable image"):  # decoded: truncated
        read_image(png_header(10_000, 5_000))


def test_a_named_pipe_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    signal.alarm(20)  # a regression would block in open(): fail instead of hanging
    try:
        with pytest.raises(BadImageError, match="not a regular file"):
            read_image(fifo)
    finally:
        signal.alarm(0)


class _BytesPath(os.PathLike):
    def __init__(self, path):
        self.path = path

    def __fspath__(self):
        return os.fsencode(self.path)


def _closed_image():
    image = Image.new("RGB", (8, 8))
    image.close()
    return image


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / ("x" * 300 + ".png"), "cannot open"),
    (lambda tmp: str(tmp / "a\0b.png"), "cannot open"),
    (lambda tmp: _BytesPath(tmp / "absent.png"), "no such file"),
    (lambda tmp: tmp, "is a folder"),
    (lambda tmp: b"qoif" + b"\x00\x00\x00\x10" * 2 + b"\x03\x00", "not a readable image"),
    (lambda tmp: b"\x00" * 64, "unknown or unsupported format"),
    (lambda tmp: _closed_image(), "closed image"),
    (lambda tmp: np.zeros((8, 8), "m8[s]"), "unsupported array dtype"),
    (lambda tmp: np.zeros((8, 8), object), "unsupported array dtype"),
    (lambda tmp: np.full((8, 8, 3), np.nan, np.float32), "NaN or infinite"),
    (lambda tmp: np.full((8, 8), np.inf), "NaN or infinite"),
    (lambda tmp: 42, "expected a path"),
])
def test_bad_inputs_are_bad_image_errors(tmp_path, make, message):
    with pytest.raises(BadImageError, match=message):
        read_image(make(tmp_path))


def test_odd_but_valid_inputs_are_read(tmp_path):
    gray_alpha = Image.fromarray(np.full((8, 8, 2), 200, np.uint8), "LA")
    for image in (gray_alpha, gray_alpha.convert("La"), np.full((8, 8, 2), 200, np.uint8)):
        np.testing.assert_array_equal(read_image(image), np.full((8, 8), 200, np.uint8))
    # wide integers keep their top 8 bits (without wrapping); negatives are black
    wide = np.array([[2**40, 2**39], [0, -5]], np.int64)
    np.testing.assert_array_equal(read_image(wide), [[128, 64], [0, 0]])
    path = tmp_path / "ok.png"
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path)
    np.testing.assert_array_equal(read_image(_BytesPath(path))[0, 0], [10, 20, 30])
    lazy = Image.open(path)  # opened, not loaded
    np.testing.assert_array_equal(read_image(lazy)[0, 0], [10, 20, 30])


def test_large_images_convert_strip_by_strip():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (1500, 40, 3), np.uint8)  # several 512-row strips
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert("P", palette=Image.Palette.ADAPTIVE).save(buffer, "PNG")
    expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    np.testing.assert_array_equal(read_image(buffer.getvalue()), expected)


#: what a ``[tflite]``-only install lacks, blocked in a child process
NOT_IN_TFLITE = ("tensorflow", "keras", "gradio", "gradio_client", "matplotlib", "onnxruntime",
                 "onnx", "tf2onnx", "cv2", "av", "openvino")
BLOCKER = f"""
import importlib.abc, sys
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {NOT_IN_TFLITE!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Blocker())
from emotion_edge.cli import main
sys.exit(main(sys.argv[1:]))
"""
MISSING_EXTRA_COMMANDS = [
    (["app", "--port", "{port}"], "app"), (["bench", "--quick"], "bench"),
    (["info", "--models"], "keras"),
    (["train", "--data", "{csv}", "--model", "vgg_s2", "--out", "{tmp}/run"], "train"),
]


def _free_port() -> int:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


def _check_missing_extra(result, extra: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert f"pip install 'emotion-edge[{extra}]'" in lines[0]


@pytest.mark.parametrize("argv, extra", MISSING_EXTRA_COMMANDS)
def test_missing_extra_is_one_line_and_exit_2(argv, extra, tiny_csv, tmp_path):
    argv = [a.format(csv=tiny_csv, tmp=tmp_path, port=_free_port()) for a in argv]
    result = subprocess.run([sys.executable, "-c", BLOCKER, *argv], capture_output=True,
                            text=True, timeout=300, check=False, cwd=tmp_path)
    _check_missing_extra(result, extra)


@pytest.mark.slow
def test_missing_extras_in_a_tflite_only_venv(tmp_path, tiny_csv):
    """A real ``[tflite]`` install (from the package index pip is set up with, ~1 minute)."""
    repo = Path(__file__).resolve().parents[1]
    run = partial(subprocess.run, capture_output=True, text=True, timeout=900, check=False)
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
                 str(repo)])
    assert built.returncode == 0, built.stderr[-2000:]
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], check=True)
    wheel = next(tmp_path.glob("emotion_edge-*.whl"))
    installed = run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                     f"{wheel}[tflite]"])
    if installed.returncode != 0:
        pytest.skip(f"cannot install [tflite] here: {installed.stderr[-500:]}")
    cli = str(venv / "bin" / "emotion-edge")
    for argv, extra in MISSING_EXTRA_COMMANDS:
        argv = [a.format(csv=tiny_csv, tmp=tmp_path, port=_free_port()) for a in argv]
        _check_missing_extra(run([cli, *argv], cwd=tmp_path), extra)
    photo = tmp_path / "face.png"
    Image.fromarray(np.full((64, 64), 128, np.uint8)).save(photo)
    result = run([cli, "predict", str(photo), "--no-detect", "--json"], cwd=tmp_path)
    assert result.returncode == 0 and json.loads(result.stdout)[0]["status"] == "ok"


def test_app_refuses_bad_options_before_loading(capsys):
    import socket

    assert main(["app", "--port", "99999"]) == 2
    assert "--port must be between 1 and 65535" in capsys.readouterr().err
    assert main(["app", "--threads", "0"]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert main(["app", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err
