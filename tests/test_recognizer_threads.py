"""One EmotionRecognizer shared by threads gives exactly the results of serial calls.

LiteRT interpreters own one set of tensors; without the lock in ``runtime/litert.py``
concurrent ``analyze`` calls raise "There is at least 1 reference to internal data..." or
return faces of another thread's photo, and these tests fail.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from emotion_edge.runtime import EmotionRecognizer, ModelLoadError, RecognizerOptions
from emotion_edge.runtime.image import read_image

pytest.importorskip("ai_edge_litert")

PHOTOS = ("nasa_astronaut_class.jpg", "grace_hopper.jpg", "camera.png", "chelsea.png",
          "astronaut.png")


@pytest.fixture(scope="module")
def shared():
    with EmotionRecognizer(RecognizerOptions(threads=1)) as recognizer:
        yield recognizer


def _hammer(recognizer: EmotionRecognizer, photos: list, threads: int, calls: int) -> None:
    """``threads`` x ``calls`` analyze calls over ``photos``, each checked against a serial
    call's result (boxes, scores and every probability, compared exactly)."""
    serial = [recognizer.analyze(photo) for photo in photos]
    assert sum(len(faces) for faces in serial) >= 21 + 3  # the class photo and portraits
    jobs = [i % len(photos) for i in range(threads * calls)]
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lambda i: recognizer.analyze(photos[i]), jobs))
    mismatches = sum(faces != serial[i] for i, faces in zip(jobs, results, strict=True))
    assert mismatches == 0, f"{mismatches} of {len(jobs)} threaded calls differ from serial"


def test_shared_recognizer_matches_serial_calls(demo_faces, shared):
    photos = [read_image(demo_faces / name) for name in PHOTOS]
    _hammer(shared, photos, threads=8, calls=12)


@pytest.mark.slow
def test_shared_recognizer_8_threads_x_200_calls(demo_faces, shared):
    photos = [read_image(demo_faces / name) for name in PHOTOS]
    _hammer(shared, photos, threads=8, calls=200)


def test_a_closed_recognizer_raises_a_typed_error(demo_faces):
    recognizer = EmotionRecognizer(RecognizerOptions(threads=1))
    photo = read_image(demo_faces / "grace_hopper.jpg")
    assert len(recognizer.analyze(photo)) == 1
    recognizer.close()
    with pytest.raises(ModelLoadError, match="closed"):
        recognizer.analyze(photo)
    recognizer.close()  # closing twice is harmless
