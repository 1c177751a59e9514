"""``emotion-edge predict``: recognise emotions on the faces in photos and folders of photos.

Prints one row per face (file, face index, box, label, score) as a table, ``--json`` or
``--csv``; files without a face and unreadable files get a row saying so. A bad file does
not stop the run, but the exit code is 1 when any file failed. ``--annotate OUTDIR`` writes
copies with boxes and labels drawn, never replacing a file unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, EmotionEdgeError
from .formats import BACKENDS
from .image import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

RED, WHITE = (230, 40, 40), (255, 255, 255)
CSV_COLUMNS = ("file", "face", "x0", "y0", "x1", "y1", "label", "score", "status")


@dataclass
class FileReport:
    """What happened to one input file: its faces, or why it has none."""

    file: str
    faces: list = field(default_factory=list)  # FaceResult
    error: str | None = None
    annotated: str | None = None

    @property
    def status(self) -> str:
        if self.error:
            return "error"
        return "ok" if self.faces else "no face"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER",
                        help="image files and/or folders (searched recursively)")
    parser.add_argument("--model", default=None,
                        help="a .tflite/.onnx/.keras file or a bundled model's name "
                             "(default: the bundled TFLite int8 model)")
    parser.add_argument("--backend", choices=sorted(BACKENDS), default=None,
                        help="engine (default: the model format's own)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the engine")
    parser.add_argument("--no-detect", action="store_true",
                        help="take each whole image as one face (for face crops)")
    parser.add_argument("--detector", default="blazeface",
                        help="face detector: blazeface, blazeface-full (small faces) or haar")
    parser.add_argument("--tiling", type=int, default=0, metavar="N",
                        help="also detect on overlapping tiles (1-2) to find small faces in "
                             "group photos; with --detector blazeface-full --tiling 1 "
                             "22 of the 23 faces of the NASA class photo are found")
    parser.add_argument("--score-threshold", type=float, default=None,
                        help="minimum face detection score (default: the detector's own)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON")
    output.add_argument("--csv", action="store_true", help="print CSV")
    parser.add_argument("--annotate", type=Path, metavar="OUTDIR", default=None,
                        help="write copies of the images with boxes and labels to OUTDIR")
    parser.add_argument("--overwrite", action="store_true",
                        help="let --annotate replace files that already exist")


def find_images(inputs: list[str]) -> list[tuple[Path, str | None]]:
    """Each input file, and the image files inside each folder (sorted); a missing input
    comes with its error."""
    found: list[tuple[Path, str | None]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            images = sorted(p for p in path.rglob("*")
                            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                log.warning("%s: no image files in this folder", path)
            found.extend((p, None) for p in images)
        elif path.exists():
            found.append((path, None))
        else:
            found.append((path, f"{path}: no such file or folder"))
    return found


def run(args: argparse.Namespace) -> int:
    from .image import read_image
    from .recognizer import EmotionRecognizer, RecognizerOptions

    if args.annotate is not None and Path(args.annotate).exists() and not Path(
            args.annotate).is_dir():
        raise ConfigError(f"--annotate {args.annotate}: exists and is not a folder")
    options = RecognizerOptions(model=args.model, backend=args.backend, threads=args.threads,
                                detect_faces=not args.no_detect, detector=args.detector,
                                tiling=args.tiling, score_threshold=args.score_threshold)
    reports: list[FileReport] = []
    used_names: set[str] = set()
    with EmotionRecognizer(options) as recognizer:
        for path, error in find_images(args.inputs):
            report = FileReport(str(path), error=error)
            reports.append(report)
            if error:
                continue
            try:
                pixels = read_image(path)
                report.faces = recognizer.analyze(pixels, name=str(path))
                if args.annotate is not None:
                    target = annotated_path(args.annotate, path, used_names)
                    report.annotated = str(annotate(pixels, report.faces, target,
                                                    overwrite=args.overwrite))
            except EmotionEdgeError as exc:
                report.error = str(exc)
            if report.error:
                log.warning("%s", report.error)
    write_reports(reports, "json" if args.json else "csv" if args.csv else "table")
    failed = sum(1 for r in reports if r.error)
    if failed:
        log.error("%d of %d files failed", failed, len(reports))
    return 1 if failed else 0


def write_reports(reports: list[FileReport], style: str) -> None:
    out = sys.stdout
    if style == "json":
        json.dump([_report_dict(r) for r in reports], out, indent=2)
        out.write("\n")
        return
    rows = [row for r in reports for row in _rows(r)]
    if style == "csv":
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)
        return
    file_width = max((len(row[0]) for row in rows), default=4)
    out.write(f"{'file':<{file_width}}  face  {'box (x0,y0,x1,y1)':<20}  label     score\n")
    for file, face, *box, label, score, status in rows:
        if face == "":
            out.write(f"{file:<{file_width}}  {'-':>4}  {status}\n")
            continue
        box_text = ",".join(map(str, box))
        note = "" if status == "ok" else f"  ({status})"
        out.write(f"{file:<{file_width}}  {face:>4}  {box_text:<20}  {label:<9} {score}{note}\n")


def _rows(report: FileReport) -> list[tuple[Any, ...]]:
    status = f"error: {report.error}" if report.error else report.status
    if not report.faces:
        return [(report.file, "", "", "", "", "", "", "", status)]
    return [(report.file, i, *(round(v) for v in face.box), face.label, f"{face.score:.3f}",
             status) for i, face in enumerate(report.faces)]


def _report_dict(report: FileReport) -> dict[str, Any]:
    return {"file": report.file, "status": report.status, "error": report.error,
            "faces": [{"index": i, **face.to_dict()} for i, face in enumerate(report.faces)],
            "annotated": report.annotated}


def annotated_path(outdir: Path, source: Path, used: set[str]) -> Path:
    """``OUTDIR/<stem>_emotions.png``, numbered when two inputs share a stem in one run."""
    name, n = f"{source.stem}_emotions.png", 1
    while name in used:
        n += 1
        name = f"{source.stem}_emotions-{n}.png"
    used.add(name)
    return outdir / name


def annotate(pixels, faces: list, target: Path, *, overwrite: bool = False) -> Path:
    """Draw each face's box and ``label score`` on a copy of ``pixels`` and save it."""
    from PIL import Image, ImageDraw, ImageFont

    if target.exists() and not overwrite:
        raise ConfigError(f"{target}: already exists; pass --overwrite to replace it")
    image = Image.fromarray(pixels).convert("RGB")
    draw = ImageDraw.Draw(image)
    short_side = min(image.size)
    width = max(2, round(short_side / 250))
    font = ImageFont.load_default(size=max(12, round(short_side / 30)))
    for face in faces:
        x0, y0, x1, y1 = face.box
        draw.rectangle((x0, y0, x1, y1), outline=RED, width=width)
        text = f"{face.label} {face.score:.0%}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        label_height = bottom - top + 2 * width
        label_y = y0 - label_height if y0 >= label_height else y0  # above the box if it fits
        draw.rectangle((x0, label_y, x0 + right - left + 2 * width, label_y + label_height),
                       fill=RED)
        draw.text((x0 + width - left, label_y + width - top), text, fill=WHITE, font=font)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        image.save(target)
    except OSError as exc:
        raise ConfigError(f"{target}: cannot write the annotated image ({exc})") from None
    return target
