"""Shared fixtures: tiny data made in the test, a tiny Keras model, the shared data paths."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMOTION_EDGE_SHARED", REPO.parent / "shared"))
FER_CSV = SHARED / "data" / "fer2013" / "fer2013.csv.gz"
FERPLUS_CSV = SHARED / "data" / "ferplus" / "fer2013new.csv"
DEMO_FACES = SHARED / "data" / "demo_faces"


@pytest.fixture
def fer_csv() -> Path:
    if not FER_CSV.is_file():
        pytest.skip(f"FER2013 not found at {FER_CSV}")
    return FER_CSV


@pytest.fixture
def ferplus_csv() -> Path:
    if not FERPLUS_CSV.is_file():
        pytest.skip(f"FER+ labels not found at {FERPLUS_CSV}")
    return FERPLUS_CSV


@pytest.fixture
def demo_faces() -> Path:
    if not DEMO_FACES.is_dir():
        pytest.skip(f"demo photos not found at {DEMO_FACES}")
    return DEMO_FACES


def write_tiny_csv(path: Path, rows_per_split=(42, 14, 14), seed: int = 0) -> Path:
    """A FER2013-format CSV (70 rows by default) with every class in every split.

    Each class has its own brightness pattern, so a model can learn something from it.
    """
    from emotion_edge.data.datasets import FER_SIZE

    rng = np.random.default_rng(seed)
    lines = ["emotion,pixels,Usage"]
    for usage, n in zip(("Training", "PublicTest", "PrivateTest"), rows_per_split, strict=True):
        for i in range(n):
            label = i % 7
            img = rng.integers(0, 60, (FER_SIZE, FER_SIZE)) + label * 28
            img[label * 6:(label + 1) * 6, :] = 255
            lines.append(f"{label},{' '.join(map(str, np.clip(img, 0, 255).ravel()))},{usage}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def tiny_csv(tmp_path) -> Path:
    return write_tiny_csv(tmp_path / "tiny.csv")


def build_tiny_keras(num_classes: int = 7, seed: int = 0):
    """A small conv net (the default input spec's 48x48x1 -> softmax) with the registry's
    layer names."""
    import keras
    from emotion_edge.runtime.sidecar import InputSpec
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(InputSpec().shape, name="image")
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(num_classes, name="logits")(x)
    outputs = layers.Activation("softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="tiny")


def save_with_sidecar(model, path: Path, labels=None) -> Path:
    """Save a Keras model and write the sidecar every artifact needs."""
    from emotion_edge.runtime.labels import FER2013_LABELS
    from emotion_edge.runtime.sidecar import InputSpec, sha256_of, write_sidecar

    model.save(path)
    write_sidecar(path, {
        "name": model.name, "format": "keras", "precision": "fp32",
        "labels": list(labels or FER2013_LABELS), "input": InputSpec().to_dict(),
        "parameters": int(model.count_params()), "sha256": sha256_of(path),
    })
    return path


@pytest.fixture(scope="session")
def tiny_keras_path(tmp_path_factory) -> Path:
    pytest.importorskip("keras")
    return save_with_sidecar(build_tiny_keras(), tmp_path_factory.mktemp("tiny") / "tiny.keras")
