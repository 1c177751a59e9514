"""``emotion-edge export``: turn a trained ``.keras`` model into the artifacts of the format
registry (TFLite, ONNX, OpenVINO)."""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import asdict, replace
from pathlib import Path

from ..runtime.errors import ConfigError
from ..runtime.formats import EXPORTABLE
from .calibration import DEFAULT_CALIBRATION_SIZE, DEFAULT_PARITY_SIZE
from .qat import QatOptions

EXPORT_FORMATS = tuple(dict.fromkeys(r.format for r in EXPORTABLE))
PRECISIONS = tuple(dict.fromkeys(r.precision for r in EXPORTABLE))


def add_arguments(p: argparse.ArgumentParser) -> None:
    q = QatOptions()
    p.add_argument("model", help="trained Keras model (*.keras, with its .json sidecar) or a "
                   "bundled model's name (default: written to --out or the current folder)")
    p.add_argument("--to", dest="format", help=f"format: {', '.join(EXPORT_FORMATS)}")
    p.add_argument("--precision", help=f"precision: {', '.join(PRECISIONS)} (see the format "
                   "registry: 'emotion-edge info --formats')")
    p.add_argument("--all", action="store_true",
                   help="export every format and precision and print a comparison table")
    p.add_argument("--only", metavar="KEYS",
                   help="with --all: only these registry keys or formats, comma-separated "
                   "(e.g. openvino or onnx-int8,openvino-int8)")
    p.add_argument("--out", help="output folder (default: beside the model)")
    p.add_argument("--calibration-data", metavar="PATH",
                   help="FER2013 CSV or image folder: calibrates int8/qat, checks parity")
    p.add_argument("--ferplus", metavar="CSV",
                   help="FER+ votes (fer2013new.csv): label the CSV's rows by their FER+ "
                   "majority (default for a model trained with --task ferplus: its votes file)")
    p.add_argument("--calibration-size", type=int, default=DEFAULT_CALIBRATION_SIZE,
                   metavar="N", help="training images to calibrate on, stratified by class "
                   f"(default {DEFAULT_CALIBRATION_SIZE})")
    p.add_argument("--parity-size", type=int, default=DEFAULT_PARITY_SIZE, metavar="N",
                   help=f"images to check parity on (default {DEFAULT_PARITY_SIZE})")
    p.add_argument("--int8-io", action="store_true",
                   help="int8 input and output for full-integer TFLite (default float)")
    p.add_argument("--qat-epochs", type=int, default=q.epochs,
                   help=f"QAT fine-tuning epochs (default {q.epochs})")
    p.add_argument("--qat-size", type=int, default=q.train_size, metavar="N",
                   help="training images for QAT (default: the whole training split)")
    p.add_argument("--eval-split", default="test",
                   help="split --all measures accuracy on: test (PrivateTest, default), val")
    p.add_argument("--seed", type=int, default=0, help="seed of the image samples and QAT")
    p.add_argument("--overwrite", action="store_true", help="replace existing artifacts")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _command(args: argparse.Namespace) -> str:
    """The command line that repeats this export, with every setting spelled out."""
    parts = ["emotion-edge", "export", args.model]
    parts += ["--all", "--eval-split", args.eval_split,
              *(["--only", args.only] if args.only else [])] if args.all else [
        "--to", args.format, "--precision", args.precision]
    for flag, value in (("--out", args.out), ("--calibration-data", args.calibration_data),
                        ("--ferplus", args.ferplus),
                        ("--calibration-size", args.calibration_size),
                        ("--parity-size", args.parity_size), ("--qat-epochs", args.qat_epochs),
                        ("--qat-size", args.qat_size), ("--seed", args.seed)):
        if value is not None:
            parts += [flag, str(value)]
    parts += [flag for flag, on in (("--int8-io", args.int8_io),
                                    ("--overwrite", args.overwrite)) if on]
    return shlex.join(parts)


def _source_model(model: str) -> tuple[Path, bool]:
    """The ``.keras`` file to export and whether it is a bundled one: a path, or a bundled
    model's name as ``predict`` takes it (``default`` or ``default.keras``)."""
    from ..runtime.bundled import keras_source, models_dir

    path = keras_source(model)
    return path, path.parent == models_dir()


def _options(args: argparse.Namespace):
    from .exporter import ExportOptions

    for name in ("calibration_size", "parity_size", "qat_epochs"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out}: exists and is not a folder")
    return ExportOptions(
        out_dir=Path(args.out) if args.out else None,
        calibration_data=Path(args.calibration_data) if args.calibration_data else None,
        ferplus=Path(args.ferplus) if args.ferplus else None,
        calibration_size=args.calibration_size, parity_size=args.parity_size,
        int8_io=args.int8_io, overwrite=args.overwrite, seed=args.seed,
        qat=QatOptions(epochs=args.qat_epochs, train_size=args.qat_size, seed=args.seed),
        command=_command(args))


def _table(rows) -> str:
    header = ("format", "precision", "size", "parity", "accuracy")
    lines = [header]
    for r in rows:
        size = f"{r.size_bytes / 1024:,.1f} KiB" if r.size_bytes is not None else "-"
        acc = f"{r.accuracy:.4f}" if r.accuracy is not None else "-"
        lines.append((r.format, r.precision, size, "FAILED" if r.error else r.parity, acc))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    table = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
             for line in lines]
    return "\n".join(table + [f"{r.format} {r.precision} failed: {r.error}"
                              for r in rows if r.error])


def run(args: argparse.Namespace) -> int:
    from ..runtime.formats import find_format
    from .exporter import export_all, export_model, select_rows

    if args.all and (args.format or args.precision):
        raise ConfigError("--all exports every format; drop --to and --precision")
    if args.only and not args.all:
        raise ConfigError("--only goes with --all; for one format pass --to and --precision")
    if not args.all and not (args.format and args.precision):
        raise ConfigError(f"pass --to ({', '.join(EXPORT_FORMATS)}) and --precision "
                          f"({', '.join(PRECISIONS)}), or --all")
    model, bundled = _source_model(args.model)
    options = _options(args)
    if bundled and options.out_dir is None:
        options = replace(options, out_dir=Path.cwd())  # never write into the package
    if args.all:
        rows = export_all(model, options, args.eval_split, select_rows(args.only))
        print(json.dumps([asdict(r) for r in rows], indent=2) if args.json else _table(rows))
        return 1 if any(r.error for r in rows) else 0
    row = find_format(args.format, args.precision)
    result = export_model(model, row.format, row.precision, options)
    if args.json:
        print(json.dumps({"path": str(result.path), "format": row.format,
                          "precision": row.precision, "size_bytes": result.size_bytes,
                          "quantization": result.quantization,
                          "parity": result.parity.to_dict()}, indent=2))
    else:
        print(f"{result.path}: {row.title}, {result.size_bytes:,} bytes, "
              f"parity {result.parity.describe()}")
    return 0
