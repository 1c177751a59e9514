"""A short training run through the CLI writes every output; runs are never clobbered."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("keras")

from emotion_edge.runtime.sidecar import read_sidecar  # noqa: E402
from emotion_edge.train.run_folder import PLOT_FILES as PLOTS  # noqa: E402

from emotion_edge.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from conftest import write_tiny_csv

    tmp = tmp_path_factory.mktemp("train")
    csv = write_tiny_csv(tmp / "tiny.csv")
    out = tmp / "run"
    argv = ["train", "--data", str(csv), "--model", "vgg_s2", "--out", str(out), "--epochs", "2",
            "--batch-size", "14", "--cache-dir", str(tmp / "cache"),
            "--model-arg", "widths=[8,16,32]", "--model-arg", "dense=16"]
    assert main(argv) == 0
    return csv, out, argv


def _accuracy(run, csv, split: str) -> float:
    """The run's model.keras scored by hand: top-1 against the split's labels."""
    from emotion_edge.data.datasets import load_split
    from emotion_edge.runtime import load_predictor

    data = load_split(csv, split)
    with load_predictor(run / "model.keras") as predictor:
        return float((predictor.predict_batch(data.x).argmax(1) == data.y).mean())


def test_run_writes_every_output(trained_run):
    _, out, _ = trained_run
    for name in PLOTS + ("history.csv", "metrics.json", "config.json", "model.keras",
                         "best.keras", "last.keras", "train.log"):
        assert (out / name).is_file(), name
    for name in PLOTS:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2
    test_accuracy = _accuracy(out, trained_run[0], "test")
    assert metrics["privatetest"]["accuracy"] == pytest.approx(test_accuracy)
    assert metrics["publictest"]["images"] == 14
    sidecar = read_sidecar(out / "model.keras")
    assert sidecar["labels"][0] == "angry" and sidecar["input"]["height"] == 48
    assert sidecar["training"]["config"]["model_kwargs"]["widths"] == [8, 16, 32]
    assert len(sidecar["training"]["data_sha256"]) == 64
    config = json.loads((out / "config.json").read_text())
    assert config["epochs"] == 2 and config["balance_power"] == 0.0


def test_refuses_to_overwrite_then_resumes(trained_run, capsys):
    csv, out, argv = trained_run
    assert main(argv) == 2
    assert "already holds a run" in capsys.readouterr().err
    history_before = (out / "history.csv").read_text().splitlines()
    resume = argv[:argv.index("--epochs")] + ["--epochs", "3", "--resume"]
    assert main(resume) == 0
    history_after = (out / "history.csv").read_text().splitlines()
    assert history_after[:len(history_before)] == history_before
    assert len(history_after) == len(history_before) + 1


def test_evaluate_json(trained_run, tmp_path):
    csv, out, _ = trained_run
    report_path = tmp_path / "eval.json"
    assert main(["evaluate", str(out / "model.keras"), "--data", str(csv), "--split", "val",
                 "--json", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert report["accuracy"] == pytest.approx(_accuracy(out, csv, "val"))
    assert report["images_scored"] == 14 and report["images_skipped"] == 0
    assert len(report["confusion_matrix"]) == 7 and report["flip_average"] is False
    again = ["evaluate", str(out / "model.keras"), "--data", str(csv), "--split", "val",
             "--flip-average", "--json", str(report_path)]
    assert main(again) == 2  # an existing report is kept
    assert json.loads(report_path.read_text())["flip_average"] is False
    assert main(again + ["--overwrite"]) == 0
    flipped = json.loads(report_path.read_text())
    assert flipped["flip_average"] is True and flipped["images_scored"] == 14


def test_overwrite_keeps_other_files_and_bad_data_touches_nothing(tiny_csv, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "history.csv").write_text("epoch\n1\n")
    (out / "notes.txt").write_text("mine")
    argv = ["train", "--data", str(tmp_path / "typo.csv"), "--out", str(out), "--overwrite"]
    assert main(argv) == 2
    assert (out / "history.csv").is_file()  # the data error came before any deletion
    from emotion_edge.train.run_folder import prepare_run_dir

    prepare_run_dir(out, resume=False, overwrite=True)
    assert not (out / "history.csv").exists() and (out / "notes.txt").read_text() == "mine"


def test_bad_options_are_clear(tiny_csv, tmp_path, capsys):
    assert main(["train", "--data", str(tiny_csv), "--model", "nope", "--out",
                 str(tmp_path / "r")]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "absent.csv"), "--out",
                 str(tmp_path / "r2"), "--epochs", "1"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["train", "--data", str(tiny_csv), "--out", str(tmp_path / "r3"),
                 "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main(["train", "--data", str(tiny_csv), "--out", str(tmp_path / "r4"),
                 "--ferplus", str(tiny_csv), "--limit", "10"]) == 2
    assert "--ferplus needs the full training split" in capsys.readouterr().err
