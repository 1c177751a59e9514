"""``emotion-edge batch``: recognise emotions on many photos as a Ray Data job.

Writes one Parquet row per face (or per file without a face or that failed) into the folder
``--out``; re-running with the same ``--out`` skips the files already there. Runs on a local
Ray instance sized to this machine, or on the cluster at ``--address``.
"""

from __future__ import annotations

import argparse
import logging

from emotion_edge.runtime import DEFAULT_DETECTOR, RecognizerOptions
from emotion_edge.runtime.bundled import model_help
from emotion_edge.runtime.formats import BACKENDS, backend_help

from .pipeline import DEFAULT_BATCH_SIZE

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="folders (searched recursively), globs, files, or .txt / .parquet "
                             "lists of paths; local paths or URIs pyarrow opens (s3://, gs://)")
    parser.add_argument("--out", required=True,
                        help="output folder of Parquet parts (e.g. results.parquet); an "
                             "existing one is resumed: files already in it are skipped")
    parser.add_argument("--overwrite", action="store_true",
                        help="remove the part files already in --out and start again")
    parser.add_argument("--address", default=None,
                        help="join the Ray cluster at HOST:PORT, ray://HOST:PORT or 'auto' "
                             "(default: start a local Ray instance on every core)")
    parser.add_argument("--workers", type=int, default=None,
                        help="recognizer actors, each loading one model (default: one per "
                             "cluster CPU)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help=f"files per batch handed to an actor (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--model", default=None,
                        help=model_help())
    parser.add_argument("--backend", choices=sorted(BACKENDS), default=None,
                        help=backend_help())
    parser.add_argument("--threads", type=int, default=None,
                        help="engine threads per actor (default 1)")
    parser.add_argument("--no-detect", action="store_true",
                        help="take each whole image as one face (for face crops)")
    parser.add_argument("--detector", default=None, metavar="NAME",
                        help=f"face detector, as predict's (default {DEFAULT_DETECTOR})")
    parser.add_argument("--tiling", type=int, default=None, metavar="N",
                        help="blazeface and blazeface-full only: as predict --tiling")
    parser.add_argument("--pyramid-side", type=int, default=None, metavar="PX",
                        help="blazeface-pyramid only: as predict --pyramid-side")
    parser.add_argument("--score-threshold", type=float, default=None,
                        help="minimum face detection score (default: the detector's own)")


def recognizer_options(args: argparse.Namespace) -> RecognizerOptions:
    """The RecognizerOptions the arguments ask for; options not given keep the runtime's
    defaults, so batch recognises exactly as predict does."""
    given = {"model": args.model, "backend": args.backend, "threads": args.threads,
             "detector": args.detector, "tiling": args.tiling,
             "pyramid_side": args.pyramid_side, "score_threshold": args.score_threshold}
    return RecognizerOptions(detect_faces=not args.no_detect,
                             **{k: v for k, v in given.items() if v is not None})


def run(args: argparse.Namespace) -> int:
    from .job import run_batch

    options = recognizer_options(args)
    summary = run_batch(args.inputs, args.out, options, address=args.address,
                        workers=args.workers, batch_size=args.batch_size,
                        overwrite=args.overwrite)
    if summary.files:
        log.info("%d files (%d skipped as already done): %d faces, %d without a face, "
                 "%d failed; %.1f s (%.2f images/s) after Ray's start-up of %.1f s; results "
                 "in %s", summary.files, summary.skipped, summary.faces, summary.no_face,
                 summary.errors, summary.seconds, summary.images_per_s, summary.ray_start_s,
                 summary.out)
    return 1 if summary.errors else 0
