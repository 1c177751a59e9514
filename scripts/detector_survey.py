"""Survey every registered face detector, at its default options, on the shared test photos.

For each detector: faces found in each demo photo (the NASA class photo has 23, the
portraits 1 each, the cat none), the share of FER2013 PrivateTest images (48x48, upscaled
to 256 px) in which it finds a face, the worst true and best false score in the demo
photos (taking each photo's n best scores as its n faces), and the median time per
photo on one thread: CPU time of this process (what a quiet core would take) and wall
time (inflated when other work shares the cores).

    .venv/bin/python scripts/detector_survey.py [--shared ../shared] [--fer 300] [--runs 20]

Prints a Markdown table; the README's detector numbers come from it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from emotion_edge.data.datasets import load_split
from emotion_edge.runtime.detectors import DETECTORS, build_detector
from emotion_edge.runtime.errors import BackendUnavailableError
from emotion_edge.runtime.image import read_image, resize

PHOTOS = {"nasa_astronaut_class.jpg": 23, "grace_hopper.jpg": 1, "astronaut.png": 1,
          "camera.png": 1, "chelsea.png": 0}
#: Photos timed: the class photo (640x280) and the astronaut portrait stretched to 640x480.
TIMED = ("nasa_astronaut_class.jpg", "640x480")


def fer_crops(shared: Path, count: int) -> list[np.ndarray]:
    """The first ``count`` FER2013 PrivateTest images, upscaled from 48 to 256 pixels."""
    split = load_split(shared / "data" / "fer2013" / "fer2013.csv.gz", "test")
    return [resize(np.ascontiguousarray(image), 256, 256) for image in split.x[:count]]


def median_ms(detector, image: np.ndarray, runs: int) -> tuple[float, float]:
    """Median CPU and wall milliseconds of one ``detect`` call."""
    detector.detect(image)
    cpu, wall = [], []
    for _ in range(runs):
        c, w = time.process_time(), time.perf_counter()
        detector.detect(image)
        cpu.append((time.process_time() - c) * 1e3)
        wall.append((time.perf_counter() - w) * 1e3)
    return statistics.median(cpu), statistics.median(wall)


def survey(name: str, photos: dict[str, np.ndarray], fer: list[np.ndarray],
           runs: int) -> list[str]:
    """One table row for the detector ``name``."""
    with build_detector(name, score_threshold=0.3) as loose:
        scores = {p: [f.score for f in loose.detect(image)] for p, image in photos.items()}
    with build_detector(name, threads=1) as detector:
        found = {p: len(detector.detect(image)) for p, image in photos.items()}
        fer_hits = sum(bool(detector.detect(image)) for image in fer)
        times = [median_ms(detector, photos[p], runs) for p in TIMED]
    true = [s for p, n in PHOTOS.items() for s in sorted(scores[p], reverse=True)[:n]]
    false = [s for p, n in PHOTOS.items() for s in sorted(scores[p], reverse=True)[n:]]
    return [name, *(str(found[p]) for p in PHOTOS), f"{fer_hits}/{len(fer)}",
            f"{min(true, default=0):.2f}", f"{max(false, default=0):.2f}",
            *(f"{cpu:.1f} / {wall:.1f}" for cpu, wall in times)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--fer", type=int, default=300, help="FER2013 images to try")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per photo")
    args = parser.parse_args()
    photos = {p: read_image(args.shared / "data" / "demo_faces" / p) for p in PHOTOS}
    photos["640x480"] = resize(photos["astronaut.png"], 640, 480)
    fer = fer_crops(args.shared, args.fer)
    header = ["detector", *(f"{p} ({n})" for p, n in PHOTOS.items()), "FER2013 @256",
              "worst true score", "best false score",
              *(f"ms {p} (CPU / wall)" for p in TIMED)]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for name in DETECTORS:
        try:
            print("| " + " | ".join(survey(name, photos, fer, args.runs)) + " |")
        except BackendUnavailableError as exc:
            print(f"| {name} | skipped: {exc} |")


if __name__ == "__main__":
    main()
