"""Time training steps of a registered model under float32 and mixed_bfloat16.

    python scripts/train_speed.py --model vgg_wide --steps 15

Prints ms per step (batch 64) for each policy, measured in one process one after the
other, and whether the CPU has avx512_bf16. Take the ratio, not the absolute numbers:
other work on the machine slows both.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def ms_per_step(name: str, policy: str, steps: int, batch: int) -> float:
    import keras
    import numpy as np
    from emotion_edge.train.models import build_model

    keras.mixed_precision.set_global_policy(policy)
    model = build_model(name)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.random((batch, 48, 48, 1), np.float32)
    y = np.eye(7, dtype=np.float32)[rng.integers(0, 7, batch)]
    for _ in range(3):
        model.train_on_batch(x, y)
    started = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return (time.perf_counter() - started) / steps * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vgg_wide")
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    print(f"avx512_bf16: {'yes' if 'avx512_bf16' in flags else 'no'}")
    times = {p: ms_per_step(args.model, p, args.steps, args.batch_size)
             for p in ("float32", "mixed_bfloat16")}
    for policy, ms in times.items():
        print(f"{args.model} {policy}: {ms:.1f} ms/step (batch {args.batch_size})")
    print(f"mixed_bfloat16 / float32: {times['mixed_bfloat16'] / times['float32']:.2f}")


if __name__ == "__main__":
    main()
