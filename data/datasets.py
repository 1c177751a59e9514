"""Data sets: FER2013 (Kaggle CSV), FER+ crowd labels, and image folders.

Everything here needs only NumPy and Pillow, so benchmarks and evaluation can use it
without TensorFlow. Images come out as ``uint8`` arrays ``(N, H, W)`` (gray) or
``(N, H, W, 3)``; labels as ``int64`` indices into a label tuple.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import logging
import os
import warnings
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..runtime.errors import BadImageError, DataError
from ..runtime.image import IMAGE_SUFFIXES, read_image, resize, to_gray
from ..runtime.labels import FER2013_LABELS, FERPLUS_LABELS, canonical_label
from ..runtime.sidecar import sha256_of

log = logging.getLogger(__name__)

FER_SIZE = 48
FER_PIXELS = FER_SIZE * FER_SIZE
#: FER2013's ``Usage`` values and the split names we use for them.
USAGE_TO_SPLIT = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "publictest": "val",
    "test": "test", "privatetest": "test",
}
FER_EXPECTED = "the Kaggle fer2013.csv or .csv.gz"
FERPLUS_VOTE_COLUMNS = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
)


@dataclass
class Split:
    """One split of a data set: images, hard labels and (optionally) soft labels."""

    x: np.ndarray
    y: np.ndarray
    labels: tuple[str, ...]
    soft: np.ndarray | None = None
    skipped: dict[str, int] = field(default_factory=dict)
    source: str = ""

    def __len__(self) -> int:
        return len(self.y)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.y, minlength=len(self.labels))


def canonical_split(name: str) -> str:
    key = name.strip().lower()
    if key not in SPLIT_ALIASES:
        raise DataError(f"unknown split {name!r}; use one of: train, val (PublicTest), "
                        "test (PrivateTest)")
    return SPLIT_ALIASES[key]


def default_cache_dir() -> Path:
    env = os.environ.get("EMOTION_EDGE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "emotion-edge"


def _open_text(path: Path):
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _parse_pixels(text: str, where: str) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            values = np.fromstring(text, dtype=np.int64, sep=" ")  # saturates, never wraps
    except (ValueError, DeprecationWarning):
        raise DataError(f"{where}: pixels must be {FER_PIXELS} space-separated integers 0-255; "
                        "found text that is not an integer") from None
    if values.size != FER_PIXELS:
        raise DataError(f"{where}: pixels must be {FER_PIXELS} integers 0-255, found {values.size}")
    if values.min() < 0 or values.max() > 255:
        raise DataError(f"{where}: pixel values must lie in 0-255, found "
                        f"{values.min()}..{values.max()}")
    return values.astype(np.uint8)


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError as exc:  # a name too long for the file system, say
        raise DataError(f"{path}: cannot open ({exc.strerror or exc})") from None


def _check_data_file(path: Path, expected: str) -> None:
    """Refuse a missing path, a folder, or a pipe/device (reading one would block)."""
    try:
        exists, regular = path.exists(), path.is_file()
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc.strerror or exc})") from None
    if not exists:
        raise DataError(f"{path}: no such file (expected {expected})")
    if not regular:
        raise DataError(f"{path}: not a regular file (expected {expected})")


def parse_fer2013_csv(path: str | os.PathLike) -> dict[str, Split]:
    """Parse the Kaggle ``fer2013.csv`` (plain or ``.gz``) into train/val/test splits."""
    path = Path(path)
    _check_data_file(path, FER_EXPECTED)
    images: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    labels: dict[str, list[int]] = {s: [] for s in SPLITS}
    try:
        with _open_text(path) as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            missing = [c for c in ("emotion", "pixels", "Usage") if c not in header]
            if missing:
                raise DataError(f"{path}: missing column(s) {', '.join(missing)}; "
                                f"found {header!r}, expected emotion,pixels,Usage")
            i_em, i_px, i_us = (header.index(c) for c in ("emotion", "pixels", "Usage"))
            for line_no, row in enumerate(reader, start=2):
                where = f"{path}, line {line_no}"
                if len(row) < len(header):
                    raise DataError(f"{where}: expected {len(header)} fields, found {len(row)}")
                split = USAGE_TO_SPLIT.get(row[i_us].strip())
                if split is None:
                    raise DataError(f"{where}: unknown Usage {row[i_us]!r}; expected one of "
                                    f"{', '.join(USAGE_TO_SPLIT)}")
                try:
                    label = int(row[i_em])
                except ValueError:
                    label = -1
                if not 0 <= label < len(FER2013_LABELS):
                    raise DataError(f"{where}: unknown emotion label {row[i_em]!r}; "
                                    f"expected 0-{len(FER2013_LABELS) - 1}")
                images[split].append(_parse_pixels(row[i_px], where))
                labels[split].append(label)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error, zlib.error) as exc:
        raise DataError(f"{path}: cannot read the CSV ({exc})") from None
    if not any(labels.values()):
        raise DataError(f"{path}: holds no data rows")
    return {
        s: Split(
            x=np.stack(images[s]).reshape(-1, FER_SIZE, FER_SIZE) if images[s]
            else np.zeros((0, FER_SIZE, FER_SIZE), np.uint8),
            y=np.asarray(labels[s], dtype=np.int64),
            labels=FER2013_LABELS,
            source=str(path),
        )
        for s in SPLITS
    }


def load_fer2013(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
                 use_cache: bool = True) -> dict[str, Split]:
    """Load FER2013 splits, caching the decoded arrays as ``.npz`` keyed by the file's hash.

    A cache that cannot be read or holds arrays of the wrong kind is deleted and rebuilt.
    """
    path = Path(path)
    _check_data_file(path, FER_EXPECTED)
    if not use_cache:
        return parse_fer2013_csv(path)
    try:
        digest = sha256_of(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the CSV ({exc.strerror or exc})") from None
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    cached = cache / f"fer2013-{digest[:16]}.npz"
    splits = _read_cache(cached, path)
    if splits is None:
        splits = parse_fer2013_csv(path)
        _write_cache(cached, splits)
    return splits


def _read_cache(cached: Path, source: Path) -> dict[str, Split] | None:
    """The splits in a cache file, or None (deleting the file) when it is not a valid one."""
    if not cached.is_file():
        return None
    try:
        with np.load(cached, allow_pickle=False) as npz:
            splits = {s: Split(x=npz[f"{s}_x"], y=npz[f"{s}_y"], labels=FER2013_LABELS,
                               source=str(source)) for s in SPLITS}
        problem = _cache_problem(splits)
    except Exception as exc:  # noqa: BLE001  zip, zlib and npy readers raise many types
        problem = f"{type(exc).__name__}: {exc}"
    if problem is None:
        return splits
    log.warning("deleting the unusable cache %s (%s); rebuilding it", cached, problem)
    with contextlib.suppress(OSError):
        cached.unlink(missing_ok=True)
    return None


def _cache_problem(splits: dict[str, Split]) -> str | None:
    for name, split in splits.items():
        x, y = split.x, split.y
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (FER_SIZE, FER_SIZE):
            return f"{name} images have shape {x.shape} and dtype {x.dtype}"
        if y.dtype != np.int64 or y.shape != (len(x),):
            return f"{name} labels have shape {y.shape} and dtype {y.dtype} for {len(x)} images"
        if y.size and (y.min() < 0 or y.max() >= len(FER2013_LABELS)):
            return f"{name} labels outside 0-{len(FER2013_LABELS) - 1}"
    if not any(len(split) for split in splits.values()):
        return "no rows"
    return None


def _write_cache(cached: Path, splits: dict[str, Split]) -> None:
    tmp = cached.with_suffix(f".{os.getpid()}.tmp.npz")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.savez(tmp, **{f"{s}_{k}": getattr(splits[s], k) for s in SPLITS for k in ("x", "y")})
        os.replace(tmp, cached)
    except OSError as exc:
        log.warning("could not write cache %s (%s)", cached, exc)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def read_ferplus_votes(ferplus_csv: str | os.PathLike,
                       expected_rows: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    """FER+ vote counts ``(rows, 10)`` in ``FERPLUS_VOTE_COLUMNS`` + unknown + NF order, each
    row's split, and which rows can be trained on: named, with one emotion voted for most
    often (no tie, and not ``unknown`` or ``NF``). The rows the FER+ authors score on are
    fewer: :func:`ferplus_clear_majority`."""
    ferplus_csv = Path(ferplus_csv)
    _check_data_file(ferplus_csv, "FER+ fer2013new.csv")
    try:
        votes, usages, named = _read_ferplus_rows(ferplus_csv)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{ferplus_csv}: cannot read the CSV ({exc})"
                        ) from None
    votes_arr = np.asarray(votes, dtype=np.float32).reshape(-1, len(FERPLUS_VOTE_COLUMNS) + 2)
    if len(votes_arr) != expected_rows:
        raise DataError(f"{ferplus_csv}: has {len(votes_arr)} rows but the FER2013 CSV has "
                        f"{expected_rows}; the files must match line by line")
    top = votes_arr.max(axis=1)
    ties = (votes_arr == top[:, None]).sum(axis=1) > 1
    keep = (np.asarray(named, dtype=bool) & (votes_arr.argmax(axis=1) < 8) & ~ties
            & (votes_arr[:, :8].sum(axis=1) > 0))
    return votes_arr, usages, keep


def ferplus_clear_majority(votes: np.ndarray) -> np.ndarray:
    """Which rows of ``votes`` ``(rows, 10)`` have the clear majority the FER+ authors
    score on (their ``majority`` mode, used for their validation and test sets): a vote
    cast by one annotator alone is dropped as an outlier, then one emotion must hold more
    than half of the remaining votes, ``unknown`` and ``NF`` included. With the votes of
    the FER+ repository's own ``data/FER2013Test/label.csv`` this keeps its 3,137 test
    images; with ``fer2013new.csv`` it keeps 3,153 PrivateTest rows."""
    kept = np.where(votes > 1, votes, 0)
    top = kept.max(axis=1)
    return (top > 0.5 * kept.sum(axis=1)) & (kept.argmax(axis=1) < len(FERPLUS_VOTE_COLUMNS))


def _read_ferplus_rows(ferplus_csv: Path) -> tuple[list[list[int]], list[str], list[bool]]:
    votes, usages, named = [], [], []
    columns = (*FERPLUS_VOTE_COLUMNS, "unknown", "NF")
    with open(ferplus_csv, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"Usage", "Image name", *columns} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{ferplus_csv}: missing column(s) {', '.join(sorted(missing))}")
        for line_no, row in enumerate(reader, start=2):
            try:
                counts = [int(row[c]) for c in columns]
            except (TypeError, ValueError):
                raise DataError(f"{ferplus_csv}, line {line_no}: vote counts must be "
                                "integers") from None
            if min(counts) < 0:
                raise DataError(f"{ferplus_csv}, line {line_no}: vote counts must not be "
                                f"negative, found {min(counts)}")
            votes.append(counts)
            usages.append(USAGE_TO_SPLIT.get((row["Usage"] or "").strip(), ""))
            named.append(bool((row["Image name"] or "").strip()))
    return votes, usages, named


def ferplus_soft_targets(ferplus_csv: str | os.PathLike, fer: dict[str, Split],
                         labels: tuple[str, ...] = FER2013_LABELS) -> dict[str, tuple]:
    """Per split, the FER+ vote distribution over ``labels`` (votes for other classes, such
    as contempt for a 7-class model, are dropped) and a mask of the rows that have one."""
    votes, _, keep = read_ferplus_votes(ferplus_csv, sum(len(fer[s]) for s in SPLITS))
    columns = [FERPLUS_VOTE_COLUMNS.index(_ferplus_column(lab)) for lab in labels]
    soft = votes[:, columns]
    total = soft.sum(axis=1, keepdims=True)
    keep = keep & (total[:, 0] > 0)
    soft = np.where(total > 0, soft / np.maximum(total, 1), 0.0).astype(np.float32)
    out, start = {}, 0
    for s in SPLITS:
        sl = slice(start, start + len(fer[s]))
        start += len(fer[s])
        out[s] = (soft[sl], keep[sl])
    return out


def load_ferplus(fer_csv: str | os.PathLike, ferplus_csv: str | os.PathLike,
                 cache_dir: str | os.PathLike | None = None) -> dict[str, Split]:
    """FER2013 images with FER+ labels: 8 classes (with contempt) by majority vote.

    Rows are joined by line position (``Image name`` is not the row index); rows with no
    image name are dropped. PublicTest and PrivateTest keep the rows the FER+ authors score
    on (:func:`ferplus_clear_majority`: after single votes are dropped, one emotion holds
    more than half of the votes), so accuracies compare with theirs. Training keeps every
    row whose most-voted class is an emotion without a tie: its target is the vote
    distribution, which carries the ambiguity. ``soft`` holds each row's vote distribution
    over the 8 classes.
    """
    fer = load_fer2013(fer_csv, cache_dir)
    order = [FERPLUS_VOTE_COLUMNS.index(_ferplus_column(lab)) for lab in FERPLUS_LABELS]
    votes_arr, usages, keep_all = read_ferplus_votes(ferplus_csv,
                                                     sum(len(fer[s]) for s in SPLITS))
    emotions = votes_arr[:, :8]
    majority = votes_arr.argmax(axis=1)
    clear = keep_all & ferplus_clear_majority(votes_arr)
    out, start = {}, 0
    for s in SPLITS:
        n = len(fer[s])
        sl = slice(start, start + n)
        start += n
        if any(u != s for u in usages[sl]):
            raise DataError(f"{ferplus_csv}: Usage column disagrees with fer2013.csv in split {s}")
        keep, why = ((keep_all[sl], "not a face, unknown or tie") if s == "train" else
                     (clear[sl], "no clear majority: not a face, unknown, or no emotion over "
                                 "half the votes"))
        soft = emotions[sl][keep][:, order]
        soft /= soft.sum(axis=1, keepdims=True)
        y = np.asarray([order.index(m) for m in majority[sl][keep]], dtype=np.int64)
        out[s] = Split(x=fer[s].x[keep], y=y, labels=FERPLUS_LABELS, soft=soft,
                       skipped={f"dropped ({why})": int((~keep).sum())},
                       source=f"{fer[s].source} + {ferplus_csv}")
    return out


def _ferplus_column(label: str) -> str:
    return {"angry": "anger", "happy": "happiness", "sad": "sadness"}.get(label, label)


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir())
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the folder ({exc.strerror or exc})") from None


def _split_folders(root: Path) -> dict[str, Path]:
    subdirs = {p.name.lower(): p for p in _subfolders(root)}
    return {SPLIT_ALIASES[k]: p for k, p in subdirs.items() if k in SPLIT_ALIASES}


def _image_files(folder: Path, skipped: Counter[str]) -> list[Path]:
    """The image files under ``folder``, sorted. Folders that cannot be listed and entries
    with an image suffix that are not regular files (pipes, devices) are counted in
    ``skipped``: reading a pipe would block forever."""
    def unreadable(exc: OSError) -> None:
        skipped["unreadable folder"] += 1
        log.warning("skipping folder %s (%s)", exc.filename, exc.strerror or exc)

    found = []
    for parent, _, names in os.walk(folder, onerror=unreadable):
        for name in names:
            path = Path(parent, name)
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if path.is_file():
                found.append(path)
            else:
                skipped["not a regular file"] += 1
                log.warning("skipping %s: not a regular file", path)
    return sorted(found)


def load_image_folder(root: str | os.PathLike, split: str | None = None,
                      labels: tuple[str, ...] = FER2013_LABELS, size: int = FER_SIZE,
                      channels: int = 1) -> Split:
    """Load ``ROOT/<label>/*`` (or ``ROOT/<split>/<label>/*``) as face crops.

    Label folder names are mapped to ours (``happiness`` -> ``happy``); folders whose
    label is not in ``labels`` are skipped and counted. Unreadable images and folders, and
    entries that are not regular files, are skipped and counted too, each logged.
    """
    root = Path(root)
    if not _is_dir(root):
        raise DataError(f"{root}: no such folder")
    by_split = _split_folders(root)
    if by_split:
        wanted = canonical_split(split) if split else "test"
        if wanted not in by_split:
            raise DataError(f"{root}: has split folders {sorted(by_split)} but no {wanted!r}")
        base = by_split[wanted]
    else:
        base = root
    images, ys = [], []
    skipped: Counter[str] = Counter()
    label_dirs = _subfolders(base)
    if not label_dirs:
        raise DataError(f"{base}: holds no label folders (expected {base}/<label>/*.png)")
    for folder in label_dirs:
        label = canonical_label(folder.name)
        files = _image_files(folder, skipped)
        if label not in labels:
            skipped[f"label not known to the model: {folder.name}"] += len(files)
            log.info("skipping %d images in %s: label %r not in %s", len(files), folder,
                     folder.name, labels)
            continue
        for f in files:
            try:
                img = read_image(f)
            except BadImageError as exc:
                skipped["unreadable image"] += 1
                log.warning("skipping %s", exc)
                continue
            img = to_gray(img) if channels == 1 else _to_rgb(img)
            images.append(resize(img, size, size))
            ys.append(labels.index(label))
    if not images:
        raise DataError(f"{base}: no readable images in label folders "
                        f"{[p.name for p in label_dirs]}")
    return Split(x=np.stack(images), y=np.asarray(ys, dtype=np.int64), labels=labels,
                 skipped=dict(skipped), source=str(base))


def _to_rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img


def load_split(path: str | os.PathLike, split: str = "test",
               labels: tuple[str, ...] = FER2013_LABELS, size: int = FER_SIZE,
               channels: int = 1, cache_dir: str | os.PathLike | None = None,
               ferplus: str | os.PathLike | None = None) -> Split:
    """Load one split from a FER2013 CSV or an image folder, whichever ``path`` is.

    With ``ferplus`` (FER+'s ``fer2013new.csv``), a CSV's rows carry the FER+ majority
    labels instead; PublicTest and PrivateTest keep only the rows with the clear majority
    the FER+ authors score on (:func:`ferplus_clear_majority`); rows whose label the model
    does not know (contempt, for a 7-class model) are dropped too, and both counts are
    reported in ``skipped``.
    """
    path = Path(path)
    if _is_dir(path):
        if ferplus:
            raise DataError("--ferplus relabels a FER2013 CSV; it does not apply to an "
                            f"image folder ({path})")
        return load_image_folder(path, split, labels, size, channels)
    _check_data_file(path, "a FER2013 .csv/.csv.gz file or an image folder")
    name = path.name.lower()
    if not (name.endswith(".csv") or name.endswith(".csv.gz")):
        raise DataError(f"{path}: expected a FER2013 .csv/.csv.gz file or an image folder")
    split = canonical_split(split)
    if ferplus:
        data = load_ferplus(path, ferplus, cache_dir)[split]
    else:
        data = load_fer2013(path, cache_dir)[split]
    if not len(data):
        raise DataError(f"{path}: the {split!r} split has no rows")
    x = data.x
    if size != FER_SIZE:
        x = np.stack([resize(img, size, size) for img in x]) if len(x) else x
    if channels == 3:
        x = np.repeat(x[..., None], 3, axis=-1)
    if tuple(labels) != tuple(data.labels):
        keep = np.isin(np.asarray(data.labels)[data.y], labels)
        if not keep.any():
            raise DataError(f"{path}: no row of the {split!r} split has a label the "
                            f"model knows ({', '.join(labels)})")
        y = np.asarray([labels.index(data.labels[i]) for i in data.y[keep]], dtype=np.int64)
        return Split(x=x[keep], y=y, labels=labels, source=data.source,
                     skipped={**data.skipped,
                              "label not known to the model": int((~keep).sum())})
    return Split(x=x, y=data.y, labels=labels, source=data.source, skipped=dict(data.skipped))
