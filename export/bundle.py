"""Ship a trained run as a bundled model: ``python -m emotion_edge.export.bundle``.

Copies ``RUN/model.keras`` into ``runtime/models/NAME.keras``, measures its PublicTest
and PrivateTest accuracy with ``emotion-edge evaluate`` into its sidecar, then exports it
to every format and precision of the format registry beside it (``export --all``). This is
the last step of ``make bundle-default``; nothing is replaced without ``--overwrite``.
``--only KEYS`` instead exports just those registry rows from the bundled ``NAME.keras``
(e.g. ``--only openvino`` after the registry gained OpenVINO), without retraining.
``--remeasure`` scores the bundled ``NAME`` and its exports again and rewrites only the
figures in their sidecars (after the way a split is scored changed); no model file is
touched.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path

from ..runtime.bundled import FER2013_SOURCE, FERPLUS_SOURCE, SIZE_BUDGET, bundle_sizes
from ..runtime.errors import ConfigError, EmotionEdgeError
from ..runtime.labels import FERPLUS_LABELS
from ..runtime.sidecar import read_sidecar, sha256_of, sidecar_path, write_sidecar

log = logging.getLogger(__name__)
MODELS_DIR = Path(__file__).resolve().parents[1] / "runtime" / "models"


def bundle(run_dir: Path, data: Path, name: str = "default", *, models_dir: Path = MODELS_DIR,
           overwrite: bool = False, formats: str | None = None,
           ferplus: Path | None = None) -> dict:
    from .exporter import ExportOptions, export_all, select_rows

    rows = select_rows(formats)  # a bad key fails before anything is copied
    source = run_dir / "model.keras"
    if not source.is_file():
        raise ConfigError(f"{run_dir}: no model.keras; has the run finished?")
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / f"{name}.keras"
    taken = sorted(p.name for p in models_dir.glob(f"{name}.*"))
    if taken and not overwrite:
        raise ConfigError(f"{models_dir} already holds {', '.join(taken)}; pass --overwrite "
                          "to replace them")
    for old in models_dir.glob(f"{name}.*"):
        old.unlink()
    _save_without_optimizer(source, target)
    meta = read_sidecar(source)
    meta["name"] = name
    meta["sha256"] = sha256_of(target)
    meta.pop("accuracy", None)  # measured again below, by `evaluate`
    write_sidecar(target, meta)
    eight_classes = tuple(meta["labels"]) == FERPLUS_LABELS
    meta["accuracy"] = _measure(target, data, ferplus, eight_classes)
    # the Makefile trains run folder runs/RUN with `make train-RUN`
    meta["accuracy"]["reproduce"] = f"make train-{run_dir.name} bundle-{name}"
    write_sidecar(target, meta)
    # the exports are calibrated and scored on the labels the model predicts
    made = export_all(target, ExportOptions(calibration_data=data,
                                            ferplus=ferplus if eight_classes else None,
                                            overwrite=overwrite, command=_command()), rows=rows)
    _check_budget(models_dir)
    return {"model": str(target), "accuracy": meta["accuracy"],
            "artifacts": [row.__dict__ for row in made],
            "sidecar": str(sidecar_path(target))}


def _measure(target: Path, data: Path, ferplus: Path | None,
             eight_classes: bool) -> dict:
    """PublicTest and PrivateTest accuracy by ``emotion-edge evaluate``, on the labels the
    model predicts: FER2013's for a 7-class model (and, with ``ferplus``, the FER+ majority
    labels too, as ``ferplus_*``), the FER+ majority labels for a FER+ model."""
    from ..data.evaluate import evaluate

    if eight_classes and not ferplus:
        raise ConfigError(f"{target.name} predicts FER+'s eight classes: pass --ferplus "
                          "fer2013new.csv to score it on the FER+ labels")
    runs = [("", ferplus)] if eight_classes else [("", None)]
    if ferplus and not eight_classes:
        runs.append(("ferplus_", ferplus))
    accuracy: dict = {"labels_from": FERPLUS_SOURCE if eight_classes else FER2013_SOURCE}
    commands = []
    for prefix, votes in runs:
        for split, key in (("val", "publictest"), ("test", "privatetest")):
            report = evaluate(str(target), str(data), split,
                              ferplus=str(votes) if votes else None)
            accuracy[prefix + key] = report["accuracy"]
            accuracy[f"{prefix}{key}_macro_f1"] = report["macro_f1"]
            accuracy[f"{prefix}{key}_images"] = report["images_scored"]
            log.info("%s: %s%s %.4f", target.name, prefix, key, report["accuracy"])
        commands.append(f"emotion-edge evaluate {target.name} --data {data} --split val|test"
                        + (f" --ferplus {votes}" if votes else ""))
    accuracy["measured_by"] = "; ".join(commands)
    return accuracy


def bundle_only(data: Path, only: str, name: str = "default", *,
                models_dir: Path = MODELS_DIR, overwrite: bool = False) -> dict:
    """Export the registry rows ``only`` names from the bundled ``NAME.keras``, beside it."""
    from .exporter import ExportOptions, export_all, select_rows

    rows = select_rows(only)
    target = models_dir / f"{name}.keras"
    if not target.is_file():
        raise ConfigError(f"{target}: no bundled model to export from; bundle a run first")
    made = export_all(target, ExportOptions(calibration_data=data, overwrite=overwrite,
                                            command=_command()), rows=rows)
    _check_budget(models_dir)
    return {"model": str(target), "artifacts": [row.__dict__ for row in made]}


def remeasure(data: Path, name: str = "default", *, models_dir: Path = MODELS_DIR,
              ferplus: Path | None = None) -> dict:
    """Score the bundled ``NAME.keras`` and each export beside it again, as :func:`bundle`
    does, and rewrite the ``accuracy`` block of their sidecars; the model files, their
    hashes and the parity proofs are left as they are."""
    from .exporter import Exporter, ExportOptions

    target = models_dir / f"{name}.keras"
    if not target.is_file():
        raise ConfigError(f"{target}: no bundled model to measure; bundle a run first")
    meta = read_sidecar(target)
    eight_classes = tuple(meta["labels"]) == FERPLUS_LABELS
    accuracy = _measure(target, data, ferplus, eight_classes)
    if "reproduce" in meta.get("accuracy", {}):
        accuracy["reproduce"] = meta["accuracy"]["reproduce"]
    meta["accuracy"] = accuracy
    write_sidecar(target, meta)
    exports = {}
    with Exporter(target, ExportOptions(calibration_data=data,
                                        ferplus=ferplus if eight_classes else None)) as exporter:
        for side in sorted(models_dir.glob(f"{name}.*.json")):
            artifact = side.with_name(side.name.removesuffix(".json"))
            if artifact == target:
                continue
            record = read_sidecar(artifact)
            old = record.get("accuracy")
            if not old or "privatetest" not in old:
                continue
            record["accuracy"] = exporter.accuracy_record(artifact, "test",
                                                          f"{_command()} ({data}, test)")
            write_sidecar(artifact, record)
            score = record["accuracy"]["privatetest"]
            exports[artifact.name] = {"before": old["privatetest"], "now": score}
            log.info("%s: privatetest %.4f -> %.4f", artifact.name, old["privatetest"], score)
    return {"model": str(target), "accuracy": accuracy, "exports": exports, "artifacts": []}


def _check_budget(models_dir: Path) -> None:
    """Warn, naming each model's share, when the bundle outgrows ``SIZE_BUDGET``."""
    sizes = bundle_sizes(models_dir)
    total = sum(sizes.values())
    if total > SIZE_BUDGET:
        shares = ", ".join(f"{stem} {size / 1e6:.1f} MB" for stem, size in sorted(sizes.items()))
        log.warning("the bundled models now take %.1f MB, over the %.0f MB budget (%s): "
                    "tests/test_bundled.py will fail until a model shrinks",
                    total / 1e6, SIZE_BUDGET / 1e6, shares)


def _command() -> str:
    return shlex.join(["python", "-m", "emotion_edge.export.bundle", *sys.argv[1:]])


def _save_without_optimizer(source: Path, target: Path) -> None:
    """Ship weights only: a checkpoint's optimizer state would triple the file."""
    import keras

    keras.models.load_model(source, compile=False).save(target)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m emotion_edge.export.bundle", description=__doc__)
    p.add_argument("run", type=Path, nargs="?",
                   help="finished training run folder (holds model.keras)")
    p.add_argument("--only", metavar="KEYS",
                   help="instead of bundling a run, export only these registry keys or formats "
                   "(comma-separated, e.g. openvino) from the bundled NAME.keras")
    p.add_argument("--data", type=Path, required=True, help="FER2013 CSV (.csv or .csv.gz)")
    p.add_argument("--name", default="default", help="bundled model name (default: default)")
    p.add_argument("--formats", metavar="KEYS",
                   help="export only these registry keys or formats (comma-separated, e.g. "
                   "tflite-int8,onnx-int8; default: all of them)")
    p.add_argument("--remeasure", action="store_true",
                   help="instead of bundling a run, score the bundled NAME and its exports "
                   "again and rewrite only the figures in their sidecars")
    p.add_argument("--ferplus", type=Path, metavar="CSV",
                   help="FER+ votes (fer2013new.csv): also score on the FER+ majority labels "
                   "(required for an 8-class FER+ model, which is scored on those only)")
    p.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if (args.run is not None) + (args.only is not None) + args.remeasure != 1:
        p.error("pass a run folder, or --only KEYS to export from the bundled model, or "
                "--remeasure to score it again")
    try:
        if args.remeasure:
            result = remeasure(args.data, args.name, models_dir=args.models_dir,
                               ferplus=args.ferplus)
        elif args.only:
            result = bundle_only(args.data, args.only, args.name, models_dir=args.models_dir,
                                 overwrite=args.overwrite)
        else:
            result = bundle(args.run, args.data, args.name, models_dir=args.models_dir,
                            overwrite=args.overwrite, formats=args.formats,
                            ferplus=args.ferplus)
    except EmotionEdgeError as exc:
        print(f"bundle: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str))
    failed = [a for a in result["artifacts"] if a.get("error")]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
