"""``emotion-edge evaluate``: score any model the package can load on a labelled data set.

Works for every artifact the runtime loads (any format of the registry: ``.keras``,
``.tflite``, ``.onnx``, OpenVINO ``.xml``) on a FER2013 CSV split or an image folder,
through the runtime's one batched path (``Predictor.predict_batch``), which prepares the
images with the model's own input spec. Needs no TensorFlow unless the model is Keras.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", default=None,
                   help="model file (.keras/.tflite/.onnx/.xml) or bundled model name "
                        "(default: the bundled default)")
    p.add_argument("--data", required=True,
                   help="FER2013 CSV (.csv or .csv.gz) or image folder ROOT/<label>/*.png")
    p.add_argument("--split", default="test",
                   help="train, val (PublicTest) or test (PrivateTest, default)")
    p.add_argument("--ferplus", metavar="CSV",
                   help="FER+ votes (fer2013new.csv): score against the FER+ majority labels "
                        "on the rows the FER+ authors score on (single votes dropped as "
                        "outliers, then one emotion must hold over half the votes), and "
                        "without rows whose label the model does not know; the counts are "
                        "reported")
    p.add_argument("--backend", help="engine to run the model with (default: from its format)")
    p.add_argument("--threads", type=int, help="engine threads")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--flip-average", action="store_true",
                   help="test-time augmentation: average with the mirrored image (2x the cost)")
    p.add_argument("--json", metavar="OUT", help="write the full report as JSON ('-' = stdout)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")


def evaluate(model: str | None, data: str, split: str = "test", *, backend: str | None = None,
             threads: int | None = None, batch_size: int = 256,
             flip_average: bool = False, ferplus: str | None = None) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class scores and confusion matrix of ``model`` on ``data``.

    ``flip_average`` averages each image's probabilities with its mirror image's.
    """
    from ..runtime import load_predictor
    from .datasets import canonical_split, load_split
    from .metrics import classification_report

    with load_predictor(model, backend=backend, threads=threads) as predictor:
        spec = predictor.input_spec
        labels = tuple(predictor.labels)
        split_name = canonical_split(split)
        ds = load_split(data, split_name, labels=labels, size=spec.height, channels=spec.channels,
                        ferplus=ferplus)
        started = time.perf_counter()
        probs = predictor.predict_batch(ds.x, batch_size)
        if flip_average:  # the mirrored crops: the width axis reversed
            probs = (probs + predictor.predict_batch(ds.x[:, :, ::-1], batch_size)) / 2
        seconds = time.perf_counter() - started
        report = classification_report(ds.y, probs, labels)
        info = predictor.info
    report.update({
        "model": str(info.path),
        "format": info.format,
        "precision": info.precision,
        "backend": info.backend,
        "data": str(data),
        "labels_from": f"FER+ majority ({ferplus})" if ferplus else "the data set",
        "split": split_name,
        "flip_average": flip_average,
        "images_scored": report.pop("images"),
        "images_skipped": int(sum(ds.skipped.values())),
        "skipped": ds.skipped,
        "seconds": round(seconds, 3),
    })
    return report


def run(args: argparse.Namespace) -> int:
    from ..runtime.errors import ConfigError

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.json not in (None, "-"):
        if Path(args.json).is_dir():
            raise ConfigError(f"--json {args.json}: is a folder; give the report's file name")
        if Path(args.json).exists() and not args.overwrite:
            raise ConfigError(f"{args.json} already exists; pass --overwrite to replace it")
        if not Path(args.json).resolve().parent.is_dir():
            raise ConfigError(f"--json {args.json}: its folder does not exist")
    report = evaluate(args.model, args.data, args.split, backend=args.backend,
                      threads=args.threads, batch_size=args.batch_size,
                      flip_average=args.flip_average, ferplus=args.ferplus)
    if args.json == "-":
        print(json.dumps(report, indent=2))
        return 0
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"{report['model']} ({report['format']} {report['precision']}, {report['backend']}) "
          f"on {report['data']} [{report['split']}]")
    print(f"accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}  "
          f"images {report['images_scored']}  skipped {report['images_skipped']}")
    for label, row in report["per_class"].items():
        print(f"  {label:<9} precision {row['precision']:.3f}  recall {row['recall']:.3f}  "
              f"f1 {row['f1']:.3f}  n={row['support']}")
    for reason, count in report["skipped"].items():
        print(f"  skipped {count}: {reason}")
    return 0
