"""Measure ``emotion-edge batch`` against ``emotion-edge predict`` on one folder.

Runs ``predict --json --threads 1`` once, then for each ``--workers`` count a fresh local
Ray (one engine thread per actor) with the batch job on the whole folder and on its first
few files, and prints one JSON report: images/s of each; Ray's start-up apart from the
pipeline; a job's fixed cost (the small job) and the marginal images/s beyond it; the
scaling efficiency between the first and last worker counts; and whether the batch rows
equal predict's faces (labels exactly, boxes to predict's 0.1 px rounding, probabilities
to 1e-5).

    python scripts/make_batch_folder.py --out /tmp/batch_faces
    python scripts/measure_batch.py /tmp/batch_faces --workers 1 2
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import time
from pathlib import Path

import pyarrow.parquet as pq
from emotion_edge.batch import run_batch, start_ray, stop_ray
from emotion_edge.runtime import RecognizerOptions

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
            prob_diff = max(prob_diff, *(abs(row[f"prob_{k}"] - v)
                                         for k, v in face["probabilities"].items()))
    return {"files": len(reports), "faces": faces, "mismatched_files": mismatched,
            "max_box_diff_px": round(box_diff, 4), "max_probability_diff": prob_diff,
            "equal": not mismatched and box_diff <= 0.05 + 1e-6 and prob_diff <= 1e-5}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=Path("/tmp/batch_measure"),
                        help="folder for the batch outputs (replaced on each run)")
    args = parser.parse_args()
    predict_s, reports = run_predict(args.folder)
    files = len(reports)
    result = {"files": files, "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
              "predict": {"seconds": round(predict_s, 2),
                          "images_per_s": round(files / predict_s, 2)}}
    for workers in args.workers:
        result[f"batch_workers_{workers}"] = measure_batch(args.folder, args.out, workers,
                                                           reports)
    first, last = (result[f"batch_workers_{w}"] for w in (args.workers[0], args.workers[-1]))
    for key in ("images_per_s", "marginal_images_per_s"):
        result[f"scaling_efficiency_{key}"] = round(
            last[key] / first[key] * args.workers[0] / args.workers[-1], 3)
    result["load_average_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
