"""Face detection: the registry, the default pyramid's bar (every face of the class photo,
one per portrait, none in the cat, tight face crops), BlazeFace short/full range and Haar
on the demo photos, synthetic and huge images, gray input, eye-levelled crops, sharing a
detector between threads, and the errors for bad names, options and missing engines."""

from __future__ import annotations

import math
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from emotion_edge.runtime.alignment import crop_face, eye_angle
from emotion_edge.runtime.detectors import (
    DEFAULT_DETECTOR,
    DETECTORS,
    Detection,
    blazeface_full,
    blazeface_short,
    build_detector,
    detector_names,
)
from emotion_edge.runtime.detectors.blazeface import (
    drop_nested,
    ssd_anchors,
    tiles,
    weighted_nms,
)
from emotion_edge.runtime.errors import BackendUnavailableError, ConfigError
from emotion_edge.runtime.image import read_image, resize, to_gray

pytest.importorskip("ai_edge_litert")


@pytest.fixture(scope="module")
def blazeface():
    with build_detector("blazeface") as detector:
        yield detector


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


def _rotated(image: np.ndarray, degrees: float) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).rotate(degrees, Image.Resampling.BILINEAR))


def test_anchor_layout_matches_mediapipe():
    short, full = blazeface_short.SPEC, blazeface_full.SPEC
    assert len(ssd_anchors(short.layers, 128, 128)) == 896
    assert len(ssd_anchors(full.layers, 192, 192)) == 2304
    anchors = ssd_anchors(short.layers, 128, 128)
    np.testing.assert_allclose(anchors[:3], [[1 / 32, 1 / 32]] * 2 + [[3 / 32, 1 / 32]])
    wide = ssd_anchors(short.layers, 128, 256)  # the pyramid's non-square inputs
    assert len(wide) == 1792
    np.testing.assert_allclose(wide[[0, 2, 64]], [[1 / 64, 1 / 32], [3 / 64, 1 / 32],
                                                  [1 / 64, 3 / 32]])


def test_weighted_nms_blends_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [50, 50, 60, 60]], float)
    points = np.zeros((3, 6, 2))
    scores = np.array([0.9, 0.3, 0.8])
    merged, _, kept = weighted_nms(boxes, points, scores, 0.3)
    np.testing.assert_allclose(merged[0], [0.5, 0, 10.5, 10])  # (0.9*0 + 0.3*2) / 1.2
    np.testing.assert_allclose(kept, [0.9, 0.8])


@pytest.mark.parametrize("photo, expected", [
    ("grace_hopper.jpg", 1), ("astronaut.png", 1), ("camera.png", 1), ("chelsea.png", 0)])
@pytest.mark.parametrize("name", ["blazeface", "blazeface-full", "blazeface-pyramid"])
def test_demo_portraits(demo_faces, name, photo, expected):
    with build_detector(name) as detector:
        faces = detector.detect(read_image(demo_faces / photo))
    assert len(faces) == expected
    for face in faces:
        assert face.keypoints.shape == (6, 2)
        right_eye, left_eye = face.keypoints[:2]
        assert right_eye[0] < left_eye[0]  # the person's right eye is on the image's left


@pytest.mark.parametrize("name, options, at_least", [
    ("blazeface-full", {"tiling": 1}, 20),
    ("blazeface", {"tiling": 2, "score_threshold": 0.75}, 22),
])
def test_group_photo(demo_faces, name, options, at_least):
    image = read_image(demo_faces / "nasa_astronaut_class.jpg")
    with build_detector(name, **options) as detector:
        faces = detector.detect(image)
        cat = detector.detect(read_image(demo_faces / "chelsea.png"))
    assert at_least <= len(faces) <= 23
    assert cat == []
    assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)
    sides = [f.box[2] - f.box[0] for f in faces]
    assert 20 < np.median(sides) < 50  # faces are about 35 px wide


def test_face_on_a_larger_canvas_lands_where_pasted(demo_faces, blazeface):
    face = read_image(demo_faces / "grace_hopper.jpg")
    reference = blazeface.detect(face)[0].box
    canvas = np.zeros((800, 900, 3), np.uint8)
    canvas[150:750, 330:842] = face
    faces = blazeface.detect(canvas)
    assert len(faces) == 1
    expected = np.add(reference, [330, 150, 330, 150])
    assert _iou(faces[0].box, expected) > 0.8


def test_blank_images_have_no_face(blazeface):
    assert blazeface.detect(np.zeros((480, 640, 3), np.uint8)) == []
    assert blazeface.detect(np.full((300, 200), 255, np.uint8)) == []


def test_gray_input(demo_faces, blazeface):
    faces = blazeface.detect(to_gray(read_image(demo_faces / "astronaut.png")))
    assert len(faces) == 1


def test_huge_image_gives_boxes_in_original_pixels(demo_faces, blazeface):
    face = read_image(demo_faces / "grace_hopper.jpg")
    reference = np.array(blazeface.detect(face)[0].box)
    big = resize(face, 512 * 8, 600 * 8)
    huge = np.zeros((10_000, 10_000, 3), np.uint8)
    huge[2000:2000 + big.shape[0], 3000:3000 + big.shape[1]] = big
    faces = blazeface.detect(huge)
    assert len(faces) == 1
    expected = reference * 8 + [3000, 2000, 3000, 2000]
    assert _iou(faces[0].box, expected) > 0.8
    assert crop_face(huge, faces[0], size=48).shape == (48, 48, 3)


def test_max_faces_and_min_face_size(demo_faces):
    image = read_image(demo_faces / "nasa_astronaut_class.jpg")
    with build_detector("blazeface-full", tiling=1, max_faces=5) as detector:
        assert len(detector.detect(image)) == 5
    with build_detector("blazeface-full", tiling=1, min_face_size=60) as detector:
        assert detector.detect(image) == []


def test_crop_shape_and_channels(demo_faces, blazeface):
    image = read_image(demo_faces / "astronaut.png")
    face = blazeface.detect(image)[0]
    crop = crop_face(image, face, size=48)
    assert crop.shape == (48, 48, 3) and crop.dtype == np.uint8
    gray = crop_face(to_gray(image), face)
    assert gray.ndim == 2 and gray.shape[0] == gray.shape[1]
    side = max(face.box[2] - face.box[0], face.box[3] - face.box[1])
    assert abs(gray.shape[0] - side * 1.12) <= 1


def test_crop_levels_synthetic_eyes():
    """Two bright dots on a line tilted by 20 degrees come out level in the crop."""
    size, centre, tilt = 200, np.array([100.0, 100.0]), math.radians(20)
    axis, down = np.array([math.cos(tilt), math.sin(tilt)]), np.array([-math.sin(tilt),
                                                                        math.cos(tilt)])
    eyes = [centre - 25 * axis, centre + 25 * axis]
    yy, xx = np.mgrid[:size, :size]
    image = np.zeros((size, size), np.uint8)
    for x, y in eyes:
        image[(xx - x) ** 2 + (yy - y) ** 2 <= 16] = 255
    keypoints = np.array([*eyes, centre + 20 * down, centre + 40 * down,
                          centre - 45 * axis, centre + 45 * axis])
    face = Detection((50.0, 50.0, 150.0, 150.0), 1.0, keypoints)
    assert eye_angle(keypoints) == pytest.approx(20)
    crop = crop_face(image, face, margin=0.0).astype(float)
    half = crop.shape[1] // 2
    ys = np.arange(crop.shape[0])
    left_y = (crop[:, :half].sum(1) * ys).sum() / crop[:, :half].sum()
    right_y = (crop[:, half:].sum(1) * ys).sum() / crop[:, half:].sum()
    assert abs(left_y - right_y) < 0.5


@pytest.mark.parametrize("degrees", [-20, 20])
@pytest.mark.parametrize("name", ["blazeface", "blazeface-pyramid"])
def test_crop_levels_a_rotated_face(demo_faces, name, degrees):
    image = _rotated(read_image(demo_faces / "grace_hopper.jpg"), degrees)
    with build_detector(name) as detector:
        face = detector.detect(image)[0]
        again = detector.detect(crop_face(image, face, margin=0.5))
    assert abs(eye_angle(face.keypoints)) > 15
    assert len(again) == 1 and abs(eye_angle(again[0].keypoints)) < 6


def test_haar(demo_faces):
    pytest.importorskip("cv2")
    with build_detector("haar") as detector:
        faces = detector.detect(read_image(demo_faces / "grace_hopper.jpg"))
        assert detector.detect(read_image(demo_faces / "chelsea.png")) == []
    assert len(faces) == 1 and faces[0].keypoints is None and faces[0].score >= 0.5
    assert crop_face(read_image(demo_faces / "grace_hopper.jpg"), faces[0], size=48).shape == (
        48, 48, 3)


def test_haar_without_opencv(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(BackendUnavailableError, match=r"emotion-edge\[opencv\]"):
        build_detector("haar")


def test_bad_names_and_options():
    with pytest.raises(ConfigError, match="blazeface-full"):
        build_detector("yolo")
    with pytest.raises(ConfigError, match="valid options"):
        build_detector("blazeface", thresold=0.5)
    with pytest.raises(ConfigError, match="score_threshold"):
        build_detector("blazeface", score_threshold=2)
    with pytest.raises(ConfigError, match="tiling"):
        build_detector("haar", tiling=1)


# --- the registry and the default --------------------------------------------------------

def test_registry_lists_every_detector_default_first():
    assert detector_names() == ("blazeface-pyramid", "blazeface", "blazeface-full", "haar")
    assert DEFAULT_DETECTOR == "blazeface-pyramid"
    for name, info in DETECTORS.items():
        assert info.name == name and info.summary and info.files
        if info.engine.name == "litert":
            for file in info.files:
                assert (resources.files("emotion_edge.runtime") / "detectors" / file).is_file()
    assert DETECTORS["blazeface-pyramid"].extra_options == ("pyramid_side",)
    assert DETECTORS["blazeface-full"].extra_options == ("tiling",)


def test_tiles_cover_the_photo_and_stay_few_on_thin_photos():
    assert tiles(640, 280, 1) == [(0, 0, 280, 280), (180, 0, 460, 280), (360, 0, 640, 280)]
    assert len(tiles(1280, 1280, 4)) == 25
    strip = tiles(1280, 20, 4)  # side 64, not 5: 27 tiles instead of about 4,000
    assert len(strip) == 27 and strip[-1] == (1216, 0, 1280, 64)
    with build_detector("blazeface", tiling=4) as detector:
        assert detector.detect(np.zeros((20, 1280, 3), np.uint8)) == []


def test_readme_table_is_the_registry():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    faces = readme[readme.index("## Faces"):]
    faces = faces[:faces.index("\n## ", 1)]
    rows = [line for line in faces.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == list(DETECTORS)
    for row, info in zip(rows, DETECTORS.values(), strict=True):
        assert f"| {info.summary} | {info.engine.title} |" in row


@pytest.fixture(scope="module")
def default():
    with build_detector() as detector:
        yield detector


def test_default_finds_every_face_of_the_class_photo(demo_faces, default):
    faces = default.detect(read_image(demo_faces / "nasa_astronaut_class.jpg"))
    assert 21 <= len(faces) <= 23
    with build_detector("blazeface-full", tiling=2) as reference:  # slow but finds all 23
        expected = [f.box for f in reference.detect(
            read_image(demo_faces / "nasa_astronaut_class.jpg"))]
    matched = [max(_iou(f.box, e) for e in expected) for f in faces]
    assert min(matched) > 0.4  # every face found is one of the 23, none is found twice
    assert len({int(np.argmax([_iou(f.box, e) for e in expected])) for f in faces}) == len(
        faces)


def test_default_finds_tight_face_crops(fer_csv, default):
    from emotion_edge.data.datasets import load_split

    crops = load_split(fer_csv, "test").x[:40]
    found = [len(default.detect(resize(np.ascontiguousarray(c), 256, 256))) for c in crops]
    assert sum(n == 1 for n in found) >= 36 and max(found) == 1


def test_pyramid_levels_follow_the_photo_size():
    with build_detector() as small, build_detector(pyramid_side=1280) as large:
        assert small.level_sides(640, 280) == [384.0]
        assert small.level_sides(256, 256) == [256.0]  # never upscaled
        assert small.level_sides(150, 100) == []        # the whole-photo run is enough
        assert large.level_sides(1280, 720) == [1280.0, pytest.approx(1280 / 3)]


def test_drop_nested_drops_face_parts_inside_a_better_face():
    boxes = np.array([[0, 0, 100, 100], [10, 10, 40, 40], [90, 0, 190, 100]], float)
    points = np.arange(36, dtype=float).reshape(3, 6, 2)
    kept, kept_points, scores = drop_nested((boxes, points, np.array([0.95, 0.9, 0.8])), 0.5)
    np.testing.assert_array_equal(kept, boxes[[0, 2]])  # neighbours overlapping 10% stay
    np.testing.assert_array_equal(kept_points, points[[0, 2]])
    np.testing.assert_array_equal(scores, [0.95, 0.8])
    # a part scoring better than its face is kept (only better faces drop what is inside)
    _, _, scores = drop_nested((boxes, points, np.array([0.9, 0.95, 0.8])), 0.5)
    np.testing.assert_array_equal(scores, [0.95, 0.9, 0.8])


@pytest.mark.parametrize("name, options, match", [
    ("blazeface-full", {"tiling": 500}, r"tiling must be in \[0, 4\]"),
    ("blazeface", {"tiling": -1}, r"tiling must be in \[0, 4\]"),
    ("blazeface-pyramid", {"pyramid_side": 5000}, r"pyramid_side must be in \[128, 1280\]"),
    ("blazeface-pyramid", {"pyramid_side": 64}, r"pyramid_side must be in \[128, 1280\]"),
    ("blazeface-pyramid", {"max_side": 10}, r"max_side must be in \[64, 4096\]"),
    ("blazeface-pyramid", {"tiling": 1}, "tiling is an option of the blazeface and "
                                         "blazeface-full detector"),
    ("blazeface", {"pyramid_side": 512}, "pyramid_side is an option of the blazeface-pyramid"),
    ("haar", {"tiling": 1}, "not of 'haar'"),
])
def test_options_out_of_range_are_refused(name, options, match):
    with pytest.raises(ConfigError, match=match):
        build_detector(name, **options)


def test_a_shared_detector_gives_serial_results_in_threads(demo_faces, default):
    from concurrent.futures import ThreadPoolExecutor

    photos = [read_image(demo_faces / p) for p in (
        "nasa_astronaut_class.jpg", "grace_hopper.jpg", "chelsea.png", "camera.png")]
    serial = [default.detect(p) for p in photos]
    jobs = [i % len(photos) for i in range(64)]
    with ThreadPoolExecutor(8) as pool:
        threaded = list(pool.map(lambda i: default.detect(photos[i]), jobs))
    for i, faces in zip(jobs, threaded, strict=True):
        assert faces == serial[i]


def test_huge_photos_are_detected_in_bounded_memory(demo_faces, default):
    """An 8000x6000 photo (144 MB) is detected on a small copy and cropped from the
    original: NumPy never holds a second full-size copy (tracemalloc sees NumPy's memory)."""
    import tracemalloc

    face = read_image(demo_faces / "grace_hopper.jpg")
    reference = np.array(default.detect(face)[0].box)
    huge = np.zeros((6000, 8000, 3), np.uint8)
    huge[1500:4500, 2000:4560] = resize(face, 2560, 3000)
    tracemalloc.start()
    try:
        (found,) = default.detect(huge)
        crop = crop_face(huge, found, size=48)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20, f"{peak / 2**20:.0f} MiB"
    assert _iou(found.box, reference * 5 + [2000, 1500, 2000, 1500]) > 0.8
    assert crop.shape == (48, 48, 3) and crop.std() > 10


@pytest.mark.parametrize("args, message", [
    (["--detector", "blazeface-full", "--tiling", "500"], "tiling must be in [0, 4]"),
    (["--tiling", "1"], "tiling is an option of the blazeface and blazeface-full"),
    (["--pyramid-side", "5000"], "pyramid_side must be in [128, 1280]"),
    (["--detector", "yolo"], "choose from 'blazeface-pyramid', 'blazeface', 'blazeface-full', "
                             "'haar'"),
])
def test_predict_refuses_bad_detector_options(demo_faces, capsys, args, message):
    from emotion_edge.cli import main

    try:
        code = main(["predict", str(demo_faces / "grace_hopper.jpg"), *args])
    except SystemExit as exc:  # argparse's own refusal of an unknown choice
        code = exc.code
    assert code == 2
    assert message in capsys.readouterr().err
