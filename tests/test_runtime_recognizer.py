"""Preprocessing and the recognizer: whole-image faces, real detection, and bad images."""

from __future__ import annotations

import os

import numpy as np
import pytest
from artifacts import make_tflite, sample_faces
from emotion_edge.runtime import (
    BadImageError,
    ConfigError,
    EmotionEdgeError,
    EmotionRecognizer,
    FaceResult,
    InputSpec,
    RecognizerOptions,
    load_predictor,
    prepare_batch,
)
from PIL import Image

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tflite(tmp_path_factory.mktemp("rec") / "tiny.int8.tflite", precision="int8")


@pytest.fixture(scope="module")
def whole(model):
    with EmotionRecognizer(RecognizerOptions(model=model, detect_faces=False)) as recognizer:
        yield recognizer


@pytest.fixture(scope="module")
def detecting(model):
    with EmotionRecognizer(RecognizerOptions(model=model)) as recognizer:
        yield recognizer


def test_prepare_batch_follows_the_spec():
    gray, rgb = np.full((60, 40), 255, np.uint8), np.zeros((30, 30, 3), np.uint8)
    batch = prepare_batch([gray, rgb], InputSpec())
    assert batch.shape == (2, 48, 48, 1) and batch.dtype == np.float32
    assert batch[0].min() == pytest.approx(1.0) and batch[1].max() == 0.0
    spec = InputSpec(height=32, width=40, channels=3, color="rgb", scale=2 / 255, offset=-1.0)
    batch = prepare_batch([gray, rgb, np.zeros((9, 9, 4), np.uint8)], spec)
    assert batch.shape == (3, 32, 40, 3)
    assert batch[0].min() == pytest.approx(1.0) and batch[1].max() == pytest.approx(-1.0)
    assert prepare_batch([], spec).shape == (0, 32, 40, 3)


def test_whole_image_is_one_face(whole, model):
    face = sample_faces(1)[0]
    results = whole.analyze(face)
    assert len(results) == 1 and isinstance(results[0], FaceResult)
    result = results[0]
    assert result.box == (0.0, 0.0, 48.0, 48.0) and result.detection_score is None
    assert list(result.probabilities) == list(whole.labels)
    assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    with load_predictor(model) as predictor:
        probs = predictor.predict(prepare_batch([face], predictor.input_spec))[0]
    assert result.label == whole.labels[int(probs.argmax())]
    assert result.score == pytest.approx(float(probs.max()))
    assert whole.timings.classification_ms > 0


def test_detects_faces_in_demo_photos(detecting, demo_faces):
    for name in ("grace_hopper.jpg", "astronaut.png"):
        results = detecting.analyze(demo_faces / name)
        assert len(results) >= 1, name
        x0, y0, x1, y1 = results[0].box
        assert x1 - x0 > 40 and results[0].detection_score > 0.5
        assert detecting.timings.detection_ms > 0
    assert detecting.analyze(demo_faces / "chelsea.png") == []


def test_group_photo_without_options(detecting, demo_faces):
    results = detecting.analyze(demo_faces / "nasa_astronaut_class.jpg")
    assert 21 <= len(results) <= 23  # all 23 faces are classified (max_faces is 64)
    assert len({r.box for r in results}) == len(results)
    assert detecting.analyze(demo_faces / "chelsea.png") == []


def test_the_full_range_detector_on_tiles(model, demo_faces):
    options = RecognizerOptions(model=model, detector="blazeface-full", tiling=1)
    with EmotionRecognizer(options) as recognizer:
        assert len(recognizer.analyze(demo_faces / "nasa_astronaut_class.jpg")) >= 20
    with pytest.raises(ConfigError, match=r"tiling must be in \[0, 4\]"):
        EmotionRecognizer(RecognizerOptions(model=model, detector="blazeface-full",
                                            tiling=500))


def test_huge_image_boxes_in_original_pixels(detecting, demo_faces):
    photo = np.asarray(Image.open(demo_faces / "grace_hopper.jpg").convert("RGB"))
    (small,) = detecting.analyze(photo)[:1]
    big = np.repeat(np.repeat(photo, 8, axis=0), 8, axis=1)  # 4096 x 4800
    (large,) = detecting.analyze(big)[:1]
    np.testing.assert_allclose(np.array(large.box) / 8, small.box, atol=6)


def _write(path, image: Image.Image):
    image.save(path)
    return path


@pytest.mark.parametrize("make", [
    lambda p: _write(p / "g16.png", Image.fromarray(sample_faces(1)[0].astype(np.uint16) * 257)),
    lambda p: _write(p / "rgba.png", Image.new("RGBA", (64, 64), (10, 200, 30, 128))),
    lambda p: _write(p / "palette.png", Image.new("RGB", (64, 64), "teal").convert("P")),
    lambda p: _write(p / "gray.jpg", Image.fromarray(sample_faces(1)[0])),
])
def test_unusual_images_work(whole, tmp_path, make):
    (result,) = whole.analyze(make(tmp_path))
    assert result.label in whole.labels


@pytest.mark.parametrize("make, match", [
    (lambda p: p / "absent.png", "no such file"),
    (lambda p: _bytes(p / "notes.png", b"just text, not pixels\n"), "not a readable image"),
    (lambda p: _truncated(p / "cut.png"), "not a readable image"),
    (lambda p: _write(p / "dot.png", Image.new("L", (1, 1))), "too small"),
    (lambda p: np.zeros((48, 48), np.complex64), "dtype"),
    (lambda p: np.zeros((48, 48, 5), np.uint8), "shape"),
    (lambda p: np.zeros((0, 48), np.uint8), "too small"),
    (lambda p: 42, "expected a path"),
    (lambda p: _FsPath(os.fsencode(p / "absent.png")), r"absent\.png: no such file"),
    (lambda p: _FsPath(42), "not a usable path"),
])
def test_bad_images_raise_package_errors(whole, detecting, tmp_path, make, match):
    image = make(tmp_path)
    for recognizer in (whole, detecting):
        with pytest.raises(BadImageError, match=match):
            recognizer.analyze(image)


class _FsPath(os.PathLike):
    """A PathLike whose ``__fspath__`` returns whatever it is given (bytes, or worse)."""

    def __init__(self, value):
        self.value = value

    def __fspath__(self):
        return self.value


def test_a_bytes_path_is_read_like_a_str_path(whole, detecting, demo_faces):
    photo = demo_faces / "grace_hopper.jpg"
    for recognizer in (whole, detecting):
        assert recognizer.analyze(_FsPath(os.fsencode(photo))) == recognizer.analyze(str(photo))


def _bytes(path, data: bytes):
    path.write_bytes(data)
    return path


def _truncated(path):
    full = path.with_name("full.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(full)
    path.write_bytes(full.read_bytes()[:200])
    return path


def test_bad_options(model):
    with pytest.raises(ConfigError, match="max_faces"):
        EmotionRecognizer(RecognizerOptions(model=model, max_faces=0))
    with pytest.raises(ConfigError, match="detector"):
        EmotionRecognizer(RecognizerOptions(model=model, detector="nope"))
    with pytest.raises(EmotionEdgeError, match="no bundled model|no such model"):
        EmotionRecognizer(RecognizerOptions(model="nothing-here"))
