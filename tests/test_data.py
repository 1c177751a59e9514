"""FER2013 CSV, FER+ and image-folder loading, with their errors."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest
from emotion_edge.data.datasets import load_fer2013, load_ferplus, load_image_folder, load_split
from emotion_edge.runtime.errors import DataError
from emotion_edge.runtime.labels import FER2013_LABELS, FERPLUS_LABELS, canonical_label
from PIL import Image


def test_tiny_csv_splits_and_labels(tiny_csv, tmp_path):
    splits = load_fer2013(tiny_csv, cache_dir=tmp_path / "cache")
    assert {k: len(v) for k, v in splits.items()} == {"train": 42, "val": 14, "test": 14}
    train = splits["train"]
    assert train.x.shape == (42, 48, 48) and train.x.dtype == np.uint8
    assert train.labels == FER2013_LABELS
    assert train.class_counts().tolist() == [6] * 7


def test_gzip_and_cache_agree(tiny_csv, tmp_path):
    gz = tmp_path / "tiny.csv.gz"
    gz.write_bytes(gzip.compress(tiny_csv.read_bytes()))
    cache = tmp_path / "cache"
    first = load_fer2013(gz, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 1
    second = load_fer2013(gz, cache_dir=cache)  # from the cache
    plain = load_fer2013(tiny_csv, use_cache=False)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(first[split].x, second[split].x)
        np.testing.assert_array_equal(first[split].x, plain[split].x)
        np.testing.assert_array_equal(first[split].y, plain[split].y)


def _rewrite_row(csv_path, row: int, new_line: str):
    lines = csv_path.read_text().splitlines()
    lines[row] = new_line
    csv_path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("line, message", [
    ("3,1 2 3,Training", "found 3"),
    ("3," + " ".join(["300"] * 2304) + ",Training", "0-255"),
    ("3," + " ".join(["x"] * 2304) + ",Training", "not an integer"),
    ("9," + " ".join(["1"] * 2304) + ",Training", "unknown emotion label '9'"),
    ("3," + " ".join(["1"] * 2304) + ",Holdout", "unknown Usage 'Holdout'"),
])
def test_bad_rows_name_file_and_line(tiny_csv, line, message):
    _rewrite_row(tiny_csv, 5, line)
    with pytest.raises(DataError, match=message) as err:
        load_fer2013(tiny_csv, use_cache=False)
    assert f"{tiny_csv}, line 6" in str(err.value)


def test_missing_column_and_missing_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("label,pixels\n1,2\n")
    with pytest.raises(DataError, match="missing column.*emotion"):
        load_fer2013(bad, use_cache=False)
    with pytest.raises(DataError, match="no such file"):
        load_fer2013(tmp_path / "absent.csv")


def _write_folder(root, names_counts, size=(60, 60), mode="RGB"):
    rng = np.random.default_rng(0)
    for name, count in names_counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            arr = rng.integers(0, 255, (size[1], size[0], 3 if mode == "RGB" else 1), np.uint8)
            Image.fromarray(arr.squeeze()).convert(mode).save(root / name / f"{i}.png")


def test_image_folder_maps_spellings_and_skips_unknown(tmp_path):
    root = tmp_path / "faces"
    _write_folder(root / "test", {"happiness": 3, "Surprised": 2, "anger": 1, "contempt": 4})
    _write_folder(root / "train", {"happy": 1})
    (root / "test" / "anger" / "broken.jpg").write_bytes(b"not really a jpeg")
    split = load_image_folder(root, "test")
    assert split.x.shape == (6, 48, 48)
    counts = dict(zip(split.labels, split.class_counts().tolist(), strict=True))
    assert counts["happy"] == 3 and counts["surprise"] == 2 and counts["angry"] == 1
    assert split.skipped == {"label not known to the model: contempt": 4, "unreadable image": 1}
    # an 8-class model knows contempt
    assert len(load_image_folder(root, "test", labels=FERPLUS_LABELS)) == 10
    assert len(load_split(root, "train")) == 1


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_image_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no label folders"):
        load_image_folder(tmp_path / "empty")


def test_label_spellings():
    assert canonical_label("Happiness") == "happy"
    assert canonical_label("fearful") == "fear"
    assert canonical_label("sadness") == "sad"
    assert canonical_label("cat") is None


def test_ferplus_majority_and_soft_labels(fer_csv, ferplus_csv):
    splits = load_ferplus(fer_csv, ferplus_csv)
    train = splits["train"]
    assert train.labels == FERPLUS_LABELS
    assert train.soft.shape == (len(train), 8)
    np.testing.assert_allclose(train.soft.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(train.soft.argmax(axis=1), train.y)
    # the 173 rows without an image are among those dropped
    total = sum(len(s) for s in splits.values())
    dropped = sum(next(iter(s.skipped.values())) for s in splits.values())
    assert total + dropped == 35887 and dropped >= 173


def test_ferplus_clear_majority_is_the_authors_rule():
    from emotion_edge.data.datasets import ferplus_clear_majority

    votes = np.array([
        # neutral happy surprise sad anger disgust fear contempt unknown NF
        [6, 4, 0, 0, 0, 0, 0, 0, 0, 0],   # 6 of 10: clear
        [5, 3, 2, 0, 0, 0, 0, 0, 0, 0],   # 5 of 10 is not more than half
        [4, 1, 1, 1, 1, 1, 1, 0, 0, 0],   # single votes are outliers: 4 of 4
        [4, 2, 1, 1, 1, 1, 0, 0, 0, 0],   # 4 of 6
        [3, 2, 2, 0, 0, 0, 0, 0, 1, 0],   # 3 of 7
        [0, 0, 0, 0, 0, 0, 0, 0, 2, 8],   # not a face
        [3, 0, 0, 0, 0, 0, 0, 0, 3, 0],   # tie with unknown: 3 of 6
        [0, 0, 0, 0, 0, 0, 0, 5, 2, 2],   # contempt, 5 of 9
    ])
    assert ferplus_clear_majority(votes).tolist() == [True, False, True, True, False, False,
                                                      False, True]


def test_ferplus_scores_on_clear_majorities_and_trains_on_every_emotion_row(tmp_path):
    from conftest import write_tiny_csv
    from test_distill import write_tiny_ferplus

    fer = write_tiny_csv(tmp_path / "tiny.csv")
    votes = write_tiny_ferplus(tmp_path / "votes.csv", fer)
    lines = votes.read_text().splitlines()
    head = {i: lines[1 + i].rsplit(",", 10)[0] for i in (1, 43, 57)}
    lines[1 + 1] = head[1] + ",4,3,3,0,0,0,0,0,0,0"  # Training: a plurality, no majority
    lines[1 + 43] = head[43] + ",4,3,3,0,0,0,0,0,0,0"  # PublicTest, the same votes
    lines[1 + 57] = head[57] + ",1,1,1,1,4,1,1,0,0,0"  # PrivateTest: anger, once outliers go
    votes.write_text("\n".join(lines) + "\n")
    splits = load_ferplus(fer, votes)
    plain = load_ferplus(fer, write_tiny_ferplus(tmp_path / "plain.csv", fer))
    # row 3 (no image name) and row 4 (not a face) are training rows; row 1 stays in training
    assert len(splits["train"]) == len(plain["train"]) == 40
    assert len(splits["val"]) == len(plain["val"]) - 1 == 13
    assert len(splits["test"]) == len(plain["test"]) == 14
    assert splits["test"].y[0] == FERPLUS_LABELS.index("angry")
    assert splits["val"].skipped == {"dropped (no clear majority: not a face, unknown, or no "
                                     "emotion over half the votes)": 1}


def test_ferplus_test_split_has_the_authors_row_count(fer_csv, ferplus_csv):
    # the FER+ authors' majority rule keeps 3,153 PrivateTest rows of fer2013new.csv
    splits = load_ferplus(fer_csv, ferplus_csv)
    assert (len(splits["val"]), len(splits["test"])) == (3199, 3153)
    assert len(splits["train"]) == 26940


def test_ferplus_soft_targets_for_a_seven_class_model(fer_csv, ferplus_csv):
    from emotion_edge.data.datasets import ferplus_soft_targets

    fer = load_fer2013(fer_csv)
    targets = ferplus_soft_targets(ferplus_csv, fer)
    soft, has_votes = targets["train"]
    assert soft.shape == (len(fer["train"]), 7) and has_votes.dtype == bool
    assert 0.9 * len(soft) < has_votes.sum() < len(soft)
    np.testing.assert_allclose(soft[has_votes].sum(axis=1), 1.0, rtol=1e-5)
    # joined by line position, the FER+ majority agrees with FER2013 on about 63% of rows
    agreement = (soft[has_votes].argmax(axis=1) == fer["train"].y[has_votes]).mean()
    assert 0.55 < agreement < 0.75


def test_pixel_values_do_not_wrap(tiny_csv):
    _rewrite_row(tiny_csv, 5, "3," + " ".join(["4294967301"] * 2304) + ",Training")
    with pytest.raises(DataError, match="0-255, found 4294967301"):
        load_fer2013(tiny_csv, use_cache=False)


@pytest.mark.parametrize("position", [10, 11, 12, 100, -5])
def test_bit_flipped_gzip_is_a_data_error(tiny_csv, tmp_path, position):
    raw = bytearray(gzip.compress(tiny_csv.read_bytes()))
    raw[position] ^= 0xFF
    gz = tmp_path / "flipped.csv.gz"
    gz.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="flipped.csv.gz"):
        load_fer2013(gz, use_cache=False)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong shapes", "labels out of range"])
def test_bad_cache_is_deleted_and_rebuilt(tiny_csv, tmp_path, caplog, damage):
    cache = tmp_path / "cache"
    expected = load_fer2013(tiny_csv, cache_dir=cache)
    (cached,) = cache.glob("*.npz")
    if damage == "truncate":
        cached.write_bytes(cached.read_bytes()[:300])
    elif damage == "garbage":
        cached.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    else:
        arrays = dict(np.load(cached))
        if damage == "wrong shapes":
            arrays["train_x"] = np.zeros((42, 24, 96), np.uint8)
        else:
            arrays["test_y"] = arrays["test_y"] + 7
        np.savez(cached, **arrays)
    again = load_fer2013(tiny_csv, cache_dir=cache)
    assert "deleting the unusable cache" in caplog.text
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(again[split].x, expected[split].x)
        np.testing.assert_array_equal(again[split].y, expected[split].y)
    caplog.clear()
    load_fer2013(tiny_csv, cache_dir=cache)  # the rebuilt cache is good
    assert "unusable" not in caplog.text


def test_unreadable_files_are_data_errors(tiny_csv, tmp_path):

    with pytest.raises(DataError, match="cannot open"):
        load_split(tmp_path / ("x" * 300 + ".csv"))
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        load_fer2013(fifo)
    if os.geteuid() != 0:  # root reads anything
        tiny_csv.chmod(0)
        with pytest.raises(DataError, match="cannot read"):
            load_fer2013(tiny_csv, cache_dir=tmp_path / "cache")


def test_empty_split_is_a_data_error(tmp_path):
    from conftest import write_tiny_csv

    csv_path = write_tiny_csv(tmp_path / "no_test.csv", rows_per_split=(14, 7, 0))
    with pytest.raises(DataError, match="'test' split has no rows"):
        load_split(csv_path, "test", cache_dir=tmp_path / "cache")


def test_image_folder_counts_pipes_and_unreadable_folders(tmp_path):

    root = tmp_path / "faces"
    _write_folder(root, {"happy": 2, "sad": 1})
    os.mkfifo(root / "happy" / "pipe.png")
    (root / "sad" / "locked").mkdir()
    (root / "sad" / "locked" / "x.png").write_bytes((root / "sad" / "0.png").read_bytes())
    os.chmod(root / "sad" / "locked", 0)
    try:
        split = load_image_folder(root)
    finally:
        os.chmod(root / "sad" / "locked", 0o755)
    assert split.skipped["not a regular file"] == 1
    if os.geteuid() != 0:
        assert split.skipped["unreadable folder"] == 1 and len(split) == 3
    else:  # root lists the folder anyway
        assert "unreadable folder" not in split.skipped and len(split) == 4
