"""One artifact, one thread count, one fresh process: the measurements a benchmark row needs.

The parent (``runner``) writes a request JSON and runs
``python -m emotion_edge.benchmarks.child REQUEST RESULT``. This process imports only the
runtime and the one engine the artifact needs, so its peak resident memory
(``ru_maxrss``) belongs to that artifact alone. In order it measures: engine import, model
load, first inference, latency at batch 1, throughput at larger batches, peak memory; then
(not counted in the memory figure) the predictions on each evaluation set and the
end-to-end ``analyze()`` time on photos.

A request naming several ``artifacts`` instead times them against each other, round by
round in this one process (``measure_head_to_head``): the bench's ratio to the peer.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime import EmotionEdgeError, EmotionRecognizer, RecognizerOptions, load_predictor
from ..runtime.formats import BACKENDS, import_object
from ..runtime.image import read_image
from ..runtime.predictor import Predictor
from ..runtime.preprocess import prepare_batch

EVAL_BATCH = 64


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB.

    On Linux this is ``VmHWM`` of ``/proc/self/status``: ``ru_maxrss`` would carry over the
    parent's peak, because the kernel keeps the larger of the pre-exec and current peaks
    across fork and exec. Elsewhere ``ru_maxrss`` (KiB on Linux/BSD, bytes on macOS).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _timed_ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / 1e6


def latency_stats(samples_ms: list[float]) -> dict[str, float]:
    arr = np.asarray(samples_ms, dtype=np.float64)
    return {"mean_ms": float(arr.mean()), "p50_ms": float(np.percentile(arr, 50)),
            "p90_ms": float(np.percentile(arr, 90)), "p99_ms": float(np.percentile(arr, 99)),
            "min_ms": float(arr.min()), "max_ms": float(arr.max())}


def random_batch(predictor: Predictor, n: int, seed: int) -> np.ndarray:
    """``n`` random uint8 crops of the model's input size, prepared by its input spec."""
    spec = predictor.input_spec
    shape = (n, spec.height, spec.width) + ((3,) if spec.channels == 3 else ())
    crops = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    return prepare_batch(list(crops), spec)


def _timed_calls(predictor: Predictor, x: np.ndarray, n: int) -> list[float]:
    return [_timed_ms(lambda: predictor.predict(x)) for _ in range(n)]


def measure_latency(predictor: Predictor, warmup: int, runs: int, seed: int) -> dict[str, Any]:
    x = random_batch(predictor, 1, seed)
    _timed_calls(predictor, x, warmup)
    samples = _timed_calls(predictor, x, runs)
    return {**latency_stats(samples), "warmup": warmup, "runs": runs, "samples_ms": samples}


def measure_throughput(predictor: Predictor, batch: int, warmup: int, runs: int,
                       seed: int) -> dict[str, float]:
    """Faces per second at ``batch``, from the median time of ``runs`` calls."""
    x = random_batch(predictor, batch, seed)
    for _ in range(warmup):
        predictor.predict(x)
    median = float(np.median([_timed_ms(lambda: predictor.predict(x)) for _ in range(runs)]))
    return {"batch_ms": median, "faces_per_s": batch * 1e3 / median, "runs": runs}


def measure_photos(request: dict[str, Any]) -> dict[str, Any]:
    """Mean ``analyze()`` time per photo, split into detection and classification."""
    options = RecognizerOptions(model=request["path"], backend=request["backend"],
                                threads=request["threads"])
    photos = []
    with EmotionRecognizer(options) as recognizer:
        for path in request["photos"]:
            image = read_image(path)
            recognizer.analyze(image)  # warm-up: first call builds buffers
            runs = []
            for _ in range(request["photo_runs"]):
                faces = recognizer.analyze(image)
                runs.append((recognizer.timings.detection_ms,
                             recognizer.timings.classification_ms))
            detection, classification = (float(v) for v in np.mean(runs, axis=0))
            photos.append({"photo": Path(path).name, "faces": len(faces),
                           "detection_ms": detection, "classification_ms": classification,
                           "total_ms": detection + classification,
                           "runs": request["photo_runs"]})
    return {"photos": photos}


#: Calls a file gets in a row within a head-to-head round: enough to keep its weights in cache,
#: few enough that every file's calls spread over the whole round.
BLOCK = 20


def measure_head_to_head(request: dict[str, Any]) -> dict[str, Any]:
    """Each artifact of ``request["artifacts"]`` loaded in this one process and timed against
    the others: after ``warmup`` calls each, ``rounds`` rounds, in each of which the files take
    turns in blocks of ``BLOCK`` calls of ``Predictor.predict`` on one random input until each
    has ``runs`` timed calls (the first file moves one place each block), so a change in the
    machine's speed reaches every file alike; returns each file's median per round, in the
    order given."""
    seed, runs = int(request.get("seed", 0)), request["runs"]
    predictors: list[Predictor] = []
    try:
        for artifact in request["artifacts"]:
            predictors.append(load_predictor(artifact["path"], backend=artifact["backend"],
                                             threads=request["threads"]))
        inputs = [random_batch(p, 1, seed) for p in predictors]
        for predictor, x in zip(predictors, inputs, strict=True):
            _timed_calls(predictor, x, request["warmup"])
        n, block = len(predictors), max(1, min(BLOCK, runs))
        medians: list[list[float]] = [[] for _ in predictors]
        for round_ in range(request["rounds"]):
            samples: list[list[float]] = [[] for _ in predictors]
            for turn in range(-(-runs // block)):
                for k in range(n):
                    i = (round_ + turn + k) % n
                    samples[i] += _timed_calls(predictors[i], inputs[i],
                                               min(block, runs - len(samples[i])))
            for i, timed in enumerate(samples):
                medians[i].append(float(np.median(timed)))
    finally:
        for predictor in predictors:
            predictor.close()
    return {"p50_ms": medians}


def measure(request: dict[str, Any]) -> dict[str, Any]:
    """Every measurement ``request`` asks for (see the module docstring for the order)."""
    seed = int(request.get("seed", 0))
    result: dict[str, Any] = {"baseline_rss_mb": peak_rss_mb()}
    engine = BACKENDS[request["backend"]].engine_class  # its module imports the engine
    result["engine_import_ms"] = _timed_ms(lambda: import_object(engine))
    import_object(engine).verify(Path(request["path"]))  # checks made once, before timing
    loaded: list[Predictor] = []
    result["load_ms"] = _timed_ms(lambda: loaded.append(load_predictor(
        request["path"], backend=request["backend"], threads=request["threads"])))
    with loaded[0] as predictor:
        x = random_batch(predictor, 1, seed)
        result["first_inference_ms"] = _timed_ms(lambda: predictor.predict(x))
        result["latency"] = measure_latency(predictor, request["warmup"], request["runs"], seed)
        result["throughput"] = {
            str(b): measure_throughput(predictor, b, request["batch_warmup"],
                                       request["batch_runs"], seed)
            for b in request["batches"]}
        result["peak_rss_mb"] = peak_rss_mb()
        result["predictions"] = {}
        for name, crops_path in request.get("eval", {}).items():
            probs = predictor.predict_batch(np.load(crops_path), batch_size=EVAL_BATCH)
            out = Path(request["eval_out"]) / f"{name}.npy"
            np.save(out, probs)
            result["predictions"][name] = str(out)
    if request.get("photos"):
        result["end_to_end"] = measure_photos(request)
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m emotion_edge.benchmarks.child REQUEST.json RESULT.json",
              file=sys.stderr)
        return 2
    request = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    try:
        result = (measure_head_to_head(request) if "artifacts" in request
                  else measure(request))
    except EmotionEdgeError as exc:
        result = {"error": str(exc)}
    Path(args[1]).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
