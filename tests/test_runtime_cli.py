"""``emotion-edge predict`` end to end on a tiny TFLite model and a few images."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from artifacts import make_tflite, sample_faces
from emotion_edge.runtime import FaceResult
from emotion_edge.runtime.cli import RED, annotate
from emotion_edge.runtime.draw import LabelledBox, draw_boxes
from PIL import Image

from emotion_edge.cli import main

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tflite(tmp_path_factory.mktemp("cli") / "tiny.fp32.tflite")


@pytest.fixture
def folder(tmp_path):
    """Three face crops, a broken PNG, and a text file that is skipped."""
    images = tmp_path / "faces"
    (images / "sub").mkdir(parents=True)
    for i, face in enumerate(sample_faces(3)):
        Image.fromarray(face).save(images / ("sub" if i == 2 else ".") / f"face{i}.png")
    (images / "broken.png").write_bytes((images / "face0.png").read_bytes()[:100])
    (images / "notes.txt").write_text("not an image")
    return images


def predict(capsys, *argv) -> tuple[int, str, str]:
    code = main(["predict", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_folder_goes_on_past_a_bad_file(capsys, caplog, model, folder):
    code, out, _ = predict(capsys, folder, "--model", model, "--no-detect", "--json")
    assert code == 1
    reports = {r["file"].split("faces/")[1]: r for r in json.loads(out)}
    assert set(reports) == {"broken.png", "face0.png", "face1.png", "sub/face2.png"}
    assert reports["broken.png"]["status"] == "error"
    assert "not a readable image" in reports["broken.png"]["error"]
    face = reports["face1.png"]["faces"][0]
    assert reports["face1.png"]["status"] == "ok" and face["box"] == [0, 0, 48, 48]
    assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert "1 of 4 files failed" in caplog.text


def test_csv_and_table(capsys, model, folder):
    code, out, _ = predict(capsys, folder / "face0.png", folder / "face1.png", "--model", model,
                           "--no-detect", "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["face"] for r in rows] == ["0", "0"]
    assert rows[0]["status"] == "ok" and float(rows[0]["score"]) > 0
    code, out, _ = predict(capsys, folder / "face0.png", folder / "missing.png", "--model",
                           model, "--no-detect")
    assert code == 1 and "face0.png" in out and "no such file or folder" in out


def test_no_face_is_reported_not_failed(capsys, model, demo_faces, tmp_path):
    code, out, _ = predict(capsys, demo_faces / "chelsea.png", demo_faces / "grace_hopper.jpg",
                           "--model", model, "--json")
    chelsea, grace = json.loads(out)
    assert code == 0 and chelsea["status"] == "no face" and chelsea["faces"] == []
    assert grace["status"] == "ok" and grace["faces"][0]["detection_score"] > 0.5


def test_annotate_never_overwrites_without_flag(capsys, model, demo_faces, tmp_path):
    photo = shutil.copy(demo_faces / "grace_hopper.jpg", tmp_path / "grace.jpg")
    out_dir = tmp_path / "annotated"
    code, _, _ = predict(capsys, photo, "--model", model)
    assert code == 0 and not out_dir.exists()
    code, _, _ = predict(capsys, photo, "--model", model, "--annotate", out_dir)
    target = out_dir / "grace_emotions.png"
    assert code == 0 and target.is_file()
    drawn = np.asarray(Image.open(target).convert("RGB"))
    assert drawn.shape == np.asarray(Image.open(photo)).shape
    target.write_bytes(b"keep me")
    code, out, _ = predict(capsys, photo, "--model", model, "--annotate", out_dir)
    assert code == 1 and "already exists" in out and target.read_bytes() == b"keep me"
    code, _, _ = predict(capsys, photo, "--model", model, "--annotate", out_dir, "--overwrite")
    assert code == 0 and Image.open(target).size == (512, 600)


def test_annotate_draws_with_the_shared_routine(tmp_path):
    """``--annotate`` draws through runtime.draw (as the app does): red outline, tag above."""
    face = FaceResult((40.0, 60.0, 120.0, 150.0), 0.9, "happy", 0.87, {"happy": 0.87})
    pixels = np.full((200, 160, 3), 90, np.uint8)
    target = annotate(pixels, [face], tmp_path / "out.png")
    drawn = np.asarray(Image.open(target))
    expected = draw_boxes(pixels, [LabelledBox(face.box, "happy 87%", RED)])
    np.testing.assert_array_equal(drawn, expected)
    assert tuple(drawn[100, 40]) == RED and tuple(drawn[100, 80]) == (90, 90, 90)
    tag = drawn[40:60, 40:120].reshape(-1, 3)
    assert (tag == RED).all(axis=1).any() and (tag == 255).all(axis=1).any()


def test_bad_model_is_a_clean_error(capsys, folder, tmp_path):
    code, out, err = predict(capsys, folder, "--model", tmp_path / "absent.int8.tflite")
    assert code == 2 and "no such model file" in err and "Traceback" not in err
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list\n")
    code, out, err = predict(capsys, folder, "--model", notes)
    assert code == 2 and "notes.txt: not a model file" in err and "sidecar" not in err
    code = main(["evaluate", str(notes), "--data", str(folder)])
    err = capsys.readouterr().err
    assert code == 2 and "notes.txt: not a model file" in err and "sidecar" not in err


def test_annotate_output_is_not_read_back(capsys, model, demo_faces, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(demo_faces / "grace_hopper.jpg", photos / "grace.jpg")
    for flags in ([], ["--overwrite"]):
        code, out, _ = predict(capsys, photos, "--model", model, "--json",
                               "--annotate", photos / "out", *flags)
        assert code == 0 and [r["file"] for r in json.loads(out)] == [str(photos / "grace.jpg")]
    assert sorted(p.name for p in (photos / "out").iterdir()) == ["grace_emotions.png"]


def test_csv_has_detection_score_and_probabilities(capsys, model, demo_faces):
    photo = demo_faces / "grace_hopper.jpg"
    _, out, _ = predict(capsys, photo, "--model", model, "--json")
    face = json.loads(out)[0]["faces"][0]
    code, out, _ = predict(capsys, photo, "--model", model, "--csv")
    (row,) = csv.DictReader(io.StringIO(out))
    assert code == 0 and row["status"] == "ok"
    assert float(row["detection_score"]) == pytest.approx(face["detection_score"], abs=1e-3)
    for label, p in face["probabilities"].items():
        assert float(row[f"p_{label}"]) == pytest.approx(p, abs=1e-4)


def test_input_errors_exit_cleanly(capsys, model, folder, tmp_path):
    (tmp_path / "empty").mkdir()
    code, out, err = predict(capsys, tmp_path / "empty", "--model", model)
    assert code == 2 and "no image files in this folder" in err and out == ""
    assert err.count("no image files") == 1
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, _, err = predict(capsys, folder, "--model", model, "--annotate", afile / "sub")
    assert code == 2 and "cannot create the folder" in err and "Traceback" not in err
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    code, out, _ = predict(capsys, fifo, folder / "face0.png", "--model", model, "--no-detect")
    assert code == 1 and "not a regular file" in out and "face0.png" in out


def test_litert_banner_is_not_printed(model, folder):
    result = subprocess.run(
        [sys.executable, "-m", "emotion_edge", "predict", str(folder / "face0.png"),
         "--model", str(model), "--no-detect"],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0 and "face0.png" in result.stdout
    assert "XNNPACK" not in result.stderr


def test_a_closed_stdout_pipe_ends_quietly(model, folder):
    """``emotion-edge predict … | head -1``: the reader is gone before the table is written."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "emotion_edge", "predict", str(folder / "face0.png"),
         str(folder / "face1.png"), "--model", str(model), "--no-detect"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err
