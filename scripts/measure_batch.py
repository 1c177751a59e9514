"""Measure ``emotion-edge batch`` against ``emotion-edge predict`` on one folder.

Profiles the steps of one image on one thread (reading, decoding, detection and
classification, in CPU ms) and runs ``predict --json --threads 1`` once; then for each
``--workers`` count it starts a fresh local Ray (one engine thread per actor) and runs the
batch job on the whole folder and on its first few files. Prints one JSON report: images/s
of each; Ray's start-up apart from the pipeline; a job's fixed cost (the small job) and the
marginal images/s beyond it; the scaling efficiency between the first and last worker
counts; and whether the batch rows equal predict's faces (labels exactly, boxes to
predict's 0.1 px rounding, probabilities to 1e-5). ``--rounds`` repeats predict and the
batch runs, interleaved, and the report gives the median of each number beside every round,
because the machine is shared.

    python scripts/make_batch_folder.py --out /tmp/batch_faces
    python scripts/measure_batch.py /tmp/batch_faces --workers 1 2
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import time
from pathlib import Path

import pyarrow.parquet as pq
from emotion_edge.batch import run_batch, start_ray, stop_ray
from emotion_edge.runtime import BadImageError, EmotionRecognizer, RecognizerOptions
from emotion_edge.runtime.image import is_image_file, read_image

from emotion_edge.cli import main as cli_main

#: Files in the small job whose time is taken as a job's fixed cost.
SMALL_JOB = 5


def run_predict(folder: Path) -> tuple[float, list[dict]]:
    out = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out):
        cli_main(["predict", str(folder), "--json", "--threads", "1"])
    return time.perf_counter() - start, json.loads(out.getvalue())


def compare(reports: list[dict], parquet: Path) -> dict:
    """How far the batch rows are from predict's faces."""
    rows: dict[str, list[dict]] = {}
    for row in pq.read_table(parquet).to_pylist():
        rows.setdefault(row["path"], []).append(row)
    mismatched, box_diff, prob_diff, faces = [], 0.0, 0.0, 0
    for report in reports:
        got = sorted(rows.get(str(Path(report["file"]).absolute()), []),
                     key=lambda r: r["face"] or 0)
        labelled = [r for r in got if r["label"]]
        if [r["status"] for r in got] != [report["status"]] * max(1, len(report["faces"])) or [
                r["label"] for r in labelled] != [f["label"] for f in report["faces"]]:
            mismatched.append(report["file"])
            continue
        for row, face in zip(labelled, report["faces"], strict=True):
            faces += 1
            x0, y0, x1, y1 = face["box"]
            box = (row["x"], row["y"], row["x"] + row["w"], row["y"] + row["h"])
            box_diff = max(box_diff, *(abs(a - b) for a, b in zip(box, (x0, y0, x1, y1),
                                                                 strict=True)))
            prob_diff = max(prob_diff, *(abs(row[f"p_{k}"] - v)
                                         for k, v in face["probabilities"].items()))
    return {"files": len(reports), "faces": faces, "mismatched_files": mismatched,
            "max_box_diff_px": round(box_diff, 4), "max_probability_diff": prob_diff,
            "equal": not mismatched and box_diff <= 0.05 + 1e-6 and prob_diff <= 1e-5}


def profile_stages(folder: Path) -> dict:
    """Milliseconds of CPU per image for each step, in this one process on one thread:
    reading the file, decoding it, and detection plus classification (split by the
    recognizer's own wall-clock timings); broken files are left out."""
    cpu = {"read": 0.0, "decode": 0.0, "detect_and_classify": 0.0}
    wall = {"detection": 0.0, "classification": 0.0}
    count, size = 0, 0
    with EmotionRecognizer(RecognizerOptions(threads=1)) as recognizer:
        for path in sorted(p for p in folder.iterdir() if is_image_file(p)):
            start = time.process_time()
            data = path.read_bytes()
            read = time.process_time()
            try:
                pixels = read_image(data, name=str(path))
            except BadImageError:
                continue
            decoded = time.process_time()
            recognizer.analyze(pixels)
            done = time.process_time()
            count += 1
            size += len(data)
            cpu["read"] += read - start
            cpu["decode"] += decoded - read
            cpu["detect_and_classify"] += done - decoded
            wall["detection"] += recognizer.timings.detection_ms
            wall["classification"] += recognizer.timings.classification_ms
    share = wall["detection"] / (wall["detection"] + wall["classification"])
    return {"images": count, "kilobytes_per_image": round(size / count / 1e3, 1),
            **{f"{k}_cpu_ms": round(v * 1e3 / count, 2) for k, v in cpu.items()},
            "detection_share_of_detect_and_classify": round(share, 3)}


def measure_batch(folder: Path, out_dir: Path, workers: int, reports: list[dict]) -> dict:
    """One fresh local Ray: the whole folder, then a job of SMALL_JOB files for the fixed
    cost of a job (actor start-up, model load, scheduling) on the warm instance."""
    options, out = RecognizerOptions(), out_dir / f"workers{workers}.parquet"
    ray_start_s = start_ray()
    try:
        summary = run_batch([str(folder)], str(out), options, workers=workers, overwrite=True)
        small = sorted(str(p.absolute()) for p in folder.iterdir())[:SMALL_JOB]
        fixed = run_batch(small, str(out_dir / f"small{workers}.parquet"), options,
                          workers=workers, overwrite=True)
    finally:
        stop_ray()
    return {"ray_start_s": round(ray_start_s, 2), "pipeline_s": round(summary.seconds, 2),
            "images_per_s": round(summary.images_per_s, 2),
            "images_per_s_with_start": round(
                summary.files / (summary.seconds + ray_start_s), 2),
            f"job_of_{SMALL_JOB}_files_s": round(fixed.seconds, 2),
            "marginal_images_per_s": round(
                (summary.files - fixed.files) / (summary.seconds - fixed.seconds), 2),
            "parity_with_predict": compare(reports, out)}


def one_round(folder: Path, out: Path, workers: list[int]) -> dict:
    """predict, then the batch job at each worker count, back to back."""
    predict_s, reports = run_predict(folder)
    result = {"load_average": os.getloadavg()[0],
              "predict": {"seconds": round(predict_s, 2),
                          "images_per_s": round(len(reports) / predict_s, 2)}}
    for count in workers:
        result[f"batch_workers_{count}"] = measure_batch(folder, out, count, reports)
    return result


def medians(rounds: list[dict]) -> dict:
    """The median of every number over the rounds, per configuration."""
    return {config: {key: round(statistics.median(r[config][key] for r in rounds), 2)
                     for key, value in rounds[0][config].items()
                     if isinstance(value, (int, float))}
            for config in rounds[0] if isinstance(rounds[0][config], dict)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3,
                        help="repeat predict and every batch run this many times, interleaved")
    parser.add_argument("--out", type=Path, default=Path("/tmp/batch_measure"),
                        help="folder for the batch outputs (replaced on each run)")
    args = parser.parse_args()
    stages = profile_stages(args.folder)
    rounds = [one_round(args.folder, args.out, args.workers) for _ in range(args.rounds)]
    median = medians(rounds)
    first, last = (median[f"batch_workers_{w}"] for w in (args.workers[0], args.workers[-1]))
    efficiency = {key: round(last[key] / first[key] * args.workers[0] / args.workers[-1], 3)
                  for key in ("images_per_s", "marginal_images_per_s")}
    parity = [r[f"batch_workers_{w}"]["parity_with_predict"] for r in rounds
              for w in args.workers]
    print(json.dumps({"files": parity[0]["files"], "faces": parity[0]["faces"],
                      "cpu_count": os.cpu_count(), "stages_per_image": stages,
                      "median": median, "scaling_efficiency": efficiency,
                      "rows_equal_predict_in_every_run": all(p["equal"] for p in parity),
                      "rounds": rounds}, indent=2))


if __name__ == "__main__":
    main()
