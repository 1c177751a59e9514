"""Three bundled models found by name: ``default`` and ``accurate`` (FER2013's seven classes)
and ``ferplus`` (FER+'s eight, with contempt).

A temporary models folder stands in for ``runtime/models/`` (``bundled.models_dir`` points
at it), holding tiny real models: each stem's ``.keras`` and some exports, with sidecars
recording accuracy as ``export.bundle`` does. The ``ferplus`` model is set to answer
``contempt`` on the test photo, so any place that assumed seven labels shows. Engines are
real; nothing is mocked.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
pytest.importorskip("keras")
pytest.importorskip("ai_edge_litert")
pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

from artifacts import (  # noqa: E402
    build_varied_keras,
    edit_sidecar,
    make_onnx,
    make_tflite,
    sample_batch,
    write_artifact_sidecar,
)
from conftest import build_tiny_keras, save_with_sidecar  # noqa: E402
from emotion_edge.runtime import (  # noqa: E402
    EmotionRecognizer,
    RecognizerOptions,
    bundled,
    load_predictor,
)
from emotion_edge.runtime.bundled import accuracy_labels, resolve_model  # noqa: E402
from emotion_edge.runtime.cli import CSV_COLUMNS  # noqa: E402
from emotion_edge.runtime.image import read_image  # noqa: E402
from emotion_edge.runtime.labels import FER2013_LABELS, FERPLUS_LABELS  # noqa: E402
from emotion_edge.runtime.preprocess import prepare_batch, whole_image_as_face  # noqa: E402
from emotion_edge.runtime.sidecar import InputSpec, read_sidecar  # noqa: E402

from emotion_edge.cli import main  # noqa: E402

PHOTO = Path(__file__).resolve().parents[1] / "app" / "examples" / "grace_hopper.jpg"
#: each stem's exports (beside its .keras) and what its .keras sidecar records
STEMS = {
    "default": ((".int8.tflite", ".fp32.onnx"),
                {"publictest": 0.6567, "privatetest": 0.6715}),
    "accurate": ((".int8.tflite",),
                 {"labels_from": "FER2013", "publictest": 0.712, "privatetest": 0.713,
                  "ferplus_publictest": 0.82, "ferplus_privatetest": 0.83}),
    "ferplus": ((".int8.tflite", ".fp32.onnx"),
                {"labels_from": "FER+ majority", "publictest": 0.852, "privatetest": 0.851}),
}
#: what an export's sidecar records: its PrivateTest accuracy and the bundle command
EXPORTED = {"default": (0.669, ""), "accurate": (0.711, " --ferplus fer2013new.csv"),
            "ferplus": (0.849, " --ferplus fer2013new.csv")}


def photo_crop() -> np.ndarray:
    """The photo as the recognizer sees it without detection: one whole-image crop."""
    crop, _ = whole_image_as_face(read_image(PHOTO))
    return crop


def build_ferplus_keras():
    """An 8-class tiny model whose outputs vary by input and whose top class on the test
    photo is ``contempt`` (a clear margin, so its int8 export agrees)."""
    import keras

    model = build_tiny_keras(num_classes=8, seed=5)
    layer = model.get_layer("logits")
    kernel, _ = layer.get_weights()
    features = keras.Model(model.input, layer.input)
    seen = features.predict(sample_batch(32, seed=1), verbose=0)
    kernel = kernel / seen.std(axis=0).mean() * 4.0
    bias = -seen.mean(axis=0) @ kernel
    photo = features.predict(prepare_batch([photo_crop()], InputSpec()), verbose=0)[0]
    logits = photo @ kernel + bias
    bias[7] += logits[:7].max() - logits[7] + 1.5
    layer.set_weights([kernel, bias])
    return model


def add_stem(folder: Path, stem: str, model, labels: tuple[str, ...]) -> None:
    """``stem.keras`` and its exports in ``folder``, with sidecars as a bundle writes them."""
    exports, accuracy = STEMS[stem]
    source = save_with_sidecar(model, folder / f"{stem}.keras", labels=labels)
    edit_sidecar(source, name=stem, accuracy=accuracy)
    private, flags = EXPORTED[stem]
    for suffix in exports:
        path = folder / f"{stem}{suffix}"
        fmt, precision = ("tflite", "int8") if suffix == ".int8.tflite" else ("onnx", "fp32")
        if fmt == "tflite":
            make_tflite(path, model, precision)
        else:
            make_onnx(path, model)
        write_artifact_sidecar(path, fmt, precision, labels=labels)
        edit_sidecar(path, name=stem, source={"name": stem, "accuracy": accuracy},
                     export={"command": "python -m emotion_edge.export.bundle "
                                        f"runs/{stem} --data fer2013.csv.gz{flags}"},
                     accuracy={"privatetest": private, "images": 3589,
                               "measured_by": "emotion-edge export --all"})


@pytest.fixture(scope="module")
def stems(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    add_stem(folder, "default", build_varied_keras(seed=0), FER2013_LABELS)
    add_stem(folder, "accurate", build_varied_keras(seed=3), FER2013_LABELS)
    add_stem(folder, "ferplus", build_ferplus_keras(), FERPLUS_LABELS)
    return folder


@pytest.fixture(autouse=True)
def bundled_here(stems, monkeypatch) -> Path:
    """The temporary folder as the package's bundled models."""
    monkeypatch.setattr(bundled, "models_dir", lambda: stems)
    return stems


def expected_probabilities(model: str) -> np.ndarray:
    with load_predictor(model) as predictor:
        return predictor.predict(prepare_batch([photo_crop()], predictor.input_spec))[0]


# --- names and loading --------------------------------------------------------------------

def test_every_stem_resolves_by_name_and_loads_with_its_own_labels():
    assert [p.name for p in bundled.bundled_models()["ferplus"]] == [
        "ferplus.keras", "ferplus.int8.tflite", "ferplus.fp32.onnx"]
    names = {"accurate": "accurate.int8.tflite", "accurate-keras": "accurate.keras",
             "ferplus": "ferplus.int8.tflite", "ferplus-onnx": "ferplus.fp32.onnx",
             "ferplus.int8.tflite": "ferplus.int8.tflite", None: "default.int8.tflite"}
    for name, file in names.items():
        assert resolve_model(name).name == file
    with load_predictor("ferplus-onnx") as onnx, load_predictor("ferplus") as tflite:
        assert onnx.labels == tflite.labels == FERPLUS_LABELS
        batch = prepare_batch([photo_crop()], onnx.input_spec)
        assert onnx.predict(batch).shape == (1, 8)
        assert FERPLUS_LABELS[int(onnx.predict(batch).argmax())] == "contempt"
        assert FERPLUS_LABELS[int(tflite.predict(batch).argmax())] == "contempt"
    with load_predictor("accurate") as accurate:
        assert accurate.labels == FER2013_LABELS
        assert accurate.info.path.name == "accurate.int8.tflite"


@pytest.mark.parametrize("command", ["predict", "video", "batch"])
def test_model_help_names_the_bundled_models_default_first(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "bundled model's name (default, accurate, ferplus;" in text
    assert "without --model: default's TFLite int8" in text


def test_recognizer_gives_the_ferplus_models_eight_probabilities():
    expected = expected_probabilities("ferplus")
    with EmotionRecognizer(RecognizerOptions(model="ferplus", detect_faces=False)) as rec:
        (face,) = rec.analyze(PHOTO)
    assert rec.labels == FERPLUS_LABELS
    assert tuple(face.probabilities) == FERPLUS_LABELS
    np.testing.assert_allclose(list(face.probabilities.values()), expected, atol=1e-6)
    assert face.label == "contempt" and face.score == pytest.approx(expected.max())


def test_accuracy_labels_read_from_the_sidecar(stems):
    on = {name: accuracy_labels(read_sidecar(stems / name)) for name in (
        "default.keras", "default.int8.tflite", "accurate.keras", "accurate.int8.tflite",
        "ferplus.keras", "ferplus.int8.tflite")}
    assert on == {"default.keras": "FER2013", "default.int8.tflite": "FER2013",
                  "accurate.keras": "FER2013",
                  "accurate.int8.tflite": "FER+ majority",  # exported with --ferplus
                  "ferplus.keras": "FER+ majority", "ferplus.int8.tflite": "FER+ majority"}


# --- predict ------------------------------------------------------------------------------

def test_predict_csv_has_a_column_per_label_of_the_model(capsys):
    assert main(["predict", str(PHOTO), "--model", "ferplus", "--no-detect", "--csv"]) == 0
    header, row = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert header == [*CSV_COLUMNS, *(f"p_{label}" for label in FERPLUS_LABELS), "status"]
    expected = expected_probabilities("ferplus")
    probabilities = row[len(CSV_COLUMNS):-1]
    assert probabilities == [f"{p:.4f}" for p in expected]
    assert row[CSV_COLUMNS.index("label")] == "contempt" and row[-1] == "ok"

    assert main(["predict", str(PHOTO), "--model", "accurate", "--no-detect", "--csv"]) == 0
    header, row = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert header[len(CSV_COLUMNS):-1] == [f"p_{label}" for label in FER2013_LABELS]
    assert row[len(CSV_COLUMNS):-1] == [f"{p:.4f}" for p in expected_probabilities("accurate")]


def test_predict_json_and_table_name_the_eighth_label(capsys):
    assert main(["predict", str(PHOTO), "--model", "ferplus-onnx", "--no-detect",
                 "--json"]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    (face,) = report["faces"]
    assert list(face["probabilities"]) == list(FERPLUS_LABELS)
    expected = expected_probabilities("ferplus-onnx")
    assert list(face["probabilities"].values()) == pytest.approx(expected.tolist(), abs=1e-6)
    assert face["label"] == "contempt"
    assert main(["predict", str(PHOTO), "--model", "ferplus", "--no-detect"]) == 0
    assert " contempt " in capsys.readouterr().out


# --- info ---------------------------------------------------------------------------------

def test_info_lists_every_model_with_its_classes_and_accuracy(capsys):
    from emotion_edge.info import collect

    models = collect()["models"]
    assert list(models) == ["accurate", "default", "ferplus"]
    assert models["ferplus"] == {
        "classes": 8, "labels": list(FERPLUS_LABELS),
        "accuracy": {"FER+ majority": {"publictest": 0.852, "privatetest": 0.851}},
        "artifacts": ["ferplus.keras", "ferplus.int8.tflite", "ferplus.fp32.onnx"]}
    assert models["accurate"]["accuracy"] == {
        "FER2013": {"publictest": 0.712, "privatetest": 0.713},
        "FER+ majority": {"publictest": 0.82, "privatetest": 0.83}}
    assert models["default"]["classes"] == 7
    files = collect()["bundled_models"]
    assert files["ferplus.int8.tflite"]["accuracy"] == 0.849
    assert files["ferplus.int8.tflite"]["accuracy_labels"] == "FER+ majority"
    assert files["default.int8.tflite"]["accuracy_labels"] == "FER2013"

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"  ferplus: 8 classes ({', '.join(FERPLUS_LABELS)})\n" in out
    assert "    accuracy on FER+ majority labels: PublicTest 85.20%, PrivateTest 85.10%\n" in out
    assert "    accuracy on FER2013 labels: PublicTest 71.20%, PrivateTest 71.30%\n" in out
    assert "PrivateTest 0.8490 (FER+ majority labels)" in out


# --- video and batch ----------------------------------------------------------------------

def test_video_csv_and_summary_follow_the_models_labels(tmp_path):
    pytest.importorskip("av")
    from emotion_edge.video.io import VideoReader
    from emotion_edge.video.synth import make_clip

    clip = make_clip(tmp_path / "clip.mp4", seconds=0.4, fps=10, width=320, height=240)
    table, summary = tmp_path / "faces.csv", tmp_path / "summary.json"
    assert main(["video", str(clip), "--csv", str(table), "--json", str(summary),
                 "--model", "ferplus", "--detector", "blazeface", "--threads", "1",
                 "--no-progress"]) == 0
    with table.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    header = list(rows[0])
    assert header[-16:] == [*(f"raw_{k}" for k in FERPLUS_LABELS),
                            *(f"smoothed_{k}" for k in FERPLUS_LABELS)]
    options = RecognizerOptions(model="ferplus", detector="blazeface", threads=1)
    with VideoReader(clip) as reader, EmotionRecognizer(options) as recognizer:
        frame, _, _ = next(iter(reader.frames()))
        (face,) = recognizer.analyze(frame)
    first = next(r for r in rows if r["frame"] == "0")
    assert [float(first[f"raw_{k}"]) for k in FERPLUS_LABELS] == pytest.approx(
        [face.probabilities[k] for k in FERPLUS_LABELS], abs=1e-4)
    assert first["raw_label"] == face.label
    tracks = json.loads(summary.read_text())["tracks"]
    assert tracks and all(list(t["share"]) == list(FERPLUS_LABELS) for t in tracks)


def test_batch_rows_have_a_probability_column_per_label_of_the_model():
    pa = pytest.importorskip("pyarrow")
    from emotion_edge.batch.pipeline import RecognizeFaces

    stage = RecognizeFaces(RecognizerOptions(model="ferplus", detect_faces=False))
    try:
        table = stage(pa.table({"path": [str(PHOTO)], "bytes": [PHOTO.read_bytes()],
                                "read_error": pa.array([None], pa.string())}))
    finally:
        stage.recognizer.close()
    columns = [c for c in table.column_names if c.startswith("p_")]
    assert columns == [f"p_{label}" for label in FERPLUS_LABELS]
    (row,) = table.to_pylist()
    expected = expected_probabilities("ferplus")
    assert [row[c] for c in columns] == pytest.approx(expected.tolist(), abs=1e-6)
    assert row["label"] == "contempt"


# --- the app ------------------------------------------------------------------------------

@pytest.fixture
def service():
    pytest.importorskip("gradio")
    from emotion_edge.app.ui import make_service

    service = make_service()
    yield service
    service.close()


def test_app_menu_names_each_models_artifacts_and_selects_the_default(service):
    assert [c.title for c in service.choices] == [
        "default · Keras fp32", "default · TFLite int8", "default · ONNX fp32",
        "default · ONNX fp32 on OpenVINO",  # OpenVINO reads ONNX; no IR is here
        "accurate · Keras fp32", "accurate · TFLite int8",
        "ferplus · Keras fp32", "ferplus · TFLite int8", "ferplus · ONNX fp32",
        "ferplus · ONNX fp32 on OpenVINO"]
    assert service.default.title == "default · TFLite int8"
    # API callers may still name the default model's entries by format, or any by file
    assert service.pool.choice("TFLite int8") is service.default
    assert service.pool.choice("ferplus.fp32.onnx").title == "ferplus · ONNX fp32"


def test_app_analyses_with_the_eight_class_model(service):
    from emotion_edge.app.render import face_cards_html

    result = service.analyze(PHOTO, "ferplus · TFLite int8", "whole-image")
    (face,) = result.faces
    assert tuple(face.probabilities) == FERPLUS_LABELS and face.label == "contempt"
    assert result.backend == "ferplus · TFLite int8"
    cards = face_cards_html(result.faces)
    assert cards.count('class="ee-row') == 8 and ">contempt<" in cards


def test_app_model_card_and_about_say_which_labels_accuracy_is_on(service):
    text, _ = service.model_card("ferplus · TFLite int8")
    assert "- **Labels:** " + ", ".join(FERPLUS_LABELS) + "\n" in text
    assert ("- **Model:** ferplus, 8 classes; its accuracy is measured on FER+ majority "
            "labels\n") in text
    assert "- **Accuracy on FER+ PrivateTest (majority labels):** 84.90%\n" in text
    assert "- **Source model accuracy on FER+ PublicTest (majority labels):** 85.20%" in text
    assert "FER2013 P" not in text
    text, _ = service.model_card("accurate · Keras fp32")
    assert "- **Accuracy on FER2013 PrivateTest:** 71.30%\n" in text
    assert "- **Accuracy on FER+ PrivateTest (majority labels):** 83.00%\n" in text
    text, _ = service.model_card("accurate · TFLite int8")
    assert "- **Accuracy on FER+ PrivateTest (majority labels):** 71.10%\n" in text
    assert "- **Source model accuracy on FER2013 PrivateTest:** 71.30%\n" in text
    assert service.model_rows() == [
        ["default", 7, "FER2013 labels", "65.67%", "67.15%"],
        ["accurate", 7, "FER2013 labels", "71.20%", "71.30%"],
        ["accurate", 7, "FER+ majority labels", "82.00%", "83.00%"],
        ["ferplus", 8, "FER+ majority labels", "85.20%", "85.10%"]]
    assert service.emotions() == "7 or 8"


def test_app_compare_takes_majorities_within_each_label_set(service):
    rows, summary = service.compare(PHOTO, "whole-image", selected="default · TFLite int8")
    assert [r[5] for r in rows] == [7] * 6 + [8] * 4
    groups: dict[int, Counter] = {}
    for row in rows:
        groups.setdefault(row[5], Counter())[row[1]] += 1
    assert groups[8] == Counter({"contempt": 4})
    majority = groups[7].most_common(1)[0][0]
    for row in rows:
        expected = majority if row[5] == 7 else "contempt"
        assert (row[-1] == "✓") == (row[1] == expected), row
    count = groups[7][majority]
    assert summary == (f"Largest face through 10 backends: 7-class models: **{majority}** "
                       f"from {count} of 6; 8-class models: **contempt** from 4 of 4 (majorities "
                       "are taken among models with the same labels).")


def test_app_compare_says_agreement_does_not_apply_to_a_lone_label_set(stems):
    from emotion_edge.app.ui import make_service

    service = make_service(["default.int8.tflite", "ferplus.int8.tflite"])
    try:
        rows, _ = service.compare(PHOTO, "whole-image")
    finally:
        service.close()
    assert [r[-1] for r in rows] == ["n/a: the only backend with these labels"] * 2


def test_app_stream_survives_a_switch_to_a_model_with_other_labels(service):
    from emotion_edge.runtime.stream import FaceTracks

    frame = read_image(PHOTO)
    tracks = FaceTracks()
    _, status = service.stream(frame, "default · TFLite int8", tracks, "whole-image")
    assert "⚠️" not in status
    _, status = service.stream(frame, "ferplus · TFLite int8", tracks, "whole-image")
    assert status.startswith("#1 contempt "), status


def test_app_page_builds_over_every_model(service):
    from emotion_edge.app.ui import build_app

    demo = build_app(service, report=None)
    texts = [getattr(block, "value", None) for block in demo.blocks.values()]
    assert any(isinstance(t, str) and "7 or 8 emotions" in t for t in texts)
