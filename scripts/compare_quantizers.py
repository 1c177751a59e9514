"""Compare other int8 quantisers with the bundled int8 artifacts on PublicTest.

Default: quantises the bundled ``default.fp32.tflite`` with ai-edge-quantizer's
``static_wi8_ai8`` recipe, calibrated on the same images as the bundled
``default.int8.tflite`` (the converter's full-integer path). ``--openvino``: quantises the
bundled ``default.fp32.openvino.xml`` with NNCF's post-training ``nncf.quantize`` on the
same images as the bundled ``default.int8.openvino.xml`` (converted from the ONNX QDQ model).
Each is measured on PublicTest: top-1 accuracy, agreement with the Keras fp32 model, and p50
latency at batch 1 on one thread. Neither quantiser is a dependency of the package:
``make compare-quantizers`` installs ai-edge-quantizer into ``.cache/aeq`` and
``pip install --target .cache/nncf/site nncf==3.4.0`` NNCF (outside the venv); run with
``PYTHONPATH`` pointing there.
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
from emotion_edge.runtime.formats import find_format, format_of
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


def quantise_nncf(fp32_xml: Path, out_xml: Path, calibration: np.ndarray) -> None:
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(fp32_xml))
    dataset = nncf.Dataset([x[None] for x in calibration.astype(np.float32)])
    ov.save_model(nncf.quantize(model, dataset, subset_size=len(calibration)), str(out_xml),
                  compress_to_fp16=False)


def litert_candidates(models: Path, out: Path, data: Path) -> tuple[dict[str, Path], dict]:
    ours = models / "default.int8.tflite"
    meta = read_sidecar(ours)
    calibration = _calibration(meta, data)
    candidates = {"converter int8 (bundled)": ours}
    for one_batch in (False, True):
        path = out / f"default.aeq{'_onebatch' if one_batch else ''}.int8.tflite"
        quantise(models / "default.fp32.tflite", path, calibration, one_batch)
        _write_sidecar(path, meta, sha256_of(path), path.stat().st_size,
                       io={"input": "int8", "output": "int8"})
        name = "ai-edge-quantizer static_wi8_ai8, " + ("one batch" if one_batch else "per image")
        candidates[name] = path
    return candidates, meta


def openvino_candidates(models: Path, out: Path, data: Path) -> tuple[dict[str, Path], dict]:
    ours = models / "default.int8.openvino.xml"
    meta = read_sidecar(ours)
    path = out / "default.nncf.int8.openvino.xml"
    quantise_nncf(models / "default.fp32.openvino.xml", path, _calibration(meta, data))
    row = find_format("openvino", "int8")
    _write_sidecar(path, meta, row.sha256(path), row.size_bytes(path))
    return {"OpenVINO IR of the ONNX QDQ model (bundled)": ours,
            "NNCF quantize on the fp32 IR": path}, meta


def _calibration(meta: dict, data: Path) -> np.ndarray:
    spec, labels = InputSpec.from_dict(meta["input"]), tuple(meta["labels"])
    cal = meta["export"]["calibration"]
    return calibration_set(data, labels, spec, size=cal["images"], seed=cal["seed"]).x


def _write_sidecar(path: Path, meta: dict, sha256: str, size: int, **changes) -> None:
    side = dict(meta, sha256=sha256, size_bytes=size, **changes)
    for key in ("parity", "accuracy", "files"):
        side.pop(key, None)
    write_sidecar(path, side)


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
    ap.add_argument("--out", type=Path, help="default: .cache/aeq/out or .cache/nncf/out")
    ap.add_argument("--openvino", action="store_true",
                    help="compare NNCF with the bundled OpenVINO int8 IR instead")
    args = ap.parse_args()
    models = models_dir()
    out = args.out or Path(".cache/nncf/out" if args.openvino else ".cache/aeq/out")
    out.mkdir(parents=True, exist_ok=True)
    make = openvino_candidates if args.openvino else litert_candidates
    candidates, meta = make(models, out, args.data)
    spec, labels = InputSpec.from_dict(meta["input"]), tuple(meta["labels"])

    val = load_split(args.data, "val", labels=labels, size=spec.height, channels=spec.channels)
    x = prepare_batch(list(val.x), spec)
    reference = predict_all(models / "default.keras", x).argmax(1)
    rows = {}
    for name, path in candidates.items():
        top1 = predict_all(path, x).argmax(1)
        rows[name] = {"publictest_accuracy": round(float((top1 == val.y).mean()), 4),
                      "agreement_with_keras_fp32": round(float((top1 == reference).mean()), 4),
                      "size_bytes": format_of(path, read_sidecar(path)).size_bytes(path),
                      "p50_ms_1_thread": p50_ms(path, x)}
    report = {"images": int(len(val.y)),
              "keras_fp32_publictest_accuracy": round(float((reference == val.y).mean()), 4),
              "rows": rows}
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
