"""A training run packed into one file, so it can resume on a fresh machine.

A run folder holds ``last.keras`` (weights and optimizer state), ``best.keras``,
``history.csv`` and ``config.json``. Committed as they are, a 3.5M-parameter run would
take about 56 MB; a pack keeps ``last.keras`` whole (the run resumes bit for bit), the
best epoch's weights in float16 (half the size; they are only ever the starting point of
the final evaluation, and the pack says so) and the small text files, in one zip:

    python -m emotion_edge.train.checkpoint pack runs/accurate checkpoints/accurate.zip
    python -m emotion_edge.train.checkpoint unpack checkpoints/accurate.zip runs/accurate

``unpack`` refuses to write into a folder that already holds a run.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

from ..runtime.errors import ConfigError, EmotionEdgeError

TEXT_FILES = ("config.json", "history.csv")
#: packed when the run has it: the sha256 of its teacher and --init-from files, which a
#: resume checks (runs started before it existed lack it)
OPTIONAL_FILES = ("inputs.json",)
BEST_WEIGHTS = "best.float16.npz"
MANIFEST = "checkpoint.json"


def pack(run_dir: str | Path, dest: str | Path) -> Path:
    """Write ``dest`` (a zip) from the run folder ``run_dir``; replaces ``dest``."""
    import keras

    run_dir, dest = Path(run_dir), Path(dest)
    missing = [n for n in ("last.keras", "best.keras", *TEXT_FILES) if not (run_dir / n).is_file()]
    if missing:
        raise ConfigError(f"{run_dir}: not a run folder to pack (missing {', '.join(missing)})")
    best = keras.models.load_model(run_dir / "best.keras", compile=False)
    buf = io.BytesIO()
    np.savez(buf, *[w.astype(np.float16) for w in best.get_weights()])
    history = (run_dir / "history.csv").read_text().splitlines()
    manifest = {"epochs_done": len(history) - 1, "best_weights": "float16 copy of best.keras",
                "resume": f"python -m emotion_edge.train.checkpoint unpack {dest} {run_dir}, "
                          "then train with the same --out and --resume"}
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(run_dir / "last.keras", "last.keras")
        for name in (*TEXT_FILES, *OPTIONAL_FILES):
            if (run_dir / name).is_file():
                zf.write(run_dir / name, name)
        zf.writestr(BEST_WEIGHTS, buf.getvalue())
        zf.writestr(MANIFEST, json.dumps(manifest, indent=2) + "\n")
    tmp.replace(dest)
    return dest


def unpack(src: str | Path, run_dir: str | Path) -> Path:
    """Restore a run folder from a pack made by :func:`pack`."""
    import keras

    src, run_dir = Path(src), Path(run_dir)
    if (run_dir / "last.keras").exists():
        raise ConfigError(f"{run_dir} already holds a run; unpack into an empty folder")
    try:
        zf = zipfile.ZipFile(src)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"{src}: not a training checkpoint ({exc})") from None
    with zf:
        names = set(zf.namelist())
        if not {"last.keras", BEST_WEIGHTS, MANIFEST, *TEXT_FILES} <= names:
            raise ConfigError(f"{src}: not a training checkpoint made by 'checkpoint pack'")
        run_dir.mkdir(parents=True, exist_ok=True)
        for name in ("last.keras", *TEXT_FILES, *(n for n in OPTIONAL_FILES if n in names)):
            (run_dir / name).write_bytes(zf.read(name))
        with np.load(io.BytesIO(zf.read(BEST_WEIGHTS))) as saved:
            weights = [saved[f"arr_{i}"].astype(np.float32) for i in range(len(saved.files))]
    model = keras.models.load_model(run_dir / "last.keras")
    model.set_weights(weights)
    model.save(run_dir / "best.keras")
    return run_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emotion_edge.train.checkpoint",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="pack a run folder into one file")
    p.add_argument("run_dir")
    p.add_argument("dest")
    u = sub.add_parser("unpack", help="restore a run folder from a pack")
    u.add_argument("src")
    u.add_argument("run_dir")
    args = parser.parse_args(argv)
    try:
        if args.command == "pack":
            out = pack(args.run_dir, args.dest)
            print(f"{out}: {out.stat().st_size / 1e6:.1f} MB")
        else:
            print(f"restored {unpack(args.src, args.run_dir)}")
    except EmotionEdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
