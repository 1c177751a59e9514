"""The Gradio app in-process: the backend menu, the named API endpoints through
``gradio_client``, the webcam stream function, bad inputs, and the frame-rate script.

The bundled default model (trained, so its backends can disagree) is copied as four of its
artifacts; engines are real.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
pytest.importorskip("gradio")
pytest.importorskip("ai_edge_litert")
pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

from emotion_edge.app.catalog import find_models  # noqa: E402
from emotion_edge.app.fps import measure_fps, recorded_frames  # noqa: E402
from emotion_edge.app.render import face_cards_html  # noqa: E402
from emotion_edge.app.ui import EXAMPLES_DIR, build_app, launch, make_service  # noqa: E402
from emotion_edge.runtime.bundled import models_dir as bundled_dir  # noqa: E402
from emotion_edge.runtime.errors import (  # noqa: E402
    BackendUnavailableError,
    BadImageError,
    NoFaceError,
)
from emotion_edge.runtime.formats import BACKENDS, Backend  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PHOTO = EXAMPLES_DIR / "grace_hopper.jpg"
#: The bundled default model's artifacts the app tests serve.
ARTIFACTS = ("default.keras", "default.fp16.tflite", "default.int8.tflite", "default.fp32.onnx")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """Four artifacts of the bundled default model, with their sidecars."""
    folder = tmp_path_factory.mktemp("models")
    for name in ARTIFACTS:
        for suffix in ("", ".json"):
            source = bundled_dir() / f"{name}{suffix}"
            if not source.is_file():
                pytest.skip(f"{source} is not bundled in this checkout")
            shutil.copy2(source, folder / source.name)
    return folder


@pytest.fixture(scope="module")
def service(models_dir):
    service = make_service(models_dir=models_dir)
    yield service
    service.close()


@pytest.fixture(scope="module")
def client(service):
    from gradio_client import Client

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    demo = launch(build_app(service, report=None), port=port, block=False, quiet=True)
    try:
        yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        demo.close()


def test_menu_lists_every_artifact_with_int8_first_choice(service):
    titles = [c.title for c in service.choices]
    # OpenVINO reads the ONNX file: one more entry, as no OpenVINO IR of it is here
    assert titles == ["Keras fp32", "TFLite fp16", "TFLite int8", "ONNX fp32",
                      "ONNX fp32 on OpenVINO"]
    assert service.default.title == "TFLite int8"
    assert all(c.available for c in service.choices)


def test_an_onnx_file_runs_on_openvino_from_the_menu(service):
    pytest.importorskip("openvino")
    onnx, openvino = (next(c for c in service.choices if c.title == t)
                      for t in ("ONNX fp32", "ONNX fp32 on OpenVINO"))
    assert openvino.path == onnx.path and openvino.engine.name == "openvino"
    assert "**Runs on:** OpenVINO" in service.model_card(openvino.key)[0]
    with service.pool.recognizer(openvino.key) as recognizer:
        assert recognizer.predictor.info.backend == "openvino"
    by_onnx, by_openvino = (service.analyze(PHOTO, c.key).faces for c in (onnx, openvino))
    assert len(by_onnx) == len(by_openvino) >= 1
    for a, b in zip(by_onnx, by_openvino, strict=True):
        np.testing.assert_allclose(list(a.probabilities.values()),
                                   list(b.probabilities.values()), atol=1e-4)


def test_missing_engine_is_listed_as_unavailable_not_hidden(models_dir, monkeypatch):
    monkeypatch.setitem(BACKENDS, "keras",
                        Backend("keras", "emotion_edge_absent_engine", "keras", "Keras"))
    service = make_service(models_dir=models_dir)
    keras = next(c for c in service.choices if c.format.format == "keras")
    assert keras.label == "Keras fp32 (unavailable: pip install 'emotion-edge[keras]')"
    with pytest.raises(Exception, match=r"emotion-edge\[keras\]"):
        service.analyze(PHOTO, keras.key)
    rows, _ = service.compare(PHOTO)
    assert next(r for r in rows if r[0] == "Keras fp32")[-1].startswith("unavailable")
    # availability is checked at use: once the engine is there, the same entry runs
    monkeypatch.undo()
    assert keras.available and keras.label == "Keras fp32"
    assert service.analyze(PHOTO, keras.key).faces
    service.close()


def test_an_engine_that_goes_missing_is_reported_not_used(service, monkeypatch):
    fp16 = next(c for c in service.choices if c.title == "TFLite fp16")
    assert fp16.available
    monkeypatch.setitem(BACKENDS, "litert",
                        Backend("litert", "emotion_edge_absent_engine", "tflite", "LiteRT"))
    assert fp16.label == "TFLite fp16 (unavailable: pip install 'emotion-edge[tflite]')"
    assert "not installed here" in service.model_card(fp16.key)[0]
    with pytest.raises(BackendUnavailableError, match=r"emotion-edge\[tflite\]"):
        service.load(fp16.key, "blazeface-full")  # not loaded yet: the engine is needed now


def test_a_new_upload_never_rewrites_an_answer_being_served(client, service):
    from gradio_client import handle_file
    from PIL import Image

    answers = []
    for _ in range(2):
        image, *_ = client.predict(handle_file(PHOTO), "TFLite int8", "blazeface",
                                   api_name="/predict")
        written = max(service.results.folder.glob("*.jpg"), key=lambda p: p.stat().st_mtime_ns)
        answers.append((written, written.stat(), written.read_bytes()))
        assert Path(image).read_bytes() == written.read_bytes()  # the page serves our file
    (first, before, data), (second, _, again) = answers
    assert first != second and data == again  # same photo, same picture, a new file
    after = first.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino, before.st_mtime_ns, before.st_size)
    with Image.open(first) as decoded:
        assert decoded.format == "JPEG" and max(decoded.size) == 960  # enlarged to draw


def test_result_files_are_pruned_and_removed(tmp_path):
    from emotion_edge.app.serving import ResultFiles

    image = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    results = ResultFiles(tmp_path, keep=3)
    written = [results.save(image) for _ in range(5)]
    assert len(set(written)) == 5
    assert sorted(results.folder.iterdir()) == sorted(written[-3:])  # no partial files left
    results.close()
    assert not results.folder.exists()
    # a folder left by a server that ended is removed; a running server's is kept
    ended = tmp_path / "999999999-0a1b2c3d"
    ended.mkdir()
    (ended / "x.jpg").write_bytes(b"x")
    running = tmp_path / f"{os.getpid()}-0a1b2c3d"
    running.mkdir()
    ResultFiles(tmp_path)
    assert sorted(tmp_path.iterdir()) == [running]


def test_errors_name_the_file_not_where_the_server_keeps_it():
    from emotion_edge.app.serving import without_server_paths

    upload = Path(tempfile.gettempdir()) / "gradio" / "3f2a9c" / "holiday.png"
    assert without_server_paths(f"cannot open ({upload}: permission denied)") == (
        "cannot open (holiday.png: permission denied)")
    assert without_server_paths(f"'{upload}' is broken; {upload}") == (
        "'holiday.png' is broken; holiday.png")
    assert without_server_paths("/home/user/photo.png: no face") == (
        "/home/user/photo.png: no face")  # only the server's temporary folders


def test_predict_endpoint_boxes_and_labels_a_face(client, models_dir):
    from emotion_edge.runtime import EmotionRecognizer, RecognizerOptions
    from gradio_client import handle_file

    image, cards, status, details = client.predict(
        handle_file(PHOTO), "TFLite int8", "blazeface", api_name="/predict")
    assert Path(image).is_file()
    assert "1 face" in status and "detection" in status and "classification" in status
    face = details["faces"][0]
    assert set(face) == {"box", "detection_score", "label", "score", "probabilities"}
    assert len(face["probabilities"]) == 7 and face["label"] in face["probabilities"]
    assert 'class="ee-card"' in cards and face["label"] in cards
    # the page says what the runtime says on the same photo and model
    options = RecognizerOptions(model=models_dir / "default.int8.tflite", detector="blazeface")
    with EmotionRecognizer(options) as recognizer:
        (expected,) = recognizer.analyze(PHOTO)
    assert face["label"] == expected.label
    assert face["score"] == pytest.approx(expected.score, abs=1e-4)
    assert max(face["probabilities"], key=face["probabilities"].get) == face["label"]


def test_predict_endpoint_reports_bad_input_as_a_message(client, tmp_path):
    from gradio_client import handle_file

    text = tmp_path / "notes.png"
    text.write_text("not an image")
    image, _, status, details = client.predict(
        handle_file(text), "TFLite int8", "blazeface", api_name="/predict")
    assert image is None and status == "⚠️ notes.png: not a readable image (unknown or " \
        "unsupported format)"
    assert "not a readable image" in details["error"]
    assert tempfile.gettempdir() not in details["error"]

    blank = tmp_path / "blank.png"
    from PIL import Image
    Image.fromarray(np.full((200, 300, 3), 90, np.uint8)).save(blank)
    _, _, status, _ = client.predict(handle_file(blank), "TFLite int8", "blazeface",
                                     api_name="/predict")
    assert "no face found" in status

    _, _, status, _ = client.predict(handle_file(PHOTO), "No such backend", "blazeface",
                                     api_name="/predict")
    assert "unknown backend" in status


def test_compare_endpoint_runs_every_backend(client):
    from gradio_client import handle_file

    table, summary = client.predict(handle_file(PHOTO), "blazeface", "TFLite int8",
                                    api_name="/compare")
    assert table["headers"][:3] == ["backend", "label", "confidence"]
    rows = table["data"]
    assert [r[0] for r in rows] == ["Keras fp32", "TFLite fp16", "TFLite int8 (selected)",
                                    "ONNX fp32", "ONNX fp32 on OpenVINO"]
    majority = Counter(r[1] for r in rows).most_common(1)[0][0]
    assert f"**{majority}**" in summary and "5 backends" in summary
    assert all((r[-1] == "✓") == (r[1] == majority) for r in rows)
    # one trained model in four formats on five engines: every backend names the same
    # emotion, with confidences within the export parity tolerance of the Keras original
    assert [r[-1] for r in rows] == ["✓"] * 5
    assert max(r[2] for r in rows) - min(r[2] for r in rows) < 0.05


def test_stream_annotates_a_sequence_of_frames(service):
    frames = recorded_frames(PHOTO, count=6)
    for frame in frames:
        annotated, status = service.stream(frame, "TFLite fp16")
        assert annotated.shape == frame.shape and "ms per frame" in status
        assert not np.array_equal(annotated, frame)  # a box was drawn
    assert service.stream(None, "TFLite int8")[1].startswith("Waiting")
    _, status = service.stream(np.zeros((1, 1, 3), np.uint8), "TFLite int8")
    assert status.startswith("⚠️") and "too small" in status


def test_stream_uses_the_chosen_detector(service):
    frame = recorded_frames(PHOTO, count=1)[0]
    blank = np.full_like(frame, 128)
    assert service.stream(blank, "TFLite int8")[1].startswith("No face in view")
    # no detection: the whole frame is the face, whatever it shows
    whole, status = service.stream(blank, "TFLite int8", detector="whole-image")
    assert not status.startswith(("No face", "⚠️")) and "%" in status
    _, status = service.stream(frame, "TFLite int8", detector="no-such-detector")
    assert status.startswith("⚠️ unknown detector 'no-such-detector'")


def test_huge_photo_is_downscaled_and_cards_show_every_face(service, tmp_path):
    from PIL import Image

    big = tmp_path / "big.jpg"
    Image.open(PHOTO).resize((2560, 3000)).save(big, quality=80)
    result = service.analyze(big, "ONNX fp32")
    assert result.original_size == (2560, 3000) and max(result.analysed_size) == 1600
    assert "analysed at" in result.summary()
    assert face_cards_html(result.faces).count('class="ee-card"') == len(result.faces)


def test_service_errors_are_typed(service, tmp_path):
    with pytest.raises(BadImageError, match="no image"):
        service.analyze(None, "TFLite int8")
    with pytest.raises(NoFaceError):
        service.analyze(np.full((120, 160, 3), 200, np.uint8), "TFLite int8")


def test_find_models_rejects_a_non_model(tmp_path):
    from emotion_edge.runtime.errors import ConfigError

    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a model file"):
        find_models([tmp_path / "notes.txt"])


def test_fps_of_the_stream_function(models_dir):
    rate = measure_fps(models_dir / "default.int8.tflite", frames=10)
    assert rate.backend == "TFLite int8" and rate.frames == 10
    assert rate.face_found == 1.0 and rate.fps > 0


def test_app_readme_lists_every_detector_of_the_registry():
    from emotion_edge.runtime.detectors import DEFAULT_DETECTOR, DETECTORS

    text = (REPO / "app" / "README.md").read_text()
    assert f"| `{DEFAULT_DETECTOR}` (default) |" in text
    for name in [*DETECTORS, "whole-image"]:
        assert f"| `{name}`" in text, name


def test_app_subcommand_is_registered():
    from emotion_edge.cli import parse_args

    args = parse_args(["app", "--models-dir", "x", "--port", "7999"])
    assert args.command == "app" and args.port == 7999 and args.host == "127.0.0.1"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_takes_a_port_and_names_a_busy_one():
    import subprocess

    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        # -o: use the installed venv as it is (the recipe is what is tested, not the install)
        result = subprocess.run(["make", "-o", ".venv/.stamp-app", "demo", f"PORT={port}"],
                                cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert f"app --port {port}" in result.stdout
    assert f"cannot listen on 127.0.0.1:{port} (address already in use)" in result.stderr
    assert f"make demo PORT={port + 1}" in result.stderr
    assert "Traceback" not in result.stderr and "GRADIO_SERVER_PORT" not in result.stderr


def test_model_card_shows_accuracy_and_parity_from_the_sidecar(service):
    from emotion_edge.app.model_card import accuracy_figures

    sidecar = {"labels": ["a"], "input": {"scale": 1.0},
               "accuracy": {"privatetest": 0.68, "images": 3589},
               "parity": {"metric": "top1_agreement", "top1_agreement": 0.995, "images": 500},
               "metrics": {"privatetest": {"accuracy": 0.69, "macro_f1": 0.66,
                                           "per_class": {"sad": {"f1": 0.5}}}}}
    assert accuracy_figures(sidecar) == {
        "accuracy.privatetest": 0.68, "parity.top1_agreement": 0.995,
        "metrics.privatetest.accuracy": 0.69, "metrics.privatetest.macro_f1": 0.66}
    text, data = service.model_card("TFLite int8")
    assert data["format"] == "tflite" and data["precision"] == "int8"
    assert f"- **Labels:** {', '.join(data['labels'])}\n" in text
    assert "- **Input:** 48x48x1 gray, input = pixel × 0.00392157 + 0\n" in text
    accuracy = 100 * data["accuracy"]["privatetest"]
    assert f"- **Accuracy on FER2013 PrivateTest:** {accuracy:.2f}%\n" in text
    agreement = 100 * data["parity"]["top1_agreement"]
    assert f"- **Top-1 agreement with the source model:** {agreement:.2f}%" in text
    assert "_images" not in text and "source.accuracy" not in text


def test_figure_labels_read_as_words():
    from emotion_edge.app.model_card import figure_label, figure_value

    assert figure_label("source.accuracy.publictest_macro_f1") == (
        "Source model macro F1 on FER2013 PublicTest")
    assert figure_label("accuracy.privatetest") == "Accuracy on FER2013 PrivateTest"
    assert figure_label("metrics.privatetest.accuracy") == "Accuracy on FER2013 PrivateTest"
    assert figure_value("accuracy.privatetest", 0.66927) == "66.93%"
    assert figure_value("parity.max_abs_diff", 0.0407569) == "0.0408"


def test_about_reads_the_benchmark_report(tmp_path, caplog):
    import copy
    import json

    from emotion_edge.app.model_card import read_benchmark
    from PIL import Image

    (tmp_path / "plots").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "plots" / "accuracy_vs_latency.png")
    report = json.loads((REPO / "reports" / "benchmark.json").read_text())
    row = report["rows"][0]
    row.update(artifact="default.int8.tflite", title="TFLite int8", peer=False,
               file_bytes=739664)
    row["accuracy"]["fer2013-privatetest"]["top1"] = 0.6693
    row["threads"]["1"].update(peak_rss_mb=62.4)
    row["threads"]["1"]["latency"]["p50_ms"] = 0.321
    skipped = copy.deepcopy(row)
    skipped.update(artifact="x.onnx", status="skipped", peer=True, file_bytes=None)
    skipped["accuracy"]["fer2013-privatetest"]["top1"] = None
    report["rows"] = [row, skipped]
    (tmp_path / "benchmark.json").write_text(json.dumps(report))
    plot, rows = read_benchmark(tmp_path / "benchmark.json")
    assert plot == tmp_path / "plots" / "accuracy_vs_latency.png"
    assert rows[0] == {"artifact": "default.int8.tflite", "kind": "TFLite int8", "status": "ok",
                       "top-1 %": 66.93, "p50 ms (1 thread)": 0.321, "size KiB": 722,
                       "peak RSS MiB": 62}
    assert rows[1]["artifact"] == "x.onnx (peer)" and rows[1]["status"] == "skipped"
    assert rows[1]["top-1 %"] is None and rows[1]["size KiB"] is None
    assert read_benchmark(tmp_path / "elsewhere" / "benchmark.json") == (None, [])
    del report["rows"][0]["threads"]
    (tmp_path / "benchmark.json").write_text(json.dumps(report))
    assert read_benchmark(tmp_path)[1] == []
    assert "rows[0]: missing field(s) threads" in caplog.text
