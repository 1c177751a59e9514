"""``python -m emotion_edge.export.bundle``: a finished run becomes a bundled model, scored by
``evaluate`` into its sidecar, with the exports asked for, for 7- and 8-class models."""

from __future__ import annotations

import pytest

pytest.importorskip("keras")

from conftest import write_tiny_csv  # noqa: E402
from emotion_edge.data.evaluate import evaluate  # noqa: E402
from emotion_edge.export.bundle import main as bundle_main  # noqa: E402
from emotion_edge.runtime.sidecar import read_sidecar  # noqa: E402
from test_distill import TINY, write_tiny_ferplus  # noqa: E402

from emotion_edge.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bundle")
    csv = write_tiny_csv(tmp / "tiny.csv")
    votes = write_tiny_ferplus(tmp / "votes.csv", csv)
    common = ["--data", str(csv), "--epochs", "2", "--cache-dir", str(tmp / "cache"), *TINY]
    assert main(["train", "--out", str(tmp / "seven"), *common]) == 0
    assert main(["train", "--out", str(tmp / "eight"), "--task", "ferplus", "--ferplus",
                 str(votes), *common]) == 0
    return tmp, csv, votes


def test_seven_class_run_scored_on_both_label_sets(runs, tmp_path):
    tmp, csv, votes = runs
    models = tmp_path / "models"
    assert bundle_main([str(tmp / "seven"), "--data", str(csv), "--name", "accurate",
                        "--models-dir", str(models), "--formats", "tflite-fp32",
                        "--ferplus", str(votes)]) == 0
    assert sorted(p.name for p in models.iterdir()) == [
        "accurate.fp32.tflite", "accurate.fp32.tflite.json", "accurate.keras",
        "accurate.keras.json"]
    acc = read_sidecar(models / "accurate.keras")["accuracy"]
    target = str(models / "accurate.keras")
    assert acc["privatetest"] == evaluate(target, str(csv), "test")["accuracy"]
    assert acc["ferplus_privatetest"] == evaluate(target, str(csv), "test",
                                                  ferplus=str(votes))["accuracy"]
    assert acc["reproduce"] == "make train-seven bundle-accurate"  # the run, then the name
    # its export is scored on FER2013's labels, as the model's own headline is
    export = read_sidecar(models / "accurate.fp32.tflite")["accuracy"]
    assert export["labels_from"] == "FER2013"
    assert export["privatetest"] == pytest.approx(evaluate(
        str(models / "accurate.fp32.tflite"), str(csv), "test")["accuracy"])


def test_ferplus_run_and_its_exports_are_scored_on_ferplus_labels(runs, tmp_path, capsys):
    tmp, csv, votes = runs
    models = tmp_path / "models"
    args = [str(tmp / "eight"), "--data", str(csv), "--name", "ferplus", "--models-dir",
            str(models), "--formats", "onnx-fp32"]
    assert bundle_main(args) == 2  # no votes file given: an 8-class model cannot be scored
    assert "--ferplus" in capsys.readouterr().err
    assert bundle_main([*args, "--ferplus", str(votes), "--overwrite"]) == 0
    acc = read_sidecar(models / "ferplus.keras")["accuracy"]
    target = str(models / "ferplus.keras")
    report = evaluate(target, str(csv), "test", ferplus=str(votes))
    assert acc["labels_from"] == "FER+ majority"
    assert acc["privatetest"] == report["accuracy"]
    assert acc["privatetest_images"] == report["images_scored"]
    assert "ferplus_privatetest" not in acc
    onnx = read_sidecar(models / "ferplus.fp32.onnx")
    assert len(onnx["labels"]) == 8
    # the export scored its file on the FER+ majority labels, like evaluate does
    scored = evaluate(str(models / "ferplus.fp32.onnx"), str(csv), "test", ferplus=str(votes))
    assert onnx["accuracy"]["privatetest"] == pytest.approx(scored["accuracy"])
    assert onnx["accuracy"]["images"] == scored["images_scored"]
    assert onnx["accuracy"]["labels_from"] == "FER+ majority"


def test_a_bundle_over_the_size_budget_is_named_with_each_models_share(runs, tmp_path, caplog):
    tmp, csv, _ = runs
    models = tmp_path / "models"
    models.mkdir()
    with open(models / "other.keras", "wb") as filler:  # sparse: no disk is used
        filler.truncate(60_000_000)
    args = [str(tmp / "seven"), "--data", str(csv), "--name", "accurate", "--models-dir",
            str(models), "--formats", "tflite-fp32"]
    assert bundle_main(args) == 0
    over = [r.getMessage() for r in caplog.records if "budget" in r.getMessage()]
    assert len(over) == 1 and "over the 60 MB budget" in over[0]
    assert "other 60.0 MB" in over[0] and "accurate 0." in over[0]
    (models / "other.keras").unlink()
    caplog.clear()
    assert bundle_main([*args, "--overwrite"]) == 0
    assert not [r for r in caplog.records if "budget" in r.getMessage()]


def test_unknown_format_is_refused_before_anything_is_copied(runs, tmp_path, capsys):
    tmp, csv, _ = runs
    models = tmp_path / "models"
    assert bundle_main([str(tmp / "seven"), "--data", str(csv), "--models-dir", str(models),
                        "--formats", "tflite-int9"]) == 2
    assert "tflite-int9" in capsys.readouterr().err and not models.exists()


def test_remeasure_rewrites_only_the_figures(runs, tmp_path, capsys):
    tmp, csv, votes = runs
    models = tmp_path / "models"
    assert bundle_main([str(tmp / "eight"), "--data", str(csv), "--name", "ferplus",
                        "--models-dir", str(models), "--formats", "onnx-fp32",
                        "--ferplus", str(votes)]) == 0
    files = {p.name: p.read_bytes() for p in models.iterdir() if p.suffix != ".json"}
    before = {p.name: read_sidecar(p) for p in models.iterdir() if p.suffix != ".json"}
    # two PrivateTest rows lose their clear majority: the split is scored on 12 rows, not 14
    lines = votes.read_text().splitlines()
    for row in (57, 60):
        lines[1 + row] = lines[1 + row].rsplit(",", 10)[0] + ",4,3,3,0,0,0,0,0,0,0"
    fewer = tmp_path / "fewer.csv"
    fewer.write_text("\n".join(lines) + "\n")
    assert bundle_main(["--remeasure", "--data", str(csv), "--name", "ferplus",
                        "--models-dir", str(models), "--ferplus", str(fewer)]) == 0
    assert {p.name: p.read_bytes() for p in models.iterdir() if p.suffix != ".json"} == files
    acc = read_sidecar(models / "ferplus.keras")["accuracy"]
    report = evaluate(str(models / "ferplus.keras"), str(csv), "test", ferplus=str(fewer))
    assert report["images_scored"] == 12
    assert (acc["privatetest"], acc["privatetest_images"]) == (report["accuracy"], 12)
    assert acc["reproduce"] == before["ferplus.keras"]["accuracy"]["reproduce"]
    onnx = read_sidecar(models / "ferplus.fp32.onnx")
    scored = evaluate(str(models / "ferplus.fp32.onnx"), str(csv), "test", ferplus=str(fewer))
    assert onnx["accuracy"]["privatetest"] == pytest.approx(scored["accuracy"])
    assert onnx["accuracy"]["images"] == 12
    assert onnx["parity"] == before["ferplus.fp32.onnx"]["parity"]
    assert onnx["sha256"] == before["ferplus.fp32.onnx"]["sha256"]
    # one mode at a time, and a model that is not bundled is named
    with pytest.raises(SystemExit) as exit_:
        bundle_main(["--remeasure", str(tmp / "eight"), "--data", str(csv)])
    assert exit_.value.code == 2 and "--remeasure" in capsys.readouterr().err
    assert bundle_main(["--remeasure", "--data", str(csv), "--name", "absent",
                        "--models-dir", str(models)]) == 2
    assert "absent.keras: no bundled model" in capsys.readouterr().err
