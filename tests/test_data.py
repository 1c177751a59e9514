"""FER2013 CSV, FER+ and image-folder loading, with their errors."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from emotion_edge.runtime.errors import DataError
from emotion_edge.runtime.labels import FER2013_LABELS, FERPLUS_LABELS, canonical_label
from emotion_edge.data.datasets import load_fer2013, load_ferplus, load_image_folder, load_split
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
