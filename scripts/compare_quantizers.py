"""Compare the LiteRT quantiser (ai-edge-quantizer) with the converter's int8 on PublicTest.

Quantises the bundled ``default.fp32.tflite`` with ai-edge-quantizer's ``static_wi8_ai8``
recipe, calibrated on the same images as the bundled ``default.int8.tflite`` (the
converter's full-integer path), and measures both on PublicTest: top-1 accuracy,
agreement with the Keras fp32 model, and p50 latency at batch 1 on one thread.
ai-edge-quantizer is not a dependency of the package: ``make compare-quantizers``
installs it into ``.cache/aeq`` (outside the venv) and runs this script.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from emotion_edge.data.datasets import load_split
from emotion_edge.export.calibration import calibration_set
from emotion_edge.runtime import load_predictor, prepare_batch
from emotion_edge.runtime.bundled import models_dir
from emotion_edge.runtime.sidecar import InputSpec, read_sidecar, sha256_of, write_sidecar


def quantise(fp32: Path, out: Path, calibration: np.ndarray, one_batch: bool) -> None:
    from ai_edge_quantizer import quantizer, recipe

    qt = quantizer.Quantizer(str(fp32))
    qt.load_quantization_recipe(recipe.static_wi8_ai8())
    # One sample per image makes its min/max a moving average (it clips); one batch of
    # all images makes it the overall min/max, as the converter computes it.
    samples = ([{"image": calibration.astype(np.float32)}] if one_batch
               else [{"image": x[None].astype(np.float32)} for x in calibration])
    qt.quantize(qt.calibrate({"serving_default": samples}, num_threads=1)).export_model(
        str(out), overwrite=True)


def predict_all(model: Path, x: np.ndarray) -> np.ndarray:
    with load_predictor(model, threads=1) as p:
        return p.predict_batch(x)


def p50_ms(model: Path, x: np.ndarray, warmup: int = 20, runs: int = 300) -> float:
    with load_predictor(model, threads=1) as p:
        for i in range(warmup):
            p.predict(x[i:i + 1])
        times = []
        for i in range(runs):
            start = time.perf_counter()
            p.predict(x[i:i + 1])
            times.append((time.perf_counter() - start) * 1e3)
    return round(statistics.median(times), 4)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/fer2013/fer2013.csv.gz"))
    ap.add_argument("--out", type=Path, default=Path(".cache/aeq/out"))
    args = ap.parse_args()
    models = models_dir()
    args.out.mkdir(parents=True, exist_ok=True)
    ours = models / "default.int8.tflite"
    meta = read_sidecar(ours)
    spec, labels = InputSpec.from_dict(meta["input"]), tuple(meta["labels"])
    cal = meta["export"]["calibration"]
    calibration = calibration_set(args.data, labels, spec, size=cal["images"], seed=cal["seed"]).x

    candidates = {"converter int8 (bundled)": ours}
    for one_batch in (False, True):
        path = args.out / f"default.aeq{'_onebatch' if one_batch else ''}.int8.tflite"
        quantise(models / "default.fp32.tflite", path, calibration, one_batch)
        side = dict(meta, sha256=sha256_of(path), size_bytes=path.stat().st_size,
                    io={"input": "int8", "output": "int8"})
        side.pop("parity", None)
        side.pop("accuracy", None)
        write_sidecar(path, side)
        name = "ai-edge-quantizer static_wi8_ai8, " + ("one batch" if one_batch else "per image")
        candidates[name] = path

    val = load_split(args.data, "val", labels=labels, size=spec.height, channels=spec.channels)
    x = prepare_batch(list(val.x), spec)
    reference = predict_all(models / "default.keras", x).argmax(1)
    rows = {}
    for name, path in candidates.items():
        top1 = predict_all(path, x).argmax(1)
        rows[name] = {"publictest_accuracy": round(float((top1 == val.y).mean()), 4),
                      "agreement_with_keras_fp32": round(float((top1 == reference).mean()), 4),
                      "size_bytes": path.stat().st_size, "p50_ms_1_thread": p50_ms(path, x)}
    report = {"images": int(len(val.y)),
              "keras_fp32_publictest_accuracy": round(float((reference == val.y).mean()), 4),
              "rows": rows}
    (args.out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
