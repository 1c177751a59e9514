"""Real images for export: the calibration set (quantisation), the parity set and eval data.

All come from the FER2013 CSV or an image folder through ``data.datasets.load_split`` and are
prepared with the runtime's ``prepare_batch`` and the source model's input spec, exactly as
the runtime will feed the exported artifact.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.datasets import load_split
from ..data.sampling import stratified_indices
from ..runtime.errors import DataError
from ..runtime.preprocess import prepare_batch
from ..runtime.sidecar import InputSpec

log = logging.getLogger(__name__)

DEFAULT_CALIBRATION_SIZE = 500
DEFAULT_PARITY_SIZE = 1000


@dataclass(frozen=True)
class ImageSet:
    """Prepared model input ``x`` (float32 NHWC), labels ``y``, and where they came from."""

    x: np.ndarray
    y: np.ndarray
    source: str
    split: str

    def __len__(self) -> int:
        return len(self.y)

    def describe(self) -> dict[str, object]:
        return {"images": len(self), "source": self.source, "split": self.split}


def is_csv(path: str | Path) -> bool:
    name = Path(path).name.lower()
    return name.endswith(".csv") or name.endswith(".csv.gz")


def load_image_set(path: str | Path, split: str, labels: tuple[str, ...], spec: InputSpec,
                   size: int | None, seed: int, ferplus: str | Path | None = None) -> ImageSet:
    """A stratified sample of ``split`` of the CSV or image folder at ``path``, prepared
    (with ``ferplus``, a CSV's rows carry the FER+ majority labels)."""
    data = load_split(path, split, labels=labels, size=spec.height, channels=spec.channels,
                      ferplus=ferplus)
    if not len(data):
        raise DataError(f"{path}: split {split!r} holds no images")
    keep = stratified_indices(data.y, size, seed)
    x = prepare_batch(list(data.x[keep]), spec)
    log.info("%d %s images from %s", len(keep), split, path)
    return ImageSet(x=x, y=data.y[keep], source=str(path), split=split)


def calibration_set(path: str | Path, labels: tuple[str, ...], spec: InputSpec,
                    size: int = DEFAULT_CALIBRATION_SIZE, seed: int = 0,
                    ferplus: str | Path | None = None) -> ImageSet:
    """The representative set for quantisation: training images, stratified by class."""
    return load_image_set(path, "train", labels, spec, size, seed, ferplus)


def parity_set(path: str | Path, labels: tuple[str, ...], spec: InputSpec,
               size: int = DEFAULT_PARITY_SIZE, seed: int = 0,
               ferplus: str | Path | None = None) -> ImageSet:
    """Images to compare an artifact with its source: PublicTest of a CSV, else the
    calibration images of a folder."""
    split = "val" if is_csv(path) else "train"
    return load_image_set(path, split, labels, spec, size, seed, ferplus if is_csv(path) else None)
