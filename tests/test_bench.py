"""``emotion-edge bench``: a quick benchmark of tiny Keras/TFLite/ONNX models made here."""

from __future__ import annotations

import csv
import importlib.metadata
import json
from pathlib import Path

import numpy as np
import pytest
from artifacts import make_keras, make_onnx, make_tflite
from emotion_edge.benchmarks.peer import FETCH_COMMAND, labels_from_source
from emotion_edge.benchmarks.plots import PLOTS, pareto_front
from emotion_edge.benchmarks.report import README_END, README_START, peer_ratios, readme_section
from emotion_edge.benchmarks.runner import BenchOptions, empty_row, head_to_head_record
from emotion_edge.benchmarks.targets import given_targets
from emotion_edge.data.benchmark import BenchmarkResult, HeadToHead
from emotion_edge.data.evaluate import evaluate
from emotion_edge.data.sampling import stratified_indices
from emotion_edge.runtime.errors import DataError
from emotion_edge.runtime.formats import Backend
from emotion_edge.runtime.labels import FERPLUS_LABELS
from emotion_edge.runtime.sidecar import InputSpec
from PIL import Image

from emotion_edge.cli import main

pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    from conftest import build_tiny_keras

    folder = tmp_path_factory.mktemp("bench-models")
    model = build_tiny_keras()
    return {
        "keras": make_keras(folder / "tiny.keras", model),
        "tflite": make_tflite(folder / "tiny.fp32.tflite", model),
        "int8": make_tflite(folder / "tiny.int8.tflite", model, precision="int8"),
        "onnx": make_onnx(folder / "tiny.fp32.onnx", model),
    }


@pytest.fixture(scope="module")
def quick_report(artifacts, tmp_path_factory) -> Path:
    """One quick benchmark over all four artifacts, the tiny CSV and one photo."""
    from conftest import write_tiny_csv

    base = tmp_path_factory.mktemp("bench")
    photos = base / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(photos / "noise.png")
    out = base / "report"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMOTION_EDGE_CACHE", str(base / "empty-cache"))  # the peer is not fetched
        code = main(["bench", "--quick", "--threads", "1", "--data",
                     str(write_tiny_csv(base / "tiny.csv")), "--photos", str(photos),
                     "--out", str(out), "--models", *map(str, artifacts.values())])
    assert code == 0
    return out


def _rows(report: Path) -> list[dict]:
    return json.loads((report / "benchmark.json").read_text())["rows"]


def test_quick_benchmark_writes_every_file(quick_report):
    for name in ("benchmark.json", "benchmark.csv", "benchmark.md"):
        assert (quick_report / name).stat().st_size > 0
    for name in PLOTS:
        with Image.open(quick_report / "plots" / f"{name}.png") as img:
            assert img.format == "PNG"
            assert 300 <= img.width <= 3000 and 150 <= img.height <= 3000
    markdown = (quick_report / "benchmark.md").read_text()
    assert "tiny.int8.tflite" in markdown and "plots/accuracy_vs_latency.png" in markdown


def test_json_follows_the_schema_and_its_figures_are_right(quick_report):
    result = BenchmarkResult.load(quick_report / "benchmark.json")  # DataError if off-schema
    assert result.environment.cores and result.environment.packages["numpy"] == np.__version__
    measured = {r.name: r for r in result.rows if not r.peer}
    # OpenVINO reads the ONNX file: a row of its own
    assert set(measured) == {"tiny.keras", "tiny.fp32.tflite", "tiny.int8.tflite",
                             "tiny.fp32.onnx", "tiny.fp32.onnx on openvino"}
    on_openvino = measured["tiny.fp32.onnx on openvino"]
    assert (on_openvino.backend, on_openvino.title) == ("openvino", "ONNX fp32 on OpenVINO")
    assert on_openvino.engine_version == importlib.metadata.version("openvino")
    data = result.datasets[0]
    for row in measured.values():
        assert row.status == "ok", row.reason
        run = row.threads["1"]
        assert None not in vars(run.latency).values() and len(run.latency.samples_ms) == 50
        assert run.latency.min_ms <= run.latency.p50_ms <= run.latency.max_ms
        assert run.peak_rss_mb > run.baseline_rss_mb > 0
        batch64 = run.throughput["64"]
        assert batch64.faces_per_s == pytest.approx(64e3 / batch64.batch_ms, rel=1e-3)
        assert run.end_to_end.status == "ok" and run.end_to_end.photos[0].photo == "noise.png"
        acc = row.accuracy["fer2013-privatetest"]
        expected = evaluate(row.path, data.path, "test")  # the same model, scored another way
        assert acc.images == expected["images_scored"] == 14
        assert acc.top1 == pytest.approx(expected["accuracy"], abs=1e-4)
        assert acc.confusion_matrix == expected["confusion_matrix"]
    int8 = measured["tiny.int8.tflite"]
    assert int8.source_fp32 == "tiny.keras"
    drop = int8.accuracy["fer2013-privatetest"].drop_pp
    keras_top1 = measured["tiny.keras"].accuracy["fer2013-privatetest"].top1
    assert drop == pytest.approx(
        (keras_top1 - int8.accuracy["fer2013-privatetest"].top1) * 100, abs=0.02)
    peers = [r for r in result.rows if r.peer]
    assert peers and all(r.status == "skipped" and FETCH_COMMAND in r.reason for r in peers)


def test_schema_refuses_a_report_with_a_missing_field(quick_report, tmp_path):
    data = json.loads((quick_report / "benchmark.json").read_text())
    del data["rows"][0]["threads"]["1"]["latency"]["p50_ms"]
    (tmp_path / "benchmark.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"rows\[0\]\.threads\.1\.latency: missing.*p50_ms"):
        BenchmarkResult.load(tmp_path / "benchmark.json")


def test_csv_has_one_line_per_artifact_and_thread_count(quick_report):
    with open(quick_report / "benchmark.csv", newline="") as fh:
        lines = list(csv.DictReader(fh))
    assert len(lines) == len(_rows(quick_report))
    assert {"latency_p50_ms", "faces_per_s_batch32", "fer2013-privatetest_top1",
            "peak_rss_mb"} <= set(lines[0])


def test_existing_report_is_kept(quick_report, capsys):
    before = (quick_report / "benchmark.json").read_bytes()
    assert main(["bench", "--quick", "--no-peer", "--out", str(quick_report)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (quick_report / "benchmark.json").read_bytes() == before


def test_readme_section_is_generated_from_the_json(quick_report, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{README_START}\nold text\n{README_END}\n\nafter\n")
    assert main(["bench", "--readme", str(readme), "--out", str(quick_report)]) == 0
    text = readme.read_text()
    assert "old text" not in text and "tiny.int8.tflite" in text
    assert text.startswith("# Title") and text.rstrip().endswith("after")
    no_markers = tmp_path / "plain.md"
    no_markers.write_text("# nothing here\n")
    assert main(["bench", "--readme", str(no_markers), "--out", str(quick_report)]) == 2


def test_missing_engine_is_skipped_not_a_crash(artifacts, tmp_path, monkeypatch):
    real = Backend.available
    monkeypatch.setattr(Backend, "available",
                        lambda self: self.name != "onnxruntime" and real(self))
    out = tmp_path / "report"
    assert main(["bench", "--quick", "--no-peer", "--threads", "1", "--out", str(out),
                 "--models", str(artifacts["onnx"])]) == 0
    row, on_openvino = _rows(out)
    assert row["status"] == "skipped"
    assert "emotion-edge[onnx]" in row["reason"]
    assert row["threads"]["1"]["latency"]["p50_ms"] is None
    # the same file on OpenVINO, which is installed, is measured
    assert on_openvino["backend"] == "openvino" and on_openvino["status"] == "ok"
    assert on_openvino["threads"]["1"]["latency"]["p50_ms"] > 0
    # and --backends keeps only the entries on the backends named
    out = tmp_path / "openvino-only"
    assert main(["bench", "--quick", "--no-peer", "--threads", "1", "--out", str(out),
                 "--models", str(artifacts["onnx"]), "--backends", "openvino"]) == 0
    assert [(r["artifact"], r["backend"]) for r in _rows(out)] == [
        ("tiny.fp32.onnx", "openvino")]
    assert all((out / "plots" / f"{name}.png").is_file() for name in PLOTS)


def test_without_data_accuracy_is_skipped_and_latency_measured(artifacts, tmp_path):
    out = tmp_path / "report"
    assert main(["bench", "--quick", "--no-peer", "--threads", "1", "--out", str(out),
                 "--models", str(artifacts["tflite"])]) == 0
    (row,) = _rows(out)
    assert row["status"] == "ok"
    assert row["threads"]["1"]["latency"]["p50_ms"] > 0
    acc = row["accuracy"]["fer2013-privatetest"]
    assert acc["status"] == "skipped" and "--data PATH" in acc["reason"]


def test_missing_data_is_refused_before_measuring(artifacts, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["bench", "--quick", "--no-peer", "--out", str(out), "--models",
                 str(artifacts["tflite"]), "--data", str(tmp_path / "nope.csv")]) == 2
    err = capsys.readouterr().err
    assert "--data " + str(tmp_path / "nope.csv") + ": no such file or folder" in err
    assert "Traceback" not in err and not out.exists()
    assert main(["bench", "--quick", "--no-peer", "--out", str(out), "--models",
                 str(artifacts["tflite"]), "--photos", str(tmp_path / "nophotos")]) == 2
    err = capsys.readouterr().err
    assert f"--photos {tmp_path / 'nophotos'}: not a folder of photos" in err
    assert not out.exists()


def test_a_pair_counts_both_files(tmp_path):
    """An OpenVINO artifact is its .xml and its .bin: the report's size counts both."""
    (target,) = given_targets(("default-openvino-int8",))
    xml = target.path
    assert xml.name == "default.int8.openvino.xml"
    row = empty_row(target, [], BenchOptions())
    assert row.file_bytes == xml.stat().st_size + xml.with_suffix(".bin").stat().st_size
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    (target,) = given_targets((str(notes),))
    assert empty_row(target, [], BenchOptions()).file_bytes is None
    assert "not a model file" in target.skip_reason


def test_bad_options_are_clear_errors(tmp_path, capsys):
    assert main(["bench", "--threads", "0", "--out", str(tmp_path)]) == 2
    assert main(["bench", "--backends", "tpu", "--out", str(tmp_path)]) == 2
    assert "valid backends" in capsys.readouterr().err


def test_stratified_sample_keeps_class_shares():
    y = np.repeat(np.arange(7), [491, 55, 528, 879, 594, 416, 626])
    keep = stratified_indices(y, 500, seed=0)
    assert len(keep) == len(set(keep)) == 500
    shares = np.bincount(y[keep], minlength=7) / 500
    assert np.abs(shares - np.bincount(y) / len(y)).max() < 0.003


def test_pareto_front():
    points = [(1.0, 60.0), (2.0, 65.0), (3.0, 64.0), (0.5, 50.0), (4.0, 70.0)]
    assert pareto_front(points) == [3, 0, 1, 4]


def test_peer_labels_are_read_from_its_source():
    source = ("class FER:\n    @staticmethod\n    def _get_labels():\n        return {1: 'b', "
              "0: 'a', 2: 'c'}\n")
    assert labels_from_source(source) == ("a", "b", "c")


@pytest.mark.slow
def test_peer_tflite_matches_its_published_accuracy(fer_csv):
    """fer's TFLite on PrivateTest, through our harness, is about 65.8% top-1."""
    from emotion_edge.benchmarks.peer import peer_artifacts
    from emotion_edge.data.datasets import load_split
    from emotion_edge.data.metrics import classification_report
    from emotion_edge.runtime import load_predictor, prepare_batch

    path = next((p for item, p in peer_artifacts().items() if item.format == "tflite"), None)
    if path is None:
        pytest.skip(f"peer not fetched; run: {FETCH_COMMAND}")
    with load_predictor(path, threads=1) as predictor:
        split = load_split(fer_csv, "test", predictor.labels, 64, 1)
        probs = np.concatenate([predictor.predict(prepare_batch(list(split.x[i:i + 256]),
                                                                predictor.input_spec))
                                for i in range(0, len(split), 256)])
    accuracy = classification_report(split.y, probs, predictor.labels)["accuracy"]
    assert abs(accuracy - 0.658) < 0.01


@pytest.fixture(scope="module")
def ferplus_report(tmp_path_factory) -> tuple[Path, dict[str, Path], Path, Path]:
    """A quick bench with --ferplus of an 8-class model trained on the tiny FER+ votes, its
    int8 TFLite file and a 7-class int8 TFLite file: ``(report folder, models, FER2013 CSV,
    FER+ votes)``."""
    import keras
    from artifacts import build_trained_keras, edit_sidecar
    from conftest import write_tiny_csv
    from test_distill import TINY, write_tiny_ferplus

    base = tmp_path_factory.mktemp("bench-ferplus")
    fer = write_tiny_csv(base / "tiny.csv")
    votes = write_tiny_ferplus(base / "votes.csv", fer)
    lines = votes.read_text().splitlines()
    lines[1 + 58] = lines[1 + 58].rsplit(",", 10)[0] + ",0,0,0,0,0,0,0,0,1,9"  # PrivateTest: NF
    votes.write_text("\n".join(lines) + "\n")
    assert main(["train", "--data", str(fer), "--out", str(base / "eight"), "--epochs", "1",
                 "--task", "ferplus", "--ferplus", str(votes), "--cache-dir",
                 str(base / "cache"), *TINY]) == 0
    eight = base / "eight" / "model.keras"
    eight_int8 = make_tflite(eight.with_name("model.int8.tflite"),
                             keras.models.load_model(eight, compile=False), "int8")
    edit_sidecar(eight_int8, labels=list(FERPLUS_LABELS))
    models = {"eight": eight, "eight-int8": eight_int8,
              "seven": make_tflite(base / "seven.int8.tflite", build_trained_keras(), "int8")}
    out = base / "report"
    assert main(["bench", "--quick", "--no-peer", "--threads", "1", "--data", str(fer),
                 "--ferplus", str(votes), "--out", str(out), "--models",
                 *map(str, models.values())]) == 0
    return out, models, fer, votes


def test_ferplus_column_is_what_evaluate_scores(ferplus_report):
    out, models, fer, votes = ferplus_report
    result = BenchmarkResult.load(out / "benchmark.json")
    assert result.ferplus_dataset == "ferplus-test"
    assert result.datasets[1].ferplus == str(votes) and result.datasets[1].path == str(fer)
    rows = {r.path: r for r in result.rows}
    for path in models.values():
        acc = rows[str(path)].accuracy["ferplus-test"]
        expected = evaluate(str(path), str(fer), "test", ferplus=str(votes))
        assert acc.status == "ok"
        assert acc.top1 == pytest.approx(expected["accuracy"], abs=1e-4)
        assert acc.images == expected["images_scored"]
        assert acc.skipped == expected["skipped"]
        assert acc.confusion_matrix == expected["confusion_matrix"]
    eight = rows[str(models["eight"])].accuracy["ferplus-test"]
    seven = rows[str(models["seven"])].accuracy["ferplus-test"]
    # 14 PrivateTest rows: one not a face; two with a contempt majority, which only the
    # 8-class model is scored on
    no_majority = ("dropped (no clear majority: not a face, unknown, or no emotion over half "
                   "the votes)")
    assert (eight.images, eight.skipped) == (13, {no_majority: 1})
    assert (seven.images, seven.skipped) == (11, {no_majority: 1,
                                                  "label not known to the model": 2})
    for acc in (eight, seven):  # the models predict more than one class: the check can fail
        assert np.count_nonzero(np.sum(acc.confusion_matrix, axis=0)) > 1
    int8 = rows[str(models["eight-int8"])]
    assert int8.source_fp32 == "model.keras"
    assert int8.accuracy["ferplus-test"].drop_pp == pytest.approx(
        (eight.top1 - int8.accuracy["ferplus-test"].top1) * 100, abs=0.02)
    assert int8.accuracy["fer2013-privatetest"].drop_pp is None


def test_eight_class_model_has_no_fer2013_figure(ferplus_report):
    out, models, fer, _ = ferplus_report
    rows = {r.path: r for r in BenchmarkResult.load(out / "benchmark.json").rows}
    for name in ("eight", "eight-int8"):
        eight = rows[str(models[name])].accuracy["fer2013-privatetest"]
        assert eight.status == "skipped" and eight.top1 is None and eight.images is None
        assert eight.reason.startswith("not applicable: the model's 8 labels")
    seven = rows[str(models["seven"])].accuracy["fer2013-privatetest"]
    assert seven.top1 == pytest.approx(evaluate(str(models["seven"]), str(fer))["accuracy"],
                                       abs=1e-4)
    assert seven.images == 14 and seven.skipped == {}


def test_reports_show_the_ferplus_column(ferplus_report, tmp_path):
    out, models, _, _ = ferplus_report
    result = BenchmarkResult.load(out / "benchmark.json")
    eight = next(r for r in result.rows if r.path == str(models["eight"]))
    fer_top1 = f"{eight.accuracy['ferplus-test'].top1 * 100:.2f}"
    markdown = (out / "benchmark.md").read_text()
    assert "FER+ top-1 % (ferplus-test)" in markdown
    with Image.open(out / "plots" / "accuracy_vs_latency.png") as img:
        assert img.size == (1200, 1200)  # two 12x6-inch panels at 100 dpi: FER2013 and FER+
    assert "Not scored here: model.keras: not applicable" in markdown
    readme = tmp_path / "README.md"
    readme.write_text(f"{README_START}\n{README_END}\n")
    assert main(["bench", "--readme", str(readme), "--out", str(out)]) == 0
    table = [line for line in readme.read_text().splitlines() if line.startswith("| ")]
    assert table[0].split(" | ")[3:5] == ["top-1 % (fer2013-privatetest)",
                                          "FER+ top-1 % (ferplus-test)"]
    assert table[1].split(" | ")[3:5] == ["–", fer_top1]  # the 8-class model: FER+ only
    with open(out / "benchmark.csv", newline="") as fh:
        line = next(r for r in csv.DictReader(fh) if r["artifact"] == "model.keras")
    assert (line["ferplus-test_images"], line["ferplus-test_left_out"]) == ("13", "1")
    assert line["fer2013-privatetest_top1"] == ""


def test_headline_ratio_is_default_int8_tflite_against_the_peer_tflite(quick_report):
    result = BenchmarkResult.load(quick_report / "benchmark.json")
    base = next(r for r in result.rows if r.artifact == "tiny.int8.tflite")

    def row(artifact, peer, fmt, precision, p50):
        copy = BenchmarkResult.from_dict(result.to_dict()).rows[result.rows.index(base)]
        copy.artifact, copy.stem, copy.peer, copy.format, copy.precision = (
            artifact, artifact.split(".")[0], peer, fmt, precision)
        copy.status = "ok"
        copy.threads["1"].latency.p50_ms = p50
        return copy

    result.rows = [row("accurate.int8.tflite", False, "tflite", "int8", 0.9),
                   row("default.keras", False, "keras", "fp32", 3.0),
                   row("default.int8.tflite", False, "tflite", "int8", 0.3),
                   row("fer-mini-xception.keras", True, "keras", "fp32", 2.0),
                   row("fer-mini-xception.dynamic.tflite", True, "tflite", "dynamic", 0.4)]
    assert peer_ratios(result)[0] == ("default.int8.tflite took 0.75 times the peer's "
                                     "fer-mini-xception.dynamic.tflite per face on 1 thread(s), "
                                     "in this run (0.300 against 0.400 ms p50).")
    section = readme_section(result, "reports")
    assert "0.75 times" in section
    # every bundled model's int8 TFLite file gets its ratio, after the default's
    assert section.index("default.int8.tflite took 0.75") < section.index(
        "accurate.int8.tflite took 2.25 times the peer's fer-mini-xception.dynamic.tflite per "
        "face on 1 thread(s), in this run (0.900 against 0.400 ms p50).")
    # with a head-to-head timing, the default's sentence gives its ratio; the accurate's,
    # without one, keeps the ratio of the p50s measured alone
    result.head_to_head = [HeadToHead(
        "default.int8.tflite", "fer-mini-xception.dynamic.tflite", 1, 300,
        [0.20, 0.22, 0.30], [0.40, 0.50, 0.45], 0.44, 0.44, 0.67)]
    assert peer_ratios(result) == [
        "default.int8.tflite took 0.44 times the peer's fer-mini-xception.dynamic.tflite per "
        "face on 1 thread(s) in this run: the median over 3 rounds timed in turn in one "
        "process (least 0.44, most 0.67; 0.220 against 0.450 ms); each measured alone in its "
        "own process, 0.300 against 0.400 ms p50.",
        "accurate.int8.tflite took 2.25 times the peer's fer-mini-xception.dynamic.tflite per "
        "face on 1 thread(s), in this run (0.900 against 0.400 ms p50)."]
    result.rows = result.rows[:2]
    assert peer_ratios(result) == []


def test_head_to_head_ratio_is_the_median_of_the_rounds_ratios():
    h = head_to_head_record("a.tflite", "peer.tflite", 1, 100, [1.0, 2.0, 6.0, 3.0],
                            [2.0, 2.0, 2.0, 4.0])
    assert (h.ratio, h.ratio_min, h.ratio_max) == (0.875, 0.5, 3.0)  # of 0.5, 1, 3, 0.75
    with pytest.raises(ValueError):
        head_to_head_record("a.tflite", "peer.tflite", 1, 100, [1.0], [1.0, 2.0])


def test_our_tflite_files_are_timed_against_the_peers_in_one_process(artifacts, tmp_path,
                                                                      monkeypatch):
    """A stand-in peer (the tiny fp32 file under the peer's name) in the cache: each of our
    files but the Keras one gets a head-to-head record, in the JSON and the report."""
    from emotion_edge.benchmarks.peer import PEER_FILES, peer_dir

    folder = peer_dir(tmp_path / "cache")
    folder.mkdir(parents=True)
    peer_file = next(f for f in PEER_FILES if f.format == "tflite").artifact
    (folder / peer_file).write_bytes(artifacts["tflite"].read_bytes())
    sidecar = json.loads(Path(str(artifacts["tflite"]) + ".json").read_text())
    (folder / (peer_file + ".json")).write_text(json.dumps(sidecar | {"precision": "dynamic"}))
    monkeypatch.setenv("EMOTION_EDGE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "report"
    assert main(["bench", "--quick", "--threads", "1", "--out", str(out), "--backends",
                 "litert", "onnxruntime", "keras", "--models", str(artifacts["int8"]),
                 str(artifacts["tflite"]), str(artifacts["onnx"]),
                 str(artifacts["keras"])]) == 0
    result = BenchmarkResult.load(out / "benchmark.json")
    pairs = {h.artifact: h for h in result.head_to_head}
    assert sorted(pairs) == ["tiny.fp32.onnx", "tiny.fp32.tflite", "tiny.int8.tflite"]
    for h in pairs.values():
        assert h.peer_artifact == peer_file and h.threads == 1 and h.runs == 50
        assert len(h.p50_ms) == len(h.peer_p50_ms) == result.settings.rounds == 3
        ratios = sorted(a / b for a, b in zip(h.p50_ms, h.peer_p50_ms, strict=True))
        assert h.ratio == pytest.approx(ratios[1], rel=1e-2)  # the JSON keeps 4 decimals
        assert h.ratio_min == pytest.approx(ratios[0], rel=1e-2)
    report = (out / "benchmark.md").read_text()
    assert "## Against the peer, round by round" in report
    assert f"| tiny.int8.tflite | {pairs['tiny.int8.tflite'].ratio:.2f} |" in report


def test_bundled_stems_are_listed_default_accurate_ferplus(monkeypatch, tmp_path):
    from emotion_edge.benchmarks import targets

    found = {stem: [tmp_path / f"{stem}.keras", tmp_path / f"{stem}.int8.tflite"]
             for stem in ("accurate", "custom", "default", "ferplus")}
    monkeypatch.setattr(targets, "bundled_models", lambda: found)
    names = [t.name for t in targets.bundled_targets()]
    assert names == ["default.keras", "default.int8.tflite", "accurate.keras",
                     "accurate.int8.tflite", "ferplus.keras", "ferplus.int8.tflite",
                     "custom.keras", "custom.int8.tflite"]


def test_bad_ferplus_is_a_clear_error(ferplus_report, tmp_path, capsys):
    _, models, fer, votes = ferplus_report
    out = tmp_path / "report"
    base = ["bench", "--quick", "--no-peer", "--out", str(out), "--models", str(models["seven"])]
    missing = tmp_path / "nope.csv"
    assert main([*base, "--data", str(fer), "--ferplus", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"--ferplus {missing}: no such file" in err and "Traceback" not in err
    short = tmp_path / "short.csv"
    short.write_text("\n".join(votes.read_text().splitlines()[:-1]) + "\n")
    assert main([*base, "--data", str(fer), "--ferplus", str(short)]) == 2
    err = capsys.readouterr().err
    assert f"{short}: has 69 rows but the FER2013 CSV has 70" in err and "Traceback" not in err
    assert main([*base, "--ferplus", str(votes)]) == 2
    assert "also pass --data with the FER2013 CSV" in capsys.readouterr().err
    assert main([*base, "--data", str(tmp_path), "--ferplus", str(votes)]) == 2
    assert "one --data must be the FER2013 CSV" in capsys.readouterr().err
    assert not out.exists()


def test_report_from_before_the_ferplus_fields_still_loads(quick_report, tmp_path):
    data = json.loads((quick_report / "benchmark.json").read_text())
    for dataset in data["datasets"]:
        del dataset["ferplus"]
    for row in data["rows"]:
        for acc in row["accuracy"].values():
            del acc["skipped"]
    (tmp_path / "benchmark.json").write_text(json.dumps(data))
    result = BenchmarkResult.load(tmp_path / "benchmark.json")
    assert result.datasets[0].ferplus is None and result.ferplus_dataset is None
    assert result.rows[0].accuracy["fer2013-privatetest"].skipped == {}


def test_head_to_head_times_each_file_with_its_own_calls(monkeypatch):
    """``child.measure_head_to_head`` on stand-in predictors whose calls advance a fake clock
    by a known cost: each file's medians are its own cost, whichever turn it takes, and the
    files take turns in blocks, each getting exactly ``runs`` timed calls a round."""
    from emotion_edge.benchmarks import child

    clock = {"ns": 0}
    calls: list[str] = []

    class Stand:
        def __init__(self, path: str) -> None:
            self.path, self.cost = path, {"a": 300_000, "b": 150_000, "c": 600_000}[path]
            self.input_spec = InputSpec()

        def predict(self, x):
            clock["ns"] += self.cost
            calls.append(self.path)

        def close(self):
            pass

    monkeypatch.setattr(child, "load_predictor", lambda path, **kw: Stand(path))
    monkeypatch.setattr(child.time, "perf_counter_ns", lambda: clock["ns"])
    request = {"artifacts": [{"path": p, "backend": "litert"} for p in "abc"],
               "threads": 1, "rounds": 4, "runs": 50, "warmup": 3}
    result = child.measure_head_to_head(request)
    assert result["p50_ms"] == [[0.3] * 4, [0.15] * 4, [0.6] * 4]
    assert calls[:9] == list("aaabbbccc")  # warm-up, then blocks of BLOCK calls in turn
    timed = calls[9:]
    assert len(timed) == 3 * 4 * 50 and all(timed.count(p) == 200 for p in "abc")
    assert timed[:child.BLOCK] == ["a"] * child.BLOCK and timed[child.BLOCK] == "b"
