"""Distillation, the FER+ vote task and mixed-precision training, briefly, on tiny data."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("keras")

from emotion_edge.runtime import load_predictor  # noqa: E402
from emotion_edge.runtime.errors import ConfigError  # noqa: E402
from emotion_edge.runtime.labels import FERPLUS_LABELS  # noqa: E402
from emotion_edge.runtime.sidecar import read_sidecar  # noqa: E402
from emotion_edge.train.distill import CACHE_NAME, soften  # noqa: E402

from emotion_edge.cli import main  # noqa: E402

TINY = ["--model", "vgg_s2", "--batch-size", "14", "--model-arg", "widths=[8,16,32]",
        "--model-arg", "dense=16"]


def test_soften_by_temperature():
    p = np.array([[0.7, 0.2, 0.1]], np.float32)
    np.testing.assert_allclose(soften(p, 1.0), p, rtol=1e-6)
    # T = 2 takes square roots before renormalising
    root = np.sqrt(p) / np.sqrt(p).sum()
    np.testing.assert_allclose(soften(p, 2.0), root, rtol=1e-6)
    assert soften(p, 1e6)[0].std() < 1e-5  # very hot: even


def write_tiny_ferplus(path, fer_csv, seed=0):
    """A FER+ vote file paired line by line with a tiny FER2013 CSV: votes lean to the
    FER2013 label, one row is not a face, one has no image name."""
    rng = np.random.default_rng(seed)
    to_ferplus = [4, 5, 6, 1, 3, 2, 0]  # FER2013 index -> FER+ vote column
    rows = fer_csv.read_text().splitlines()[1:]
    lines = ["Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,"
             "unknown,NF"]
    for i, row in enumerate(rows):
        label, _, usage = row.split(",")
        votes = rng.integers(0, 2, 10)
        votes[8:] = 0
        votes[to_ferplus[int(label)]] = 7
        if i % 5 == 0:
            votes[7] = 8  # contempt wins
        name = "" if i == 3 else f"fer{i:07d}.png"
        if i == 4:
            votes[:] = 0
            votes[9] = 10  # not a face
        lines.append(f"{usage},{name}," + ",".join(map(str, votes)))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    from conftest import write_tiny_csv

    tmp = tmp_path_factory.mktemp("teacher")
    csv = write_tiny_csv(tmp / "tiny.csv")
    out = tmp / "teacher"
    assert main(["train", "--data", str(csv), "--out", str(out), "--epochs", "2",
                 "--cache-dir", str(tmp / "cache"), *TINY]) == 0
    return csv, out


def test_student_learns_from_precomputed_teacher_outputs(teacher_run, tmp_path):
    from emotion_edge.data.datasets import load_fer2013
    from emotion_edge.runtime.preprocess import prepare_batch

    csv, teacher_dir = teacher_run
    teacher = teacher_dir / "model.keras"
    out = tmp_path / "student"
    assert main(["train", "--data", str(csv), "--out", str(out), "--epochs", "1",
                 "--cache-dir", str(tmp_path / "cache"), "--teacher", str(teacher),
                 "--distill-weight", "0.6", "--distill-temperature", "3", *TINY]) == 0
    # the cached teacher outputs are the teacher's own, averaged with the mirror image's
    x = load_fer2013(csv, tmp_path / "cache")["train"].x
    with load_predictor(teacher) as p:
        direct = (p.predict(prepare_batch(list(x), p.input_spec))
                  + p.predict(prepare_batch(list(x[:, :, ::-1]), p.input_spec))) / 2
    with np.load(out / CACHE_NAME) as cache:
        np.testing.assert_allclose(cache["probs"], direct, atol=1e-5)
    training = read_sidecar(out / "model.keras")["training"]
    config = training["config"]
    assert config["teacher"] == str(teacher) and config["distill_weight"] == 0.6
    # the sidecar records which teacher file it was, by its sha256
    from emotion_edge.runtime.sidecar import sha256_of
    assert training["inputs_sha256"] == {"teacher": {str(teacher): sha256_of(teacher)}}


def test_resume_refuses_a_replaced_teacher(teacher_run, tmp_path, capsys):
    """A teacher replaced while a run is paused would change its targets half way."""
    import shutil

    from emotion_edge.train.checkpoint import main as checkpoint_main

    csv, teacher_dir = teacher_run
    teacher = tmp_path / "teacher.keras"
    shutil.copy(teacher_dir / "model.keras", teacher)
    shutil.copy(teacher_dir / "model.keras.json", tmp_path / "teacher.keras.json")
    out = tmp_path / "student"
    args = ["train", "--data", str(csv), "--out", str(out), "--cache-dir",
            str(tmp_path / "cache"), "--teacher", str(teacher), *TINY]
    assert main([*args, "--epochs", "1"]) == 0
    recorded = json.loads((out / "inputs.json").read_text())
    pack = tmp_path / "run.zip"
    assert checkpoint_main(["pack", str(out), str(pack)]) == 0
    assert checkpoint_main(["unpack", str(pack), str(tmp_path / "restored")]) == 0
    assert json.loads((tmp_path / "restored" / "inputs.json").read_text()) == recorded

    teacher.write_bytes(teacher.read_bytes() + b"changed")  # another file, same path
    capsys.readouterr()
    assert main([*args, "--epochs", "2", "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"--teacher {teacher} is not the file this run started from" in err
    assert len((out / "history.csv").read_text().splitlines()) == 1 + 1  # not trained on
    teacher.unlink()  # a missing teacher is named, not a traceback
    assert main([*args, "--epochs", "2", "--resume"]) == 2
    assert f"--teacher {teacher}: no such model file" in capsys.readouterr().err
    fresh = tmp_path / "fresh"  # and a new run with it touches nothing
    assert main([*args[:4], str(fresh), *args[5:], "--epochs", "1"]) == 2
    assert f"--teacher {teacher}: no such model file" in capsys.readouterr().err
    assert not fresh.exists()
    shutil.copy(teacher_dir / "model.keras", teacher)  # put back: the resume goes on
    assert main([*args, "--epochs", "2", "--resume"]) == 0
    assert len((out / "history.csv").read_text().splitlines()) == 1 + 2


def test_an_ensemble_teacher_averages_its_members(teacher_run, tmp_path):
    from emotion_edge.data.datasets import load_fer2013
    from emotion_edge.runtime.bundled import models_dir
    from emotion_edge.train.distill import teacher_probabilities, teacher_targets

    other = models_dir() / "default.keras"
    if not other.is_file():
        pytest.skip(f"no bundled model at {other} to be the second member")
    csv, teacher_dir = teacher_run
    x = load_fer2013(csv, tmp_path / "cache")["train"].x
    labels = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    members = [str(teacher_dir / "model.keras"), str(other)]
    each = [teacher_probabilities(m, x, labels) for m in members]
    assert np.abs(each[0] - each[1]).max() > 0.05  # the members disagree: the mean is news
    ensemble = teacher_targets(members, x, labels, tmp_path, 1.0)
    np.testing.assert_allclose(ensemble, (each[0] + each[1]) / 2, atol=1e-5)
    # the cache is keyed on every member: one member alone is not served the ensemble's
    alone = teacher_targets(members[0], x, labels, tmp_path, 1.0)
    np.testing.assert_allclose(alone, each[0], atol=1e-5)


def test_student_targets_mix_labels_and_teacher(teacher_run, tmp_path):
    from emotion_edge.data.datasets import load_fer2013
    from emotion_edge.train.config import TrainConfig
    from emotion_edge.train.distill import teacher_targets
    from emotion_edge.train.targets import training_targets

    csv, teacher_dir = teacher_run
    splits = load_fer2013(csv, tmp_path / "cache")
    cfg = TrainConfig(data=str(csv), out=str(tmp_path), teacher=str(teacher_dir / "model.keras"),
                      distill_weight=0.25, distill_temperature=2.0)
    targets, views = training_targets(cfg, splits, splits["train"], tmp_path)
    assert views is None
    soft = teacher_targets(cfg.teacher, splits["train"].x, splits["train"].labels, tmp_path, 2.0)
    onehot = np.eye(7, dtype=np.float32)[splits["train"].y]
    np.testing.assert_allclose(targets, 0.75 * onehot + 0.25 * soft, atol=1e-6)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-5)


def test_consistent_teaching_scores_every_view(teacher_run, tmp_path):
    """--teacher-views: the teacher's part of each view's targets is its own score of that
    view (with its mirror image), not of the clean image."""
    from emotion_edge.data.datasets import load_fer2013
    from emotion_edge.train.config import TrainConfig
    from emotion_edge.train.distill import VIEWS_NAME, teacher_probabilities
    from emotion_edge.train.targets import training_targets

    csv, teacher_dir = teacher_run
    splits = load_fer2013(csv, tmp_path / "cache")
    train = splits["train"]
    teacher = str(teacher_dir / "model.keras")
    cfg = TrainConfig(data=str(csv), out=str(tmp_path), teacher=teacher, distill_weight=0.25,
                      distill_temperature=1.0, teacher_views=3)
    targets, views = training_targets(cfg, splits, train, tmp_path)
    assert views.shape == (3, *train.x.shape) and targets.shape == (3, len(train.x), 7)
    np.testing.assert_array_equal(views[0], train.x)  # view 0 is the image itself
    for v in (1, 2):  # the others are augmented, each differently
        assert np.abs(views[v].astype(int) - train.x).mean() > 5
    assert np.abs(views[1].astype(int) - views[2]).mean() > 5
    # seeded: a resume on a fresh machine (the cache is not in the checkpoint) makes them again
    from emotion_edge.train.distill import make_views
    np.testing.assert_array_equal(make_views(train.x, 3, cfg.seed), views)
    assert not np.array_equal(make_views(train.x, 3, cfg.seed + 1), views)
    onehot = np.eye(7, dtype=np.float32)[train.y]
    scored = [teacher_probabilities(teacher, view, train.labels) for view in views]
    for v in range(3):
        np.testing.assert_allclose(targets[v], 0.75 * onehot + 0.25 * scored[v], atol=1e-5)
    assert np.abs(scored[1] - scored[0]).max() > 1e-3  # the views' scores are news
    # cached: a second call is served the same views, a different count is not
    again, views_again = training_targets(cfg, splits, train, tmp_path)
    np.testing.assert_array_equal(views_again, views)
    np.testing.assert_allclose(again, targets, atol=1e-6)
    with np.load(tmp_path / VIEWS_NAME) as cache:
        assert cache["views"].shape[0] == 3
    cfg.teacher_views = 2
    fewer, two = training_targets(cfg, splits, train, tmp_path)
    assert two.shape[0] == 2 and fewer.shape[0] == 2
    # a run trains on them, and its sidecar says how it was taught
    out = tmp_path / "student"
    assert main(["train", "--data", str(csv), "--out", str(out), "--epochs", "1",
                 "--cache-dir", str(tmp_path / "cache"), "--teacher", teacher,
                 "--teacher-views", "2", *TINY]) == 0
    assert read_sidecar(out / "model.keras")["training"]["config"]["teacher_views"] == 2
    with np.load(out / VIEWS_NAME) as cache:
        assert cache["probs"].shape == (2, len(train.x), 7)


def test_view_batches_pair_each_view_with_its_own_targets():
    from emotion_edge.train.augment import AugmentConfig, training_dataset

    rng = np.random.default_rng(0)
    k, n, c = 3, 12, 4
    views = rng.integers(0, 256, (k, n, 6, 6), dtype=np.uint8)
    targets = rng.random((k, n, c)).astype(np.float32)
    y = np.arange(n) % c
    ds = training_dataset(views[0], targets, y, batch_size=8, steps=1, balance_power=1.0,
                          augment=AugmentConfig(), seed=0, scale=1 / 255, offset=0.0,
                          views=views)
    seen = set()
    for images, t in ds.take(30):
        for image, row in zip(images.numpy()[..., 0], t.numpy(), strict=True):
            pixels = np.rint(image * 255).astype(np.uint8)
            match = [(v, i, m) for v in range(k) for i in range(n) for m in (0, 1)
                     if np.array_equal(views[v, i][:, ::-1] if m else views[v, i], pixels)]
            assert len(match) == 1, "a batch image is a view, as is or mirrored, unchanged"
            v, i, mirrored = match[0]
            np.testing.assert_allclose(row, targets[v, i])
            seen.add((v, mirrored))
    assert seen == {(v, m) for v in range(k) for m in (0, 1)}  # every view, both ways


@pytest.mark.parametrize("extra, message", [
    (["--teacher-views", "3"], "--teacher-views needs a --teacher"),
    (["--teacher-views", "1", "--teacher", "T"], "at least 2 views"),
    (["--teacher-views", "3", "--teacher", "T", "--no-augment"], "--no-augment"),
])
def test_teacher_views_are_checked(teacher_run, tmp_path, capsys, extra, message):
    csv, teacher_dir = teacher_run
    extra = [str(teacher_dir / "model.keras") if a == "T" else a for a in extra]
    out = tmp_path / "s"
    assert main(["train", "--data", str(csv), "--out", str(out), "--epochs", "1",
                 *extra, *TINY]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_teacher_with_other_labels_is_refused(teacher_run, tmp_path, capsys):
    csv, _ = teacher_run
    ferplus = write_tiny_ferplus(tmp_path / "votes.csv", csv)
    assert main(["train", "--data", str(csv), "--out", str(tmp_path / "s"), "--epochs", "1",
                 "--task", "ferplus", "--ferplus", str(ferplus), "--teacher",
                 str(teacher_run[1] / "model.keras"), *TINY]) == 2
    assert "the student learns" in capsys.readouterr().err


def test_ferplus_task_learns_eight_classes_from_votes(teacher_run, tmp_path):
    csv, _ = teacher_run
    ferplus = write_tiny_ferplus(tmp_path / "votes.csv", csv)
    out = tmp_path / "ferplus"
    assert main(["train", "--data", str(csv), "--out", str(out), "--epochs", "1",
                 "--task", "ferplus", "--ferplus", str(ferplus), "--balance-power", "1",
                 "--precision", "mixed_bfloat16", *TINY]) == 0
    sidecar = read_sidecar(out / "model.keras")
    assert tuple(sidecar["labels"]) == FERPLUS_LABELS
    metrics = json.loads((out / "metrics.json").read_text())
    # PublicTest rows 42..55 of the file; row 4 (not a face) and 3 (no name) are in Training
    assert metrics["publictest"]["images"] == 14
    with load_predictor(out / "model.keras") as p:
        probs = p.predict(np.random.default_rng(0).random((3, 48, 48, 1), np.float32))
    assert probs.shape == (3, 8)


def test_mixed_precision_run_saves_float32_weights(teacher_run, tmp_path):
    import keras

    csv, _ = teacher_run
    out = tmp_path / "bf16"
    assert main(["train", "--data", str(csv), "--out", str(out), "--epochs", "1",
                 "--precision", "mixed_bfloat16", "--optimizer", "sgd", "--lr", "0.01",
                 "--no-prior-correction", *TINY]) == 0
    keras.mixed_precision.set_global_policy("float32")
    model = keras.models.load_model(out / "model.keras", compile=False)
    assert {w.dtype for w in model.weights} == {"float32"}
    assert all(layer.dtype_policy.name == "float32" for layer in model.layers)
    best = keras.models.load_model(out / "best.keras", compile=False)
    x = np.random.default_rng(1).random((4, 48, 48, 1)).astype("float32")
    # the same weights: the float32 model matches the bfloat16 one to bfloat16's precision
    assert best.get_layer("logits").compute_dtype == "float32"
    assert any(layer.compute_dtype == "bfloat16" for layer in best.layers)
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(best(x), np.float32), atol=3e-2)
    np.testing.assert_array_equal(model.get_layer("logits").get_weights()[0],
                                  best.get_layer("logits").get_weights()[0])


def test_checkpoint_pack_unpack_resumes(teacher_run, tmp_path):
    import keras
    from emotion_edge.train.checkpoint import main as checkpoint_main

    csv, run = teacher_run
    pack = tmp_path / "ckpt" / "run.zip"
    assert checkpoint_main(["pack", str(run), str(pack)]) == 0
    restored = tmp_path / "restored"
    assert checkpoint_main(["unpack", str(pack), str(restored)]) == 0
    assert (restored / "last.keras").read_bytes() == (run / "last.keras").read_bytes()
    assert (restored / "history.csv").read_text() == (run / "history.csv").read_text()
    original = keras.models.load_model(run / "best.keras", compile=False).get_weights()
    copied = keras.models.load_model(restored / "best.keras", compile=False).get_weights()
    for a, b in zip(original, copied, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-4)  # float16 copy
    assert checkpoint_main(["unpack", str(pack), str(restored)]) == 2  # never over a run
    assert main(["train", "--data", str(csv), "--out", str(restored), "--epochs", "3",
                 "--resume", "--cache-dir", str(tmp_path / "cache"), *TINY]) == 0
    assert len((restored / "history.csv").read_text().splitlines()) == 1 + 3


def test_evaluate_against_ferplus_majority_labels(teacher_run, tmp_path):
    from emotion_edge.data.datasets import load_ferplus
    from emotion_edge.runtime.labels import FER2013_LABELS

    csv, run = teacher_run
    votes = write_tiny_ferplus(tmp_path / "votes.csv", csv)
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(run / "model.keras"), "--data", str(csv), "--ferplus",
                 str(votes), "--split", "test", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    test = load_ferplus(csv, votes)["test"]
    names = np.asarray(FERPLUS_LABELS)[test.y]
    known = names != "contempt"
    y = np.asarray([FER2013_LABELS.index(n) for n in names[known]])
    with load_predictor(run / "model.keras") as p:
        pred = p.predict_batch(test.x[known]).argmax(1)
    assert report["images_scored"] == int(known.sum()) > 0
    assert report["skipped"]["label not known to the model"] == int((~known).sum()) > 0
    assert report["accuracy"] == pytest.approx(float((pred == y).mean()))


def test_warm_start_copies_the_backbone_and_starts_a_new_head(teacher_run, tmp_path):
    import keras
    from emotion_edge.train.models import build_model
    from emotion_edge.train.warm_start import copy_weights

    teacher = teacher_run[1] / "model.keras"
    source = keras.models.load_model(teacher, compile=False)
    student = build_model("vgg_s2", num_classes=8, widths=(8, 16, 32), dense=16)
    fresh_head = student.get_layer("logits").get_weights()[0].copy()
    copied = copy_weights(str(teacher), student)
    with_weights = [layer for layer in student.layers if layer.weights]
    assert copied == len(with_weights) - 1  # all but the 8-class head
    theirs_all = [layer for layer in source.layers if layer.weights]
    for mine, theirs in zip(with_weights, theirs_all, strict=True):
        if mine.name == "logits":
            continue
        for a, b in zip(mine.get_weights(), theirs.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(student.get_layer("logits").get_weights()[0], fresh_head)
    # another architecture is refused by name, not copied in part
    other = build_model("vgg_s2", num_classes=8, widths=(8, 16, 32, 64), depths=(2, 2, 2, 2),
                        dense=16)
    with pytest.raises(ConfigError, match="same architecture"):
        copy_weights(str(teacher), other)


def test_ferplus_run_warm_started_from_a_7_class_model(teacher_run, tmp_path, capsys):
    csv, teacher_dir = teacher_run
    ferplus = write_tiny_ferplus(tmp_path / "votes.csv", csv)
    out = tmp_path / "warm"
    args = ["train", "--data", str(csv), "--out", str(out), "--epochs", "1", "--task",
            "ferplus", "--ferplus", str(ferplus), "--cache-dir", str(tmp_path / "cache"), *TINY]
    assert main([*args, "--init-from", str(tmp_path / "missing.keras")]) == 2
    assert "--init-from" in capsys.readouterr().err and not out.exists()
    assert main([*args, "--init-from", str(teacher_dir / "model.keras")]) == 0
    config = read_sidecar(out / "model.keras")["training"]["config"]
    assert config["init_from"] == str(teacher_dir / "model.keras")
    # one short epoch moves the copied stem only a little: it still matches the teacher's
    import keras

    def stem(path):
        model = keras.models.load_model(path, compile=False)
        return next(layer for layer in model.layers if layer.weights).get_weights()[0].ravel()

    assert np.corrcoef(stem(out / "model.keras"), stem(teacher_dir / "model.keras"))[0, 1] > 0.9


def test_init_from_takes_a_bundled_name_or_names_the_bundled_ones():
    from emotion_edge.runtime.bundled import models_dir
    from emotion_edge.train.warm_start import source_path

    assert source_path("default") == models_dir() / "default.keras"
    assert source_path("accurate.keras") == models_dir() / "accurate.keras"
    with pytest.raises(ConfigError, match=r"--init-from nosuch: .*bundled: .*default"):
        source_path("nosuch")
    with pytest.raises(ConfigError, match="no such .keras file"):
        source_path("some/dir/missing.keras")


def test_ema_run_scores_and_keeps_the_averaged_weights(teacher_run, tmp_path):
    import keras
    from emotion_edge.data.datasets import load_fer2013

    csv, _ = teacher_run
    out = tmp_path / "ema"
    args = ["train", "--data", str(csv), "--out", str(out), "--epochs", "1", "--ema", "0.6",
            "--lr", "0.01", "--no-prior-correction", "--cache-dir", str(tmp_path / "c"), *TINY]
    assert main(args) == 0
    last = keras.models.load_model(out / "last.keras")  # trained weights and the optimizer
    best = keras.models.load_model(out / "best.keras", compile=False)
    averages = [v.numpy() for v in last.optimizer._model_variables_moving_average]
    trained = [w.numpy() for w in last.trainable_weights]
    saved = [w.numpy() for w in best.trainable_weights]
    # the best checkpoint holds the averages, which differ from the trained weights
    assert max(np.abs(a - t).max() for a, t in zip(averages, trained, strict=True)) > 1e-3
    for a, s in zip(averages, saved, strict=True):
        np.testing.assert_allclose(s, a, atol=1e-6)
    # and PublicTest's recorded accuracy is that of the averaged weights
    val = load_fer2013(csv, tmp_path / "c")["val"]
    probs = best.predict_on_batch(val.x[..., None].astype("float32") / 255.0)
    history = (out / "history.csv").read_text().splitlines()
    recorded = float(history[1].split(",")[history[0].split(",").index("val_accuracy")])
    assert recorded == pytest.approx(float((probs.argmax(1) == val.y).mean()), abs=1e-6)
    assert main([*args[:6], "2", *args[7:], "--resume"]) == 0  # resumes with its averages
    assert len((out / "history.csv").read_text().splitlines()) == 1 + 2


def test_ema_momentum_out_of_range_is_refused(teacher_run, tmp_path, capsys):
    csv, _ = teacher_run
    assert main(["train", "--data", str(csv), "--out", str(tmp_path / "x"), "--ema", "1.0",
                 *TINY]) == 2
    assert "--ema must lie in [0, 1)" in capsys.readouterr().err
