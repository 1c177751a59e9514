"""Export a trained Keras model to every format of the format registry, and prove each export.

``export_model`` turns ``model.keras`` (with its sidecar) into one artifact, e.g.
``model.int8.tflite``; ``export_all`` makes every exportable row of the registry and
measures each on a test split. Each row names its exporter (``module:function`` in this
package, called with an ``ExportJob``) and its parity rule. Each artifact is written into a
temporary folder beside its destination, loaded through the runtime's ``load_predictor``
and compared with its source on real images under its row's rule; only then are its files
and sidecar moved into place, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..data.datasets import canonical_split
from ..runtime.bundled import FER2013_SOURCE, FERPLUS_SOURCE
from ..runtime.errors import ConfigError, DataError, ExportError, ModelLoadError
from ..runtime.formats import (
    EXPORTABLE,
    ArtifactFormat,
    ParityRule,
    artifact_name,
    find_format,
    format_of,
    import_object,
    sidecar_path,
)
from ..runtime.predictor import Predictor, load_predictor
from ..runtime.sidecar import InputSpec, read_sidecar, sha256_of, write_sidecar
from .calibration import (
    DEFAULT_CALIBRATION_SIZE,
    DEFAULT_PARITY_SIZE,
    ImageSet,
    calibration_set,
    load_image_set,
    parity_set,
)
from .common import command_line, first_line, library_versions, stdout_to_stderr
from .parity import ParityResult, measure_parity, require_parity
from .qat import QatOptions

log = logging.getLogger(__name__)

#: split name -> the key the accuracy is recorded under, as in the training sidecar
SPLIT_KEYS = {"val": "publictest", "test": "privatetest"}


@dataclass(frozen=True)
class ExportOptions:
    """Where to write, which images to calibrate and check on, and how strictly."""

    out_dir: Path | None = None            # default: beside the source model
    calibration_data: Path | None = None   # FER2013 CSV or image folder
    ferplus: Path | None = None            # FER+ votes: label the CSV's rows by their majority
    calibration_size: int = DEFAULT_CALIBRATION_SIZE
    parity_size: int = DEFAULT_PARITY_SIZE
    int8_io: bool = False                  # int8 input/output for full-integer TFLite
    overwrite: bool = False
    seed: int = 0
    qat: QatOptions = field(default_factory=QatOptions)
    command: str = ""                      # recorded in sidecars; default: this process's


@dataclass(frozen=True)
class ExportJob:
    """What a registry row's exporter gets: write the artifact's main file at ``out``
    (and its companions beside it) and return what the sidecar should add."""

    row: ArtifactFormat
    model: Any                          # the source Keras model
    source_path: Path                   # its ``.keras`` file
    out: Path                           # the main file to write, in a temporary folder
    calibration: np.ndarray | None      # prepared images when ``row.calibrated``
    data_path: Path | None              # the data set (QAT trains on it)
    options: ExportOptions


@dataclass(frozen=True)
class ExportResult:
    """One written artifact, its size, parity and sidecar."""

    path: Path
    row: ArtifactFormat
    size_bytes: int
    parity: ParityResult
    quantization: str
    sidecar: dict[str, Any]


@dataclass(frozen=True)
class SummaryRow:
    """One line of ``export --all``: an artifact (or the source) and how it measured."""

    format: str
    precision: str
    path: str
    size_bytes: int | None
    parity: str
    parity_value: float | None
    accuracy: float | None
    error: str | None = None


@dataclass(frozen=True)
class SourceModel:
    """The Keras model being exported, with its sidecar."""

    path: Path
    model: Any
    sidecar: dict[str, Any]
    sha256: str

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.sidecar["labels"])

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec.from_dict(self.sidecar["input"])

    @property
    def stem(self) -> str:
        return self.path.name[:-len(".keras")]


def load_source(path: str | os.PathLike) -> SourceModel:
    """Load a ``.keras`` model and its sidecar, or raise ``ModelLoadError`` saying why not."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such model file")
    if not path.name.endswith(".keras"):
        raise ModelLoadError(f"{path}: expected a trained Keras 3 model file (*.keras)")
    sidecar = read_sidecar(path)
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001  Keras raises many types for a bad file
        raise ModelLoadError(f"{path}: not a readable Keras model ({first_line(exc)})") from None
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelLoadError(f"{path}: expected a model with one input and one output")
    return SourceModel(path=path, model=model, sidecar=sidecar, sha256=sha256_of(path))


class Exporter:
    """Exports one source model; loads its data sets once and shares them between exports."""

    def __init__(self, model_path: str | os.PathLike, options: ExportOptions = ExportOptions()):
        self.source = load_source(model_path)
        self.options = options
        self.out_dir = Path(options.out_dir) if options.out_dir else self.source.path.parent
        self._eval_sets: dict[str, ImageSet] = {}

    # ---- data

    @cached_property
    def data_path(self) -> Path:
        """Real images: ``--calibration-data``, else the data set the model was trained on."""
        if self.options.calibration_data:
            path = Path(self.options.calibration_data)
            if not path.exists():
                raise DataError(f"{path}: no such calibration data; pass the FER2013 CSV "
                                "(fer2013.csv or .csv.gz) or a folder of face images")
            return path
        trained_on = self.source.sidecar.get("training", {}).get("config", {}).get("data")
        if trained_on and Path(trained_on).exists():
            log.info("using the training data recorded in the sidecar: %s", trained_on)
            return Path(trained_on)
        raise ConfigError(
            "exports are checked on real images and int8/qat exports are calibrated on them: "
            "pass --calibration-data PATH (the FER2013 CSV, e.g. fer2013.csv.gz, or a folder "
            "of face images in <label>/ subfolders)")

    @cached_property
    def ferplus(self) -> Path | None:
        """FER+ votes for a CSV: ``options.ferplus``, else those a FER+ model was trained on
        (its labels are the FER+ majorities; calibrating or scoring it on FER2013's would
        leave contempt out)."""
        if self.options.ferplus:
            path = Path(self.options.ferplus)
            if not path.is_file():
                raise DataError(f"{path}: no such FER+ votes file (fer2013new.csv)")
            return path
        config = self.source.sidecar.get("training", {}).get("config", {})
        if config.get("task") == "ferplus" and config.get("ferplus"):
            path = Path(config["ferplus"])
            if path.is_file():
                return path
            raise ConfigError(f"{self.source.path} learnt FER+'s classes from {path}, which "
                              "is not here: pass the FER+ votes file (fer2013new.csv)")
        return None

    @cached_property
    def calibration(self) -> ImageSet:
        return calibration_set(self.data_path, self.source.labels, self.source.input_spec,
                               self.options.calibration_size, self.options.seed, self.ferplus)

    @cached_property
    def parity_images(self) -> ImageSet:
        return parity_set(self.data_path, self.source.labels, self.source.input_spec,
                          self.options.parity_size, self.options.seed, self.ferplus)

    @cached_property
    def source_predictor(self) -> Predictor:
        return load_predictor(self.source.path)

    def close(self) -> None:
        """Release the source model's predictor, if one was loaded."""
        predictor = self.__dict__.pop("source_predictor", None)
        if predictor is not None:
            predictor.close()

    def __enter__(self) -> Exporter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @cached_property
    def reference(self) -> np.ndarray:
        """The source's probabilities on the parity images."""
        return self.source_predictor.predict_batch(self.parity_images.x)

    # ---- export

    def destination(self, row: ArtifactFormat) -> Path:
        if row.exporter is None:
            raise ConfigError(f"{row.format} is a source format; export to: " + ", ".join(
                dict.fromkeys(r.format for r in EXPORTABLE)))
        dest = self.out_dir / artifact_name(self.source.stem, row)
        taken = [p for p in (dest, *row.members(dest), sidecar_path(dest)) if p.exists()]
        if taken and not self.options.overwrite:
            raise ExportError(f"{taken[0]}: already exists; pass --overwrite to replace it")
        return dest

    def export(self, fmt: str, precision: str) -> ExportResult:
        """Convert, check parity, and move the artifact and its sidecar into place."""
        return self.export_row(find_format(fmt, precision))

    def export_row(self, row: ArtifactFormat) -> ExportResult:
        """``export`` for a registry row (a row with another parity rule, in tests)."""
        dest = self.destination(row)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        tmp_dir = Path(tempfile.mkdtemp(dir=self.out_dir, prefix=f".{dest.name}-"))
        try:
            tmp = tmp_dir / dest.name
            with stdout_to_stderr():
                details = self._convert(row, tmp)
            sidecar = self._sidecar(row, tmp, details)
            write_sidecar(tmp, sidecar)
            parity = require_parity(self.check_parity(tmp, row.parity), dest)
            sidecar["parity"] = parity.to_dict()
            write_sidecar(tmp, sidecar)
            _move_into_place(row, tmp, dest)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        log.info("%s: %s, %d bytes, parity %s", dest, row.title, sidecar["size_bytes"],
                 parity.describe())
        return ExportResult(path=dest, row=row, size_bytes=sidecar["size_bytes"], parity=parity,
                            quantization=sidecar["export"]["quantization"], sidecar=sidecar)

    def check_parity(self, artifact: Path, rule: ParityRule | None = None) -> ParityResult:
        """Compare ``artifact`` (loaded by the runtime) with the source on the parity images,
        under ``rule`` (default: the artifact's registry row's)."""
        if rule is None:
            rule = format_of(artifact, read_sidecar(artifact)).parity
        with load_predictor(artifact) as predictor:
            probs = predictor.predict_batch(self.parity_images.x)
        data = f"{self.parity_images.source} ({self.parity_images.split})"
        return measure_parity(rule, self.reference, probs, data)

    def accuracy(self, artifact: Path, split: str) -> float:
        """Top-1 accuracy of ``artifact`` on all of ``split`` of the data, via the runtime."""
        images = self.eval_set(split)
        with load_predictor(artifact) as predictor:
            probs = predictor.predict_batch(images.x)
        return float((probs.argmax(1) == images.y).mean())

    def accuracy_record(self, artifact: Path, split: str, measured_by: str) -> dict[str, Any]:
        """The ``accuracy`` block of an export's sidecar: ``artifact`` scored on all of
        ``split``, on the labels the source model predicts."""
        return {SPLIT_KEYS.get(split, split): self.accuracy(artifact, split),
                "images": len(self.eval_set(split)),
                "labels_from": FERPLUS_SOURCE if self.ferplus else FER2013_SOURCE,
                "measured_by": measured_by}

    def eval_set(self, split: str) -> ImageSet:
        """All images of ``split`` of the data, prepared (loaded once)."""
        if split not in self._eval_sets:
            self._eval_sets[split] = load_image_set(self.data_path, split, self.source.labels,
                                                    self.source.input_spec, None,
                                                    self.options.seed, self.ferplus)
        return self._eval_sets[split]

    def _convert(self, row: ArtifactFormat, tmp: Path) -> dict[str, Any]:
        """Write the artifact for ``row`` at ``tmp`` with the row's exporter; return what the
        sidecar should say."""
        calibration = self.calibration if row.calibrated else None
        job = ExportJob(row=row, model=self.source.model, source_path=self.source.path,
                        out=tmp, calibration=calibration.x if calibration else None,
                        data_path=self.data_path if calibration else None,
                        options=self.options)
        added = dict(import_object(row.exporter)(job) or {})
        described = calibration.describe() | {"seed": self.options.seed} if calibration else None
        if described and "calibration_used_for" in added:
            described["used_for"] = added.pop("calibration_used_for")
        return {"quantization": row.made_by, "calibration": described,
                "io": added.pop("io", "float32"), "extra": added}

    def _sidecar(self, row: ArtifactFormat, tmp: Path, details: dict[str, Any]) -> dict[str, Any]:
        src = self.source
        keep = ("name", "parameters", "macs", "training", "accuracy")
        return {
            "name": src.sidecar.get("name", src.stem),
            "format": row.format,
            "precision": row.precision,
            "title": row.title,
            "labels": list(src.labels),
            "input": dict(src.sidecar["input"]),
            "io": {"input": details["io"], "output": details["io"]},
            "sha256": row.sha256(tmp),
            "size_bytes": row.size_bytes(tmp),
            **({"files": _member_records(row, tmp)} if row.layout != "file" else {}),
            "export": {
                "command": self.options.command or command_line(),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "versions": library_versions(),
                "quantization": details["quantization"],
                "calibration": details["calibration"],
                **details["extra"],
            },
            "parity": None,
            "source": {"file": src.path.name, "sha256": src.sha256}
            | {k: src.sidecar[k] for k in keep if k in src.sidecar},
        }


def export_model(model_path: str | os.PathLike, fmt: str, precision: str,
                 options: ExportOptions = ExportOptions()) -> ExportResult:
    """Export ``model_path`` (a ``.keras`` model with its sidecar) to ``fmt``/``precision``."""
    row = find_format(fmt, precision)
    with Exporter(model_path, options) as exporter:
        return exporter.export(row.format, row.precision)


def select_rows(names: str | None) -> tuple[ArtifactFormat, ...]:
    """Exportable rows named by a comma-separated list of registry keys (``openvino-int8``)
    or format names (``openvino``); ``None`` is every exportable row."""
    if not names:
        return EXPORTABLE
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = {r.key for r in EXPORTABLE} | {r.format for r in EXPORTABLE}
    unknown = [n for n in wanted if n not in known]
    if unknown or not wanted:
        raise ConfigError(f"unknown format(s) {', '.join(unknown) or names!r}; choose from: "
                          f"{', '.join(sorted(known))}")
    return tuple(r for r in EXPORTABLE if r.key in wanted or r.format in wanted)


def export_all(model_path: str | os.PathLike, options: ExportOptions = ExportOptions(),
               eval_split: str = "test",
               rows: tuple[ArtifactFormat, ...] = EXPORTABLE) -> list[SummaryRow]:
    """Export ``rows`` (default: every exportable row of the registry) and measure each
    artifact's accuracy on ``eval_split``; a row that fails is reported with its error and
    the rest go on."""
    eval_split = canonical_split(eval_split)
    with Exporter(model_path, options) as exporter:
        for row in rows:  # refuse before any work if a destination is taken
            exporter.destination(row)
        source = exporter.source.path
        summary = [SummaryRow("keras", "fp32", str(source), source.stat().st_size, "source", None,
                              exporter.accuracy(source, eval_split))]
        for row in rows:
            try:
                result = exporter.export(row.format, row.precision)
            except ExportError as exc:
                log.error("%s: %s", row.title, exc)
                summary.append(SummaryRow(row.format, row.precision, "", None, "failed", None,
                                          None, str(exc)))
                continue
            sidecar = dict(result.sidecar)  # measured accuracy joins the sidecar
            sidecar["accuracy"] = exporter.accuracy_record(
                result.path, eval_split,
                f"emotion-edge export --all on {exporter.data_path} ({eval_split})")
            accuracy = sidecar["accuracy"][SPLIT_KEYS.get(eval_split, eval_split)]
            write_sidecar(result.path, sidecar)
            summary.append(SummaryRow(row.format, row.precision, str(result.path),
                                      result.size_bytes, result.parity.describe(),
                                      result.parity.value, accuracy))
        return summary


def _member_records(row: ArtifactFormat, path: Path) -> dict[str, dict[str, Any]]:
    """Size and sha256 of each file of a multi-file artifact, by name."""
    root = path if row.layout == "folder" else path.parent
    return {p.relative_to(root).as_posix(): {"size_bytes": p.stat().st_size,
                                             "sha256": sha256_of(p)}
            for p in row.members(path)}


def _move_into_place(row: ArtifactFormat, tmp: Path, dest: Path) -> None:
    """Move the artifact's files and sidecar from ``tmp`` to ``dest`` (replacing old ones)."""
    if row.layout == "folder":
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
    else:
        for member in row.members(tmp):
            os.replace(member, dest.parent / member.name)
    os.replace(sidecar_path(tmp), sidecar_path(dest))
