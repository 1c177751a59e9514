"""Batch recognition on Ray Data: rows equal predict's, broken files become rows, resume.

One local Ray instance (``num_cpus=2``) serves the whole module; the tests skip with a
reason when Ray is not installed or cannot start here. Every job runs under an alarm, so a
stalled pipeline fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import DEMO_FACES
from emotion_edge.runtime import EmotionRecognizer, RecognizerOptions
from emotion_edge.runtime.errors import ConfigError
from PIL import Image

from emotion_edge.cli import main

pytest.importorskip("ray.data", reason="needs the [ray] extra (Ray Data)")
pa = pytest.importorskip("pyarrow", reason="needs the [ray] extra (pyarrow)")
pq = pytest.importorskip("pyarrow.parquet", reason="needs the [ray] extra (pyarrow)")

from emotion_edge.batch import (  # noqa: E402  (after the skips)
    find_inputs,
    recognize_dataset,
    result_schema,
    run_batch,
    start_ray,
    stop_ray,
)
from emotion_edge.batch.pipeline import TASK_CPUS, actor_cpus  # noqa: E402

JOB_TIMEOUT_S = 240
BROKEN = ("broken.jpg", "fake.png")


@contextmanager
def deadline(seconds: int = JOB_TIMEOUT_S):
    """Fail (instead of hanging) when the block takes longer than ``seconds``."""
    def expire(*_):
        raise TimeoutError(f"the batch job did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def ray_cluster():
    if not DEMO_FACES.is_dir():
        pytest.skip(f"demo photos not found at {DEMO_FACES}")
    try:
        with deadline(120):
            start_ray(num_cpus=2)
    except Exception as exc:  # noqa: BLE001  any failure to start means: skip, say why
        stop_ray()
        pytest.skip(f"Ray cannot start here: {type(exc).__name__}: {exc}")
    yield
    stop_ray()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """The demo photos, a face crop, a truncated JPEG, text named .png and a .txt note."""
    if not DEMO_FACES.is_dir():
        pytest.skip(f"demo photos not found at {DEMO_FACES}")
    folder = tmp_path_factory.mktemp("photos")
    for photo in sorted(DEMO_FACES.glob("*.*")):
        if photo.suffix in (".jpg", ".png"):
            shutil.copyfile(photo, folder / photo.name)
    with Image.open(DEMO_FACES / "grace_hopper.jpg") as image:
        image.crop((140, 110, 400, 380)).save(folder / "hopper_crop.png")
    (folder / "broken.jpg").write_bytes((DEMO_FACES / "grace_hopper.jpg").read_bytes()[:3000])
    (folder / "fake.png").write_text("not an image\n")
    (folder / "notes.txt").write_text("a note, not an image: the folder scan skips it\n")
    return folder


@pytest.fixture(scope="module")
def first_run(ray_cluster, photos, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "results.parquet"
    with deadline():
        summary = run_batch([str(photos)], str(out), RecognizerOptions(), workers=2,
                            batch_size=2)
    return summary, out


def rows_by_path(table) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for row in table.to_pylist():
        rows.setdefault(Path(row["path"]).name, []).append(row)
    return {name: sorted(r, key=lambda row: row["face"] or 0) for name, r in rows.items()}


def test_schema_has_a_column_per_probability(first_run):
    _, out = first_run
    table = pq.read_table(out)
    labels = EmotionRecognizer(RecognizerOptions()).labels
    expected = result_schema(labels, RecognizerOptions())
    assert table.schema.equals(expected, check_metadata=True)
    assert table.column_names == [
        "path", "face", "x", "y", "w", "h", "detection_score", "label", "score",
        *(f"p_{label}" for label in labels), "status", "error"]


def test_rows_equal_the_recognizer_and_predict(first_run, photos, capsys):
    summary, out = first_run
    rows = rows_by_path(pq.read_table(out))
    images = sorted(p for p in photos.iterdir() if p.suffix in (".jpg", ".png"))
    assert sorted(rows) == [p.name for p in images]  # one row at least per image, no notes.txt
    assert (summary.files, summary.skipped, summary.errors) == (len(images), 0, 2)
    with EmotionRecognizer(RecognizerOptions()) as recognizer:
        for path in images:
            if path.name in BROKEN:
                continue
            faces = recognizer.analyze(path)
            got = rows[path.name]
            if not faces:
                assert [(r["status"], r["face"], r["error"]) for r in got] == [
                    ("no face", None, None)]
                continue
            assert [r["face"] for r in got] == list(range(len(faces)))
            for row, face in zip(got, faces, strict=True):
                x0, y0, x1, y1 = face.box
                assert [row[k] for k in "xywh"] == pytest.approx(
                    [x0, y0, x1 - x0, y1 - y0], abs=1e-5)
                assert row["detection_score"] == pytest.approx(face.detection_score, abs=1e-5)
                assert (row["label"], row["status"]) == (face.label, "ok")
                assert row["score"] == pytest.approx(face.score, abs=1e-5)
                assert {k: row[f"p_{k}"] for k in face.probabilities} == pytest.approx(
                    face.probabilities, abs=1e-5)
    assert main(["predict", str(photos), "--json"]) == 1  # two files fail
    predicted = {Path(r["file"]).name: r for r in json.loads(capsys.readouterr().out)}
    assert sorted(predicted) == sorted(rows)
    for name, report in predicted.items():
        assert [r["status"] for r in rows[name]] == [report["status"]] * len(rows[name])
        assert [r["label"] for r in rows[name] if r["label"]] == [
            f["label"] for f in report["faces"]]
        for row, face in zip([r for r in rows[name] if r["label"]], report["faces"],
                             strict=True):
            assert row["x"] == pytest.approx(face["box"][0], abs=0.05 + 1e-6)
            assert {k: row[f"p_{k}"] for k in face["probabilities"]} == pytest.approx(
                face["probabilities"], abs=1e-5)


def test_broken_files_become_error_rows(first_run, photos):
    _, out = first_run
    rows = rows_by_path(pq.read_table(out))
    for name in BROKEN:
        (row,) = rows[name]
        assert (row["status"], row["face"], row["label"]) == ("error", None, None)
        assert row["error"].startswith(f"{photos / name}: not a readable image")


def test_resume_skips_files_already_done(first_run, photos, tmp_path, caplog):
    summary, out = first_run
    resumed = tmp_path / "resumed.parquet"
    shutil.copytree(out, resumed)
    extra = tmp_path / "more"
    extra.mkdir()
    shutil.copyfile(photos / "astronaut.png", extra / "astronaut_again.png")
    caplog.set_level(logging.INFO)
    with deadline():  # through the command line, as a user resumes
        assert main(["batch", str(photos), str(extra), "--out", str(resumed),
                     "--workers", "1"]) == 0
    assert f"1 files ({summary.files} skipped as already done)" in caplog.text
    table = pq.read_table(resumed)
    first = pq.read_table(out)
    assert table.num_rows == first.num_rows + 1
    new = [r for r in table.to_pylist() if r["path"] == str(extra / "astronaut_again.png")]
    old = [r for r in first.to_pylist() if r["path"] == str(photos / "astronaut.png")]
    assert [r["label"] for r in new] == [r["label"] for r in old]
    nothing = run_batch([str(photos), str(extra)], str(resumed), RecognizerOptions())
    assert (nothing.files, nothing.skipped) == (0, summary.files + 1)
    assert pq.read_table(resumed).num_rows == table.num_rows


def test_resume_refuses_other_options_and_overwrite_starts_again(first_run, photos, tmp_path):
    _, out = first_run
    copy = tmp_path / "copy.parquet"
    shutil.copytree(out, copy)
    crop = [str(photos / "hopper_crop.png")]
    with pytest.raises(ConfigError, match="other options"):
        run_batch(crop, str(copy), RecognizerOptions(detect_faces=False))
    with deadline():
        summary = run_batch(crop, str(copy), RecognizerOptions(detect_faces=False),
                            overwrite=True, workers=1)
    table = pq.read_table(copy)
    assert summary.files == 1 and table.num_rows == 1
    (row,) = table.to_pylist()
    assert row["detection_score"] is None and row["status"] == "ok"


def test_output_must_be_a_folder_of_parts(ray_cluster, photos, tmp_path):
    not_ours = tmp_path / "taken"
    not_ours.mkdir()
    (not_ours / "keep.csv").write_text("a,b\n")
    with pytest.raises(ConfigError, match="not batch results"):
        run_batch([str(photos)], str(not_ours), overwrite=True)
    assert (not_ours / "keep.csv").exists()
    a_file = tmp_path / "results.parquet"
    a_file.write_bytes(b"x")
    with pytest.raises(ConfigError, match="is a file"):
        run_batch([str(photos)], str(a_file))
    with pytest.raises(ConfigError, match="cannot create the folder"):
        run_batch([str(photos)], str(a_file / "inside.parquet"))


def test_python_api_returns_a_dataset(ray_cluster, photos):
    import ray.data

    paths = [str(photos / "grace_hopper.jpg"), str(photos / "missing.jpg"),
             f"file://{photos / 'camera.png'}"]  # a URI is read through pyarrow
    dataset = recognize_dataset(paths, RecognizerOptions(), workers=3)  # more than CPUs
    assert isinstance(dataset, ray.data.Dataset)
    with deadline():
        rows = {r["path"]: r for r in dataset.take_all()}
    with EmotionRecognizer(RecognizerOptions()) as recognizer:
        (face,) = recognizer.analyze(paths[0])
        (camera,) = recognizer.analyze(photos / "camera.png")
    assert rows[paths[0]]["label"] == face.label
    assert rows[paths[2]]["p_sad"] == pytest.approx(camera.probabilities["sad"], abs=1e-5)
    assert rows[paths[1]]["error"] == f"{paths[1]}: no such file"


@pytest.mark.parametrize("workers, cpus", [(1, 2.0), (2, 2.0), (3, 2.0), (8, 2.0), (64, 16.0)])
def test_actors_always_leave_room_for_reads(workers, cpus):
    share = actor_cpus(workers, cpus)
    assert 0 < share <= 0.5 and workers * share + TASK_CPUS <= cpus + 1e-9


def test_inputs_from_globs_and_lists(photos, tmp_path):
    names = ["grace_hopper.jpg", "camera.png"]
    listing = tmp_path / "list.txt"
    listing.write_text(f"# photos\n{photos / names[0]}\n\n{photos / names[1]}\n")
    assert find_inputs([str(listing)]) == [str(photos / n) for n in names]
    table_list = tmp_path / "list.parquet"
    pq.write_table(pa.table({"path": names}), table_list)
    relative = tmp_path / names[0]
    assert find_inputs([str(table_list)])[0] == str(relative)  # relative to the list's folder
    assert find_inputs([str(photos / "*.jpg")]) == [str(photos / "broken.jpg"),
                                                    str(photos / "grace_hopper.jpg"),
                                                    str(photos / "nasa_astronaut_class.jpg")]
    uri = f"file://{photos}"
    assert find_inputs([uri]) == [f"{uri}/{p.name}" for p in sorted(photos.iterdir())
                                  if p.suffix in (".jpg", ".png")]


def test_typed_errors(photos, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no image files"):
        find_inputs([str(empty)])
    with pytest.raises(ConfigError, match="no file matches"):
        find_inputs([str(tmp_path / "*.jpg")])
    for address, message in (("nonsense", "expected HOST:PORT"),
                             ("127.0.0.1:1", "nothing answers there")):
        with pytest.raises(ConfigError, match=message):
            start_ray(address)
    assert main(["batch", str(photos), "--out", str(tmp_path / "o"), "--workers", "0"]) == 2
    assert "--workers must be >= 1" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["batch", str(photos), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("emotion-edge batch: error: batch needs Ray Data and pyarrow: "
                   "pip install 'emotion-edge[ray]'")


def test_a_ray_start_up_timeout_is_a_typed_error(monkeypatch):
    import ray

    def timed_out(*args, **kwargs):
        raise Exception("The current node timed out during startup.")  # as Ray raises it

    monkeypatch.setattr(ray, "init", timed_out)
    with pytest.raises(ConfigError, match="cannot start a local Ray instance.*timed out"):
        start_ray(num_cpus=2)
