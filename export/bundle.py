"""Ship a trained run as a bundled model: ``python -m emotion_edge.export.bundle``.

Copies ``RUN/model.keras`` into ``runtime/models/NAME.keras``, measures its PublicTest
and PrivateTest accuracy with ``emotion-edge evaluate`` into its sidecar, then exports it
to every format and precision of the format registry beside it (``export --all``). This is
the last step of ``make bundle-default``; nothing is replaced without ``--overwrite``.
``--only KEYS`` instead exports just those registry rows from the bundled ``NAME.keras``
(e.g. ``--only openvino`` after the registry gained OpenVINO), without retraining.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path

from ..runtime.errors import ConfigError, EmotionEdgeError
from ..runtime.sidecar import read_sidecar, sha256_of, sidecar_path, write_sidecar

log = logging.getLogger(__name__)
MODELS_DIR = Path(__file__).resolve().parents[1] / "runtime" / "models"


def bundle(run_dir: Path, data: Path, name: str = "default", *, models_dir: Path = MODELS_DIR,
           overwrite: bool = False) -> dict:
    from ..data.evaluate import evaluate
    from .exporter import ExportOptions, export_all

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
    command = "emotion-edge evaluate {} --data {} --split {}"
    accuracy = {}
    for split, key in (("val", "publictest"), ("test", "privatetest")):
        report = evaluate(str(target), str(data), split)
        accuracy[key] = report["accuracy"]
        accuracy[f"{key}_macro_f1"] = report["macro_f1"]
        accuracy[f"{key}_images"] = report["images_scored"]
    accuracy["measured_by"] = command.format(target.name, data, "val|test")
    accuracy["reproduce"] = "make train-default bundle-default"
    meta["accuracy"] = accuracy
    write_sidecar(target, meta)
    log.info("%s: PublicTest %.4f, PrivateTest %.4f", target.name, accuracy["publictest"],
             accuracy["privatetest"])
    rows = export_all(target, ExportOptions(calibration_data=data, overwrite=overwrite,
                                            command=_command()))
    return {"model": str(target), "accuracy": accuracy,
            "artifacts": [row.__dict__ for row in rows],
            "sidecar": str(sidecar_path(target))}


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
    return {"model": str(target), "artifacts": [row.__dict__ for row in made]}


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
    p.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if (args.run is None) == (args.only is None):
        p.error("pass a run folder, or --only KEYS to export from the bundled model")
    try:
        if args.only:
            result = bundle_only(args.data, args.only, args.name, models_dir=args.models_dir,
                                 overwrite=args.overwrite)
        else:
            result = bundle(args.run, args.data, args.name, models_dir=args.models_dir,
                            overwrite=args.overwrite)
    except EmotionEdgeError as exc:
        print(f"bundle: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str))
    failed = [a for a in result["artifacts"] if a.get("error")]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
