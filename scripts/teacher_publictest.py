"""PublicTest accuracy of candidate teachers, alone and as an ensemble, as distillation
would see them (each model's probabilities averaged with its mirror image's).

    python scripts/teacher_publictest.py teachers/accurate-v1.keras checkpoints/other.keras

Picks the teacher of the distilled default on PublicTest only; PrivateTest is not read.
"""

from __future__ import annotations

import argparse

import numpy as np
from emotion_edge.data.datasets import load_fer2013
from emotion_edge.runtime.labels import FER2013_LABELS
from emotion_edge.train.distill import teacher_probabilities


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--data", default="../shared/data/fer2013/fer2013.csv.gz")
    args = parser.parse_args()
    val = load_fer2013(args.data)["val"]
    probs = {m: teacher_probabilities(m, val.x, FER2013_LABELS) for m in args.models}
    for model, p in probs.items():
        print(f"{model}: PublicTest {np.mean(p.argmax(1) == val.y):.4f} (with its mirror)")
    if len(probs) > 1:
        mean = np.mean(list(probs.values()), axis=0)
        print(f"ensemble of {len(probs)}: PublicTest {np.mean(mean.argmax(1) == val.y):.4f}")


if __name__ == "__main__":
    main()
