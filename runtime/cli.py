"""``emotion-edge predict``: recognise emotions on the faces in photos and folders of photos.

Prints one row per face (file, face index, box, label, score) as a table, ``--json`` or
``--csv`` (which add the detection score and every emotion's probability); files without a
face and unreadable files get a row saying so. A bad file does not stop the run, but the
exit code is 1 when any file failed, and 2 when no image file was found at all.
``--annotate OUTDIR`` writes copies with boxes and labels drawn, never replacing a file
unless ``--overwrite`` is given; the copies it writes are not read as inputs on a later run.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .bundled import model_help
from .detectors import (
    DEFAULT_DETECTOR,
    DETECTORS,
    PYRAMID_SIDE_RANGE,
    TILING_RANGE,
    DetectorOptions,
    detector_names,
)
from .errors import ConfigError, EmotionEdgeError
from .formats import BACKENDS, backend_help
from .image import IMAGE_SUFFIXES, is_image_file

log = logging.getLogger(__name__)

RED = (230, 40, 40)
CSV_COLUMNS = ("file", "face", "x0", "y0", "x1", "y1", "label", "score", "detection_score")
#: the names ``annotated_path`` gives: ``<stem>_emotions.png``, ``<stem>_emotions-2.png`` …
ANNOTATED_NAME = re.compile(r".*_emotions(-\d+)?\.png")


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
                        help=model_help())
    parser.add_argument("--backend", choices=sorted(BACKENDS), default=None,
                        help=backend_help())
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the engine")
    parser.add_argument("--no-detect", action="store_true",
                        help="take each whole image as one face (for face crops)")
    parser.add_argument("--detector", choices=detector_names(), default=DEFAULT_DETECTOR,
                        metavar="NAME", help="face detector: " + "; ".join(
                            f"{name}: {info.summary}" for name, info in DETECTORS.items()))
    parser.add_argument("--tiling", type=int, default=0, metavar="N",
                        help=f"blazeface and blazeface-full only: also detect on overlapping "
                             f"tiles of side (shorter side) / N, N in {TILING_RANGE[0]}-"
                             f"{TILING_RANGE[1]} (0: off)")
    parser.add_argument("--pyramid-side", type=int, default=None, metavar="PX",
                        help=f"blazeface-pyramid only: longest side of its finest level, "
                             f"{PYRAMID_SIDE_RANGE[0]}-{PYRAMID_SIDE_RANGE[1]} (default "
                             f"{DetectorOptions.pyramid_side}); larger finds smaller faces")
    parser.add_argument("--score-threshold", type=float, default=None,
                        help="minimum face detection score (default: the detector's own)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON")
    output.add_argument("--csv", action="store_true", help="print CSV")
    parser.add_argument("--annotate", type=Path, metavar="OUTDIR", default=None,
                        help="write copies of the images with boxes and labels to OUTDIR")
    parser.add_argument("--overwrite", action="store_true",
                        help="let --annotate replace files that already exist")


def find_images(inputs: list[str],
                annotate_dir: Path | None = None) -> list[tuple[Path, str | None]]:
    """Each input file, and the image files inside each folder (sorted); a missing input or
    a folder without images comes with its error. Annotated copies in ``annotate_dir`` are
    left out."""
    found: list[tuple[Path, str | None]] = []
    for item in inputs:
        path = Path(item)
        try:
            is_dir, exists = path.is_dir(), path.exists()
        except OSError as exc:  # a name too long for the file system, say
            found.append((path, f"{path}: cannot open ({exc.strerror or exc})"))
            continue
        if is_dir:
            images = sorted(p for p in path.rglob("*")
                            if is_image_file(p) and not _is_annotated(p, annotate_dir))
            found.extend((p, None) for p in images)
            if not images:
                found.append((path, f"{path}: no image files in this folder (image files end "
                                    f"in {', '.join(sorted(IMAGE_SUFFIXES))})"))
        elif exists:
            found.append((path, None))
        else:
            found.append((path, f"{path}: no such file or folder"))
    return found


def _is_annotated(path: Path, annotate_dir: Path | None) -> bool:
    """True for a file ``--annotate annotate_dir`` wrote (or would write)."""
    if annotate_dir is None or not ANNOTATED_NAME.fullmatch(path.name):
        return False
    return path.resolve().is_relative_to(annotate_dir.resolve())


def _prepare_annotate_dir(folder: Path) -> None:
    """Create the ``--annotate`` folder before any work, so a bad one fails at once."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"--annotate {folder}: exists and is not a folder") from None
    except OSError as exc:
        raise ConfigError(f"--annotate {folder}: cannot create the folder "
                          f"({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"--annotate {folder}: the folder is not writable")


def run(args: argparse.Namespace) -> int:
    from .image import read_image
    from .recognizer import EmotionRecognizer, RecognizerOptions

    inputs = find_images(args.inputs, args.annotate)
    if all(error for _, error in inputs):  # nothing to read: say why, without a model
        raise ConfigError("; ".join(error for _, error in inputs))
    if args.annotate is not None:
        _prepare_annotate_dir(args.annotate)
    options = RecognizerOptions(model=args.model, backend=args.backend, threads=args.threads,
                                detect_faces=not args.no_detect, detector=args.detector,
                                tiling=args.tiling, pyramid_side=args.pyramid_side,
                                score_threshold=args.score_threshold)
    reports: list[FileReport] = []
    used_names: set[str] = set()
    with EmotionRecognizer(options) as recognizer:
        for path, error in inputs:
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
                report.error = str(exc)  # shown in the output, not logged a second time
        labels = recognizer.labels
    write_reports(reports, "json" if args.json else "csv" if args.csv else "table", labels)
    failed = sum(1 for r in reports if r.error)
    if failed:
        log.error("%d of %d files failed", failed, len(reports))
    return 1 if failed else 0


def write_reports(reports: list[FileReport], style: str, labels: tuple[str, ...]) -> None:
    """Print the reports as ``json``, ``csv`` (one column per label's probability) or a
    ``table``."""
    out = sys.stdout
    if style == "json":
        json.dump([_report_dict(r) for r in reports], out, indent=2)
        out.write("\n")
        return
    rows = [row for r in reports for row in _rows(r, labels)]
    if style == "csv":
        writer = csv.writer(out)
        writer.writerow((*CSV_COLUMNS, *(f"p_{label}" for label in labels), "status"))
        writer.writerows(rows)
        return
    file_width = max((len(row[0]) for row in rows), default=4)
    out.write(f"{'file':<{file_width}}  face  {'box (x0,y0,x1,y1)':<20}  label     score\n")
    for row in rows:
        file, face, box, label, score, status = row[0], row[1], row[2:6], row[6], row[7], row[-1]
        if face == "":
            out.write(f"{file:<{file_width}}  {'-':>4}  {status}\n")
            continue
        box_text = ",".join(map(str, box))
        note = "" if status == "ok" else f"  ({status})"
        out.write(f"{file:<{file_width}}  {face:>4}  {box_text:<20}  {label:<9} {score}{note}\n")


def _rows(report: FileReport, labels: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """CSV rows: ``CSV_COLUMNS``, one probability per label, then the status."""
    status = f"error: {report.error}" if report.error else report.status
    if not report.faces:
        return [(report.file, "", "", "", "", "", "", "", "", *([""] * len(labels)), status)]
    return [(report.file, i, *(round(v) for v in face.box), face.label, f"{face.score:.3f}",
             "" if face.detection_score is None else f"{face.detection_score:.3f}",
             *(f"{face.probabilities[label]:.4f}" for label in labels), status)
            for i, face in enumerate(report.faces)]


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
    from PIL import Image

    from .draw import LabelledBox, draw_boxes

    if target.exists() and not overwrite:
        raise ConfigError(f"{target}: already exists; pass --overwrite to replace it")
    boxes = [LabelledBox(tuple(face.box), f"{face.label} {face.score:.0%}", RED)
             for face in faces]
    image = Image.fromarray(draw_boxes(pixels, boxes))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target)
    except OSError as exc:
        raise ConfigError(f"{target}: cannot write the annotated image ({exc})") from None
    return target
