"""Build a folder of a few hundred photos for measuring ``emotion-edge batch``.

From the demo photos it writes exact copies, random crops (some hold a face, some do not),
rescaled and mirrored versions, saved as JPEG or PNG, plus a few broken files (a truncated
JPEG, text named ``.png``, an empty file). The same seed gives the same folder. The folder
is built outside the repo (default ``/tmp/batch_faces``); an existing one is replaced only
with ``--overwrite``.

    python scripts/make_batch_folder.py --count 300 --out /tmp/batch_faces
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import sys
from pathlib import Path

from PIL import Image, ImageOps

DEMO = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "demo_faces"
PHOTO_SUFFIXES = (".jpg", ".png")
#: The names this script writes; --overwrite removes a folder only if it holds nothing else.
OURS = re.compile(r"^(\d{4}_.*|broken_.*)$")


def variant(photo: Image.Image, rng: random.Random) -> Image.Image:
    """A random crop, rescale or mirror image of ``photo``."""
    kind = rng.choice(("crop", "crop", "scale", "mirror"))
    if kind == "mirror":
        return ImageOps.mirror(photo)
    if kind == "scale":
        factor = rng.uniform(0.5, 1.5)
        return photo.resize((max(8, round(photo.width * factor)),
                             max(8, round(photo.height * factor))), Image.Resampling.BILINEAR)
    side = rng.uniform(0.4, 0.9)
    width, height = round(photo.width * side), round(photo.height * side)
    left, top = rng.randint(0, photo.width - width), rng.randint(0, photo.height - height)
    return photo.crop((left, top, left + width, top + height))


def write_broken(out: Path, source: Path) -> int:
    """A truncated JPEG, text named .png and an empty .jpg; returns how many."""
    (out / "broken_truncated.jpg").write_bytes(source.read_bytes()[:2000])
    (out / "broken_text.png").write_text("this is not an image\n")
    (out / "broken_empty.jpg").write_bytes(b"")
    return 3


def build(out: Path, count: int, seed: int, demo: Path) -> None:
    photos = sorted(p for p in demo.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    if not photos:
        sys.exit(f"make_batch_folder: no demo photos in {demo}")
    rng = random.Random(seed)
    out.mkdir(parents=True)
    for i in range(count):
        source = photos[i % len(photos)]
        if i < len(photos) * 4:  # the first rounds: exact copies of every photo
            shutil.copyfile(source, out / f"{i:04d}_copy_{source.name}")
            continue
        with Image.open(source) as photo:
            image = variant(photo.convert("RGB"), rng)
        image.save(out / f"{i:04d}_{source.stem}{rng.choice(PHOTO_SUFFIXES)}")
    broken = write_broken(out, next(p for p in photos if p.suffix == ".jpg"))
    print(f"{out}: {count} photos from {len(photos)} demo photos and {broken} broken files")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/batch_faces"))
    parser.add_argument("--count", type=int, default=300, help="photos to write (plus broken)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--demo", type=Path, default=DEMO, help="folder of demo photos")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    if args.out.exists():
        if not args.overwrite:
            sys.exit(f"make_batch_folder: {args.out} exists; pass --overwrite to replace it")
        if any(not OURS.match(p.name) for p in args.out.iterdir()):
            sys.exit(f"make_batch_folder: {args.out} holds files this script did not write; "
                     "not replacing it")
        shutil.rmtree(args.out)
    build(args.out, args.count, args.seed, args.demo.resolve())


if __name__ == "__main__":
    main()
