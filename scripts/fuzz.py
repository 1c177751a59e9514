"""Fuzz the input layer: every malformed image, array, path, CSV or image folder, odd
pictures through the bundled model (``analyze``), damaged model files (``model``: the bundled
int8 TFLite, ONNX, OpenVINO and Keras artifacts mutated, their sidecars mostly resealed to
match), damaged sidecars (``sidecar``) and random command lines (``cli``) must give a result
or a typed error (``EmotionEdgeError``; for ``cli``, exit 0, 1 or 2 with no traceback),
never another exception, a crash or a hang.

``python scripts/fuzz.py --cases 10000`` (``make fuzz``) runs each case in a worker process,
so a crash (a signal, such as SIGSEGV inside a decoder) or a hang (no answer within
``--timeout`` seconds) is counted instead of taking the run down, and prints how many cases
ended ok / typed error / other exception / crash / hang. It exits 1 unless the last three
are all 0. Cases are made from their kind and seed alone, so any case is repeated with
``python scripts/fuzz.py --replay KIND SEED``.

The same case makers feed ``tests/test_fuzz.py``, where Hypothesis chooses the inputs.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import io
import json
import os
import random
import resource
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np

OUTCOMES = ("ok", "typed error", "other exception", "crash", "hang")
#: values that often break parsers when written over a header field
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 20_000, 65_535, 0x7FFFFFFF,
               0x80000000, 0xFFFFFFFF)
#: a worker's address space is capped, so a runaway allocation fails instead of swapping
WORKER_MEMORY_BYTES = 6 << 30
#: a worker whose address space has grown past this (TensorFlow alone maps 2.2 GB) is
#: replaced by a fresh one, so one case's leftovers do not starve the next of memory
WORKER_RETIRE_BYTES = 4 << 30
#: how the errors of an allocation over the cap begin (Python's, TensorFlow's)
OUT_OF_MEMORY = ("MemoryError", "ResourceExhaustedError")


# --------------------------------------------------------------------------- inputs

@cache
def image_samples() -> dict[str, bytes]:
    """Small valid files of every format Pillow writes here, to be mutated."""
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (24, 32, 3), np.uint8))
    variants = {
        "png": (rgb, "PNG", {}), "png-gray16": (rgb.convert("I;16"), "PNG", {}),
        "png-palette": (rgb.convert("P"), "PNG", {}), "png-rgba": (rgb.convert("RGBA"), "PNG", {}),
        "jpeg": (rgb, "JPEG", {"quality": 80}),
        "jpeg-progressive": (rgb, "JPEG", {"progressive": True}),
        "gif": (rgb.convert("P"), "GIF", {}), "webp": (rgb, "WEBP", {}),
        "webp-lossless": (rgb.convert("RGBA"), "WEBP", {"lossless": True}),
        "bmp": (rgb, "BMP", {}), "tiff": (rgb, "TIFF", {"compression": "tiff_lzw"}),
        "qoi": (rgb, "QOI", {}), "avif": (rgb, "AVIF", {}), "tga": (rgb, "TGA", {}),
        "pcx": (rgb, "PCX", {}), "jpeg2000": (rgb, "JPEG2000", {}), "dds": (rgb, "DDS", {}),
        "ppm": (rgb, "PPM", {}), "pgm": (rgb.convert("L"), "PPM", {}),
    }
    samples = {}
    for name, (image, fmt, options) in variants.items():
        buffer = io.BytesIO()
        try:
            image.save(buffer, fmt, **options)
        except (OSError, KeyError, ValueError):  # a codec this Pillow build lacks
            continue
        samples[name] = buffer.getvalue()
    return samples


def mutate(data: bytes, rng: random.Random, rounds: int | None = None) -> bytes:
    """``data`` with 1-4 random edits: bit flips, bytes, header values, cuts, inserts."""
    out = bytearray(data)
    for _ in range(rounds or rng.randint(1, 4)):
        if not out:
            out += bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
            continue
        # half the edits land in the first 64 bytes, where the headers are
        at = rng.randrange(min(len(out), 64) if rng.random() < 0.5 else len(out))
        op = rng.randrange(7)
        if op == 0:
            out[at] ^= 1 << rng.randrange(8)
        elif op == 1:
            out[at] = rng.randrange(256)
        elif op == 2:
            width = rng.choice((2, 4))
            value = rng.choice(INTERESTING) % (1 << (8 * width))
            out[at:at + width] = value.to_bytes(width, rng.choice(("big", "little")))
        elif op == 3:
            del out[at:]
        elif op == 4:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 5:
            del out[at:at + rng.randint(1, 16)]
        else:
            start = rng.randrange(len(out))
            out[at:at] = out[start:start + rng.randint(1, 64)]
    return bytes(out)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def header_bomb(rng: random.Random) -> bytes:
    """A small file claiming a large image: a PNG whose pixel stream is a deflated run of
    zeros (a real decompression bomb below the limit, a header-only one above it) or a PPM
    with a few bytes of pixels. Sides are drawn around the 50-megapixel limit."""
    width = rng.choice((1, 2, 7_070, 10_000, 20_000, 28_000, 65_535, rng.randint(1, 12_000)))
    height = rng.choice((1, 2, 5_000, 7_070, 20_000, 28_000, rng.randint(1, 12_000)))
    if rng.random() < 0.3:
        return f"P{rng.choice((5, 6))}\n{width} {height}\n255\n".encode() + b"\x80" * 64
    color, channels = rng.choice(((0, 1), (2, 3), (4, 2), (6, 4)))
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes((8, color, 0, 0, 0))
    raw = (width * channels + 1) * height
    stream = zlib.compress(b"\0" * (raw if raw <= 60_000_000 else 4096), 9)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", stream)
            + _png_chunk(b"IEND", b""))


def random_array(rng: random.Random) -> np.ndarray:
    """An array of a random dtype, shape, layout and values (NaN, inf and extremes too)."""
    dtype = rng.choice(("uint8", "int8", "uint16", "int16", "int32", "int64", "uint64",
                        "float16", "float32", "float64", "bool", "complex64", "m8[s]",
                        "M8[s]", "object", "U3"))
    ndim = rng.choice((0, 1, 2, 2, 3, 3, 3, 4))
    shape = tuple(rng.choice((0, 1, 2, 3, 5, 8)) for _ in range(ndim))
    if ndim == 3 and rng.random() < 0.7:
        shape = (*shape[:2], rng.randint(1, 5))
    gen = np.random.default_rng(rng.randrange(1 << 32))
    raw = gen.integers(-(1 << 62), 1 << 62, size=shape, dtype=np.int64)
    if dtype.startswith(("float", "complex")):
        values = gen.choice([np.nan, np.inf, -np.inf, 0.0, 1.0, -1.0, 0.5, 255.0, 65535.0,
                             1e30, -1e30, 1e-30], size=shape)
        arr = (values if rng.random() < 0.5 else gen.random(shape)).astype(dtype)
    elif dtype in ("object", "U3"):
        arr = raw.astype(str).astype(dtype)
    else:
        arr = raw.astype(dtype) if rng.random() < 0.5 else (raw % 300).astype(dtype)
    if arr.ndim >= 2 and rng.random() < 0.3:  # not C-contiguous
        arr = np.swapaxes(arr, 0, 1)
    return arr


def random_pil_image(rng: random.Random):
    """A PIL image of an odd mode or state: lazily opened, closed, empty, premultiplied."""
    from PIL import Image

    mode = rng.choice(("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK",
                       "YCbCr", "LAB", "HSV", "I", "I;16", "I;16B", "F"))
    image = Image.new(mode, (rng.choice((0, 1, 2, 9)), rng.choice((0, 1, 2, 7))))
    state = rng.randrange(3)
    if state == 1:
        image.close()
    elif state == 2:  # lazily opened from (possibly mutated) bytes
        data = mutate(rng.choice(list(image_samples().values())), rng, rounds=rng.randint(0, 2))
        try:
            image = Image.open(io.BytesIO(data))
        except Exception:  # noqa: BLE001  not openable: give read_image the bytes instead
            return data
    return image


class _BytesPath(os.PathLike):
    def __init__(self, path: Path) -> None:
        self.path = path

    def __fspath__(self) -> bytes:
        return os.fsencode(self.path)


#: how many kinds of path ``special_path`` makes
SPECIAL_PATHS = 10


def special_path(rng: random.Random, folder: Path, choice: int | None = None):
    """A path that is not a plain image file: a pipe, a folder, a loop, a device …"""
    image = folder / "image.png"
    image.write_bytes(mutate(image_samples()["png"], rng, rounds=rng.randint(0, 1)))
    choice = rng.randrange(SPECIAL_PATHS) if choice is None else choice
    if choice == 0:
        os.mkfifo(folder / "pipe.png")
        return folder / "pipe.png"
    if choice == 1:
        (folder / "link.png").symlink_to(folder / "link.png")
        return folder / "link.png"
    if choice == 2:
        os.mkfifo(folder / "pipe")
        (folder / "to_pipe.jpg").symlink_to(folder / "pipe")
        return folder / "to_pipe.jpg"
    return [folder, folder / "absent.png", folder / ("x" * rng.choice((255, 300, 5000))),
            str(image) + "\0.png", "/dev/zero", "/dev/null", _BytesPath(image)][choice - 3]


@cache
def csv_sample() -> str:
    gen = np.random.default_rng(0)
    rows = [f"{i % 7},{' '.join(map(str, gen.integers(0, 256, 2304)))},{usage}"
            for i, usage in enumerate(["Training"] * 4 + ["PublicTest", "PrivateTest"])]
    return "emotion,pixels,Usage\n" + "\n".join(rows) + "\n"


BAD_TOKENS = ("4294967301", "-1", "256", "1e3", "nan", "", "0x10", "9" * 30, "\uff11", "1.5",
              "\x00", '"', ",", "\n", "7", "Training", "PublicTest ", "\u00a0")


def mutate_csv(rng: random.Random) -> bytes:
    """The sample CSV with bad tokens, lines or bytes, sometimes gzipped (then bit-flipped)."""
    lines = csv_sample().split("\n")
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(lines))
        op = rng.randrange(5)
        if op == 0 and lines[i]:  # one token of a line replaced
            tokens = lines[i].replace(",", " , ").split(" ")
            tokens[rng.randrange(len(tokens))] = rng.choice(BAD_TOKENS)
            lines[i] = " ".join(tokens).replace(" , ", ",")
        elif op == 1:
            del lines[i]
        elif op == 2:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif op == 3:
            lines[i] = rng.choice(BAD_TOKENS) * rng.randint(1, 3)
        else:
            lines[i] = lines[i][:rng.randrange(len(lines[i]) + 1)]
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    if rng.random() < 0.3:
        data = mutate(data, rng)
    if rng.random() < 0.4:
        data = gzip.compress(data, mtime=0)
        if rng.random() < 0.7:
            data = mutate(data, rng)
    return data


# --------------------------------------------------------------------------- models

#: the bundled small artifacts whose files are mutated (the OpenVINO pair through its .xml)
MODEL_ARTIFACTS = ("default.int8.tflite", "default.int8.onnx", "default.int8.openvino.xml",
                   "default.keras")
#: values written over an XML attribute of an OpenVINO IR
XML_VALUES = ("", "-1", "0", "1", "4294967296", "99999999999999999999", "1,48,48,1", "1,-1",
              "?", "nan", "f32", "i64", "u1", "string", "abc", "0,0,0,0", "1,1,1,1,1,1,1,1")


def copy_artifact(name: str, folder: Path) -> Path:
    """The bundled artifact ``name`` copied, with all its files and its sidecar, to ``folder``."""
    from emotion_edge.runtime.bundled import models_dir
    from emotion_edge.runtime.formats import format_for_path
    from emotion_edge.runtime.sidecar import sidecar_path

    source = models_dir() / name
    for member in [*format_for_path(source).members(source), sidecar_path(source)]:
        shutil.copyfile(member, folder / member.name)
    return folder / name


def mutate_flatbuffer(data: bytes, rng: random.Random) -> bytes:
    """A TFLite flatbuffer with one offset, vtable entry or length tampered: a uint32 or
    uint16 at an aligned position set to an extreme or moved by a little."""
    out = bytearray(data)
    width = rng.choice((4, 4, 2))
    at = rng.randrange(0, len(out) - width, width) if rng.random() < 0.7 \
        else rng.randrange(0, min(len(out), 256) - width, width)
    old = int.from_bytes(out[at:at + width], "little")
    new = (rng.choice(INTERESTING) if rng.random() < 0.5 else old + rng.randint(-64, 64))
    out[at:at + width] = (new % (1 << (8 * width))).to_bytes(width, "little")
    return bytes(out)


def mutate_xml(text: str, rng: random.Random) -> str:
    """An OpenVINO IR with an attribute value changed, a tag renamed, or a line deleted,
    duplicated or moved."""
    import re

    lines = text.split("\n")
    i = rng.randrange(len(lines))
    op = rng.randrange(5)
    attributes = list(re.finditer(r'(\w+)="([^"]*)"', lines[i]))
    if op == 0 and attributes:
        match = rng.choice(attributes)
        value = rng.choice(XML_VALUES) if rng.random() < 0.7 else re.sub(
            r"\d", lambda _: str(rng.randrange(10)), match.group(2), count=1)
        lines[i] = f'{lines[i][:match.start(2)]}{value}{lines[i][match.end(2):]}'
    elif op == 1:
        tag = rng.choice(("layer", "edge", "port", "dim", "data", "x", "net"))
        lines[i] = re.sub(r"<(/?)\w+", lambda m: f"<{m.group(1)}{tag}", lines[i], count=1)
    elif op == 2:
        del lines[i]
    elif op == 3:
        lines.insert(i, lines[rng.randrange(len(lines))])
    else:
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


def mutate_zip_member(data: bytes, rng: random.Random) -> bytes:
    """A .keras archive rewritten with one member (config, metadata or weights) mutated."""
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    name = rng.choice(sorted(members))
    members[name] = mutate(members[name], rng)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, content in members.items():
            archive.writestr(member, content)
    return buffer.getvalue()


def mutate_model_bytes(data: bytes, rng: random.Random, suffix: str) -> bytes:
    """One structural mutation of a model file: bit flips, a cut, a byte range duplicated or
    zeroed, or the format's own (flatbuffer offsets, XML tags, a .keras member)."""
    op = rng.randrange(6)
    if op == 0:
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(out))
            out[at] ^= 1 << rng.randrange(8)
        return bytes(out)
    if op == 1:
        return data[:rng.randrange(len(data))]
    start, size = rng.randrange(len(data)), rng.choice((4, 16, 256, 4096))
    if op == 2:
        at = rng.randrange(len(data))
        return data[:at] + data[start:start + size] + data[at + (size if rng.random() < 0.5
                                                                  else 0):]
    if op == 3:
        return data[:start] + bytes(min(size, len(data) - start)) + data[start + size:]
    if suffix == ".tflite":
        return mutate_flatbuffer(data, rng)
    if suffix == ".xml":
        return mutate_xml(data.decode(), rng).encode()
    if suffix == ".keras":
        return mutate_zip_member(data, rng)
    return mutate(data, rng)


def reseal(path: Path) -> None:
    """Record the artifact's current size and sha256 in its sidecar, so the integrity check
    passes and the engine itself meets the damaged file."""
    from emotion_edge.runtime.formats import format_for_path
    from emotion_edge.runtime.sidecar import read_sidecar, write_sidecar

    row, sidecar = format_for_path(path), read_sidecar(path)
    write_sidecar(path, {**sidecar, "sha256": row.sha256(path),
                         "size_bytes": row.size_bytes(path)})


def load_and_run(path: Path) -> None:
    """Load ``path`` and run one mid-grey input; the answer must be probabilities."""
    from emotion_edge.runtime import load_predictor

    with load_predictor(path) as predictor:
        probabilities = predictor.predict(np.full((1, *predictor.input_shape), 0.5, np.float32))
    if probabilities.shape != (1, len(predictor.labels)) or not (
            np.isfinite(probabilities).all() and abs(probabilities.sum() - 1) < 1e-3):
        raise AssertionError(f"bad probabilities {probabilities}")


# --------------------------------------------------------------------------- sidecars

#: odd JSON values written over a sidecar field
ODD_JSON = ("null", "true", "-1", "0", "1e400", "-1e400", "NaN", "Infinity", "1" * 5000,
            "1.5", '""', '"x"', '"\\u0000"', "[]", "{}", '["a","a"]', '[1,2]', '{"a":1}',
            '"' + "a" * 100_000 + '"')


def _paths(value, prefix=()):
    """Every key path in a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from _paths(item, (*prefix, index))


def mutate_sidecar(text: str, rng: random.Random) -> bytes:
    """A model's sidecar with fields of the wrong type, missing, huge, NaN or nested deep,
    or as bytes that are not UTF-8 or JSON at all, or a huge file."""
    data = json.loads(text)
    marker = "\"@@ODD@@\""
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(list(_paths(data)))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        if rng.random() < 0.3:
            del parent[path[-1]]
        else:
            parent[path[-1]] = "@@ODD@@"
    encoded = json.dumps(data, indent=rng.choice((None, 2)))
    while marker in encoded:
        depth = rng.choice((2, 50, 1000, 100_000))
        odd = rng.choice(ODD_JSON) if rng.random() < 0.8 else "[" * depth + "]" * depth
        encoded = encoded.replace(marker, odd, 1)
    op = rng.randrange(8)
    if op == 0:
        return mutate(encoded.encode(), rng)
    if op == 1:
        return encoded.encode("utf-16") if rng.random() < 0.5 else b"\xff\xfe" + encoded.encode()
    if op == 2:
        return encoded.encode() + b" " * (rng.choice((1, 50)) << 20)
    if op == 3:
        return rng.choice(("[]", "null", "7", '"labels"', "", "{}", "[" * 100_000)).encode()
    return encoded.encode()


# --------------------------------------------------------------------------- command line

#: values an option or argument of the command line is given (besides paths)
ODD_NUMBERS = ("-1", "0", "1", "2", "3", "-5", "1e308", "nan", "inf", "-inf", "1.5", "0.5",
               "99999999999999999999", "2147483648")
ODD_VALUES = (*ODD_NUMBERS, "", " ", "abc", "\u2603", "0x10", "default", "litert", "tflite",
              "int8", "onnx", "train", "val", "test", "localhost:1")
#: commands whose inputs must be refused before they start anything slow: their positional
#: arguments are drawn from these path pools only (export: a conversion; batch: Ray)
CHEAP_ONLY = {"export": "odd", "batch": "refused"}


def cli_paths(folder: Path, rng: random.Random) -> dict[str, list[str]]:
    """Paths to hand the command line: ``good`` ones (a small photo, a tiny CSV, a bundled
    model) and ``odd`` ones (a folder, a pipe, a missing or empty file, a mutated file)."""
    from emotion_edge.runtime.bundled import models_dir

    (folder / "face.png").write_bytes(image_samples()["png"])
    (folder / "fer.csv").write_text(csv_sample())
    (folder / "empty.csv").write_bytes(b"")
    (folder / "bad.mp4").write_bytes(mutate(image_samples()["jpeg"], rng))
    (folder / "bad.tflite").write_bytes(mutate(image_samples()["png"], rng))
    (folder / "dir").mkdir()
    os.mkfifo(folder / "pipe.png")
    good = [folder / "face.png", folder / "fer.csv", models_dir() / "default.int8.tflite",
            "default"]
    odd = [folder / "dir", folder / "pipe.png", folder / "missing.png", folder / "empty.csv",
           folder / "bad.mp4", folder / "bad.tflite", "/dev/null", folder / "out.json",
           folder / "new" / "out.csv"]
    refused = [folder / "dir", folder / "none*.png"]
    return {"good": [str(p) for p in good], "odd": [str(p) for p in odd],
            "refused": [str(p) for p in refused]}


def random_argv(command: str, rng: random.Random, paths: dict[str, list[str]]) -> list[str]:
    """``command`` with random options of its real parser and odd values; the positional
    arguments of a command in ``CHEAP_ONLY`` come from its pool of paths."""
    from emotion_edge.cli import build_subcommand_parser

    def value(action=None, pool_name=None) -> str:
        if action is not None and action.choices and rng.random() < 0.7:
            return rng.choice(list(action.choices))
        if action is not None and action.type in (int, float) and rng.random() < 0.9:
            return rng.choice(ODD_NUMBERS)
        if pool_name:
            return rng.choice(paths[pool_name])
        pool = paths["good"] + paths["odd"]
        return rng.choice(pool) if rng.random() < 0.7 else rng.choice(ODD_VALUES)

    actions = [a for a in build_subcommand_parser(command)._actions
               if a.option_strings != ["-h", "--help"]]
    positionals = [a for a in actions if not a.option_strings]
    options = rng.sample([a for a in actions if a.option_strings],
                         min(rng.choice((0, 1, 2, 3, 5)), len(actions) - len(positionals)))
    argv = [command]
    for action in options + positionals:
        if not action.option_strings:
            count = {"+": rng.randint(1, 3), "?": rng.randint(0, 1)}.get(action.nargs, 1)
            if rng.random() < 0.05:
                count = 0
            argv += [value(pool_name=CHEAP_ONLY.get(command)) for _ in range(count)]
        elif action.nargs == 0:
            argv.append(action.option_strings[-1])
        else:
            argv += [action.option_strings[-1], value(action)]
    if rng.random() < 0.05:
        argv.insert(rng.randrange(1, len(argv) + 1), rng.choice(("--bogus", "-x", "--")))
    return argv


class CommandRefused(Exception):
    """The command line ended with exit code 1 or 2 and a message (counted as typed)."""


def run_cli(argv: list[str], folder: Path) -> tuple[int, str]:
    """``emotion-edge ARGV`` in this process with stdout and stderr (the file descriptors,
    so an engine's own output too) sent to a file: (exit code, what it printed)."""
    from emotion_edge.cli import main

    log = folder / "output.txt"
    saved, cwd = [os.dup(1), os.dup(2)], os.getcwd()
    os.chdir(folder)  # an output named by a relative path lands in the case's folder
    sys.stdout.flush()
    with open(log, "wb") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 2
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.chdir(cwd)
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
    return code, log.read_text(errors="replace")


# --------------------------------------------------------------------------- cases

def _check_image(result: np.ndarray) -> None:
    ok = (isinstance(result, np.ndarray) and result.dtype == np.uint8
          and (result.ndim == 2 or (result.ndim == 3 and result.shape[2] == 3))
          and min(result.shape[:2]) >= 2 and result.flags.c_contiguous)
    if not ok:
        raise AssertionError(f"read_image returned {type(result).__name__} "
                             f"{getattr(result, 'shape', '')} {getattr(result, 'dtype', '')}")


def read_checked(image) -> None:
    from emotion_edge.runtime.image import read_image

    _check_image(read_image(image))


def case_image_bytes(rng: random.Random, folder: Path) -> None:
    if rng.random() < 0.2:
        read_checked(bytes(rng.randrange(256) for _ in range(rng.randint(0, 512))))
    else:
        read_checked(mutate(rng.choice(list(image_samples().values())), rng))


def case_image_file(rng: random.Random, folder: Path) -> None:
    name, data = rng.choice(list(image_samples().items()))
    path = folder / f"image.{rng.choice(('png', 'jpg', 'gif', 'webp', name.split('-')[0]))}"
    path.write_bytes(mutate(data, rng))
    read_checked(path if rng.random() < 0.5 else str(path))


def case_bomb(rng: random.Random, folder: Path) -> None:
    read_checked(header_bomb(rng))


def case_array(rng: random.Random, folder: Path) -> None:
    read_checked(random_array(rng))


def case_pil(rng: random.Random, folder: Path) -> None:
    read_checked(random_pil_image(rng))


def case_path(rng: random.Random, folder: Path) -> None:
    read_checked(special_path(rng, folder))


def case_csv(rng: random.Random, folder: Path) -> None:
    from emotion_edge.data.datasets import load_fer2013

    path = folder / ("fer.csv.gz" if rng.random() < 0.5 else "fer.csv")
    path.write_bytes(mutate_csv(rng))
    cache_dir = folder / "cache"
    if rng.random() < 0.3:  # a cache from an earlier run, then damaged
        try:
            load_fer2013(path, cache_dir=cache_dir)
        except Exception:  # noqa: BLE001  the CSV itself is bad: no cache to damage
            return load_fer2013(path, cache_dir=cache_dir)
        for cached in cache_dir.glob("*.npz"):
            cached.write_bytes(mutate(cached.read_bytes(), rng))
    splits = load_fer2013(path, cache_dir=cache_dir)
    for split in splits.values():
        if split.x.dtype != np.uint8 or split.x.shape[1:] != (48, 48):
            raise AssertionError(f"bad split {split.x.shape} {split.x.dtype}")


def case_folder(rng: random.Random, folder: Path) -> None:
    from emotion_edge.data.datasets import load_image_folder

    root = folder / "faces"
    for label in rng.sample(("happy", "sad", "contempt", "happiness", "x"), rng.randint(1, 3)):
        (root / label).mkdir(parents=True)
        for i in range(rng.randint(0, 2)):
            data = rng.choice(list(image_samples().values()))
            (root / label / f"{i}.png").write_bytes(mutate(data, rng) if i else data)
        if rng.random() < 0.3:
            os.mkfifo(root / label / "pipe.png")
        if rng.random() < 0.2:
            (root / label / "locked").mkdir()
            os.chmod(root / label / "locked", 0)
    load_image_folder(root)


@cache
def recognizer(detector: bool):
    from emotion_edge.runtime import EmotionRecognizer, RecognizerOptions

    return EmotionRecognizer(RecognizerOptions(detect_faces=detector))


def case_analyze(rng: random.Random, folder: Path) -> None:
    """Odd but valid pictures (tiny, a few pixels wide, flat, noisy) or mutated files through
    the bundled model, with and without face detection."""
    if rng.random() < 0.5:
        gen = np.random.default_rng(rng.randrange(1 << 32))
        height, width = rng.choice([(2, 2), (2, 3000), (3000, 2), (5, 7), (48, 48), (480, 640),
                                    (rng.randint(2, 900), rng.randint(2, 900))])
        shape = (height, width) if rng.random() < 0.3 else (height, width, rng.choice((3, 4)))
        image = (gen.integers(0, 256, shape, dtype=np.uint8) if rng.random() < 0.5
                 else np.full(shape, rng.choice((0, 255)), np.uint8))
    else:
        image = mutate(rng.choice(list(image_samples().values())), rng)
    faces = recognizer(rng.random() < 0.7).analyze(image)
    for face in faces:
        total = sum(face.probabilities.values())
        if not (np.isfinite(total) and abs(total - 1) < 1e-3 and 0 <= face.score <= 1):
            raise AssertionError(f"bad probabilities {face.probabilities}")


def case_model(rng: random.Random, folder: Path) -> None:
    """A bundled artifact with one file mutated, its sidecar (mostly) resealed to match, loaded
    and run on one input."""
    path = copy_artifact(rng.choice(MODEL_ARTIFACTS), folder)
    target = path.with_suffix(".bin") if path.suffix == ".xml" and rng.random() < 0.4 else path
    target.write_bytes(mutate_model_bytes(target.read_bytes(), rng, target.suffix))
    if rng.random() < 0.85:
        reseal(path)
    load_and_run(path)


def case_sidecar(rng: random.Random, folder: Path) -> None:
    """A valid bundled model beside a mutated sidecar, loaded and run on one input."""
    from emotion_edge.runtime.sidecar import sidecar_path

    path = copy_artifact(rng.choice(MODEL_ARTIFACTS[:3]), folder)
    sidecar = sidecar_path(path)
    sidecar.write_bytes(mutate_sidecar(sidecar.read_text(), rng))
    load_and_run(path)


def case_cli(rng: random.Random, folder: Path) -> None:
    """``emotion-edge predict|evaluate|export|info|video|batch`` with random arguments: exit
    0, 1 or 2 and no traceback."""
    command = rng.choice(("predict", "evaluate", "export", "info", "video", "batch"))
    argv = random_argv(command, rng, cli_paths(folder, rng))
    code, output = run_cli(argv, folder)
    if "Traceback" in output or code not in (0, 1, 2):
        raise AssertionError(f"exit {code} for {argv}: {output[-600:]}")
    if code:
        raise CommandRefused(f"exit {code}: {output.strip().splitlines()[-1:] or ''}")


def case_selftest_crash(rng: random.Random, folder: Path) -> None:
    os.abort()


def case_selftest_hang(rng: random.Random, folder: Path) -> None:
    time.sleep(3600)


CASES: dict[str, Callable[[random.Random, Path], None]] = {
    "image-bytes": case_image_bytes, "image-file": case_image_file, "array": case_array,
    "pil": case_pil, "path": case_path, "csv": case_csv, "folder": case_folder,
    "analyze": case_analyze, "bomb": case_bomb, "model": case_model, "sidecar": case_sidecar,
    "cli": case_cli,
}
SELFTEST = {"selftest-crash": case_selftest_crash, "selftest-hang": case_selftest_hang}


def run_case(kind: str, seed: int) -> tuple[str, str]:
    """Run one case in this process: ("ok" | "typed error" | "other exception", detail)."""
    from emotion_edge.runtime.errors import EmotionEdgeError

    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        {**CASES, **SELFTEST}[kind](random.Random(f"{kind}:{seed}"), folder)
        return "ok", ""
    except (EmotionEdgeError, CommandRefused) as exc:
        return "typed error", f"{type(exc).__name__}: {str(exc)[:200]}"
    except Exception as exc:  # noqa: BLE001  exactly what the fuzzer looks for
        return "other exception", f"{type(exc).__name__}: {str(exc)[:200]}"
    finally:
        for locked in folder.rglob("locked"):
            os.chmod(locked, 0o755)
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- workers

def worker() -> None:
    """Answer ``KIND SEED`` lines on stdin with one JSON line each on stdout."""
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY_BYTES, WORKER_MEMORY_BYTES))
    import logging
    import warnings

    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    # answers go out on their own copy of stdout; whatever a case prints goes to /dev/null
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    for line in sys.stdin:
        kind, seed = line.split()
        outcome, detail = run_case(kind, int(seed))
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        with open("/proc/self/statm") as statm:
            mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        retire = mapped > WORKER_RETIRE_BYTES or detail.startswith(OUT_OF_MEMORY)
        print(json.dumps({"outcome": outcome, "detail": detail, "rss_mb": rss_mb,
                          "retire": retire}), file=answers, flush=True)
        if retire:
            return


class Worker:
    """A child running ``worker()``; restarted after a crash or a hang."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.case: tuple[str, int] | None = None
        self.started = 0.0

    def send(self, case: tuple[str, int]) -> None:
        self.case, self.started = case, time.monotonic()
        self.proc.stdin.write(f"{case[0]} {case[1]}\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def run_cases(cases: list[tuple[str, int]], jobs: int, timeout: float,
              progress: bool = False) -> list[dict]:
    """Run every case in ``jobs`` workers; one result dict per case, in finishing order."""
    pending = collections.deque(cases)
    results: list[dict] = []
    selector = selectors.DefaultSelector()
    idle = [Worker() for _ in range(min(jobs, len(cases)))]
    busy: dict[int, Worker] = {}
    retried: set[tuple[str, int]] = set()

    def release(w: Worker) -> None:
        selector.unregister(w.proc.stdout)
        del busy[w.proc.stdout.fileno()]

    def finish(w: Worker, outcome: str, detail: str, rss_mb: int = 0) -> None:
        release(w)
        results.append({"kind": w.case[0], "seed": w.case[1], "outcome": outcome,
                        "detail": detail, "rss_mb": rss_mb})
        if progress and len(results) % 500 == 0:
            print(f"  {len(results)}/{len(cases)} cases", file=sys.stderr, flush=True)

    while pending or busy:
        while idle and pending:
            w = idle.pop()
            w.send(pending.popleft())
            busy[w.proc.stdout.fileno()] = w
            selector.register(w.proc.stdout, selectors.EVENT_READ, w)
        for key, _ in selector.select(timeout=0.5):
            w = key.data
            line = w.proc.stdout.readline()
            if line:
                answer = json.loads(line)
                if answer["detail"].startswith(OUT_OF_MEMORY) and w.case not in retried:
                    # out of memory in a worker grown by earlier cases: once more, fresh
                    retried.add(w.case)
                    pending.appendleft(w.case)
                    release(w)
                else:
                    finish(w, answer["outcome"], answer["detail"], answer["rss_mb"])
                if answer["retire"]:
                    w.stop()
                    w = Worker()
                idle.append(w)
            else:  # the worker died on this case
                code = w.proc.wait()
                finish(w, "crash", f"worker exited with {code}")
                idle.append(Worker())
        now = time.monotonic()
        for w in [w for w in busy.values() if now - w.started > timeout]:
            finish(w, "hang", f"no answer within {timeout:g} s")
            w.stop()
            idle.append(Worker())
    for w in idle:
        w.stop()
    return results


def report(results: list[dict], seconds: float) -> dict:
    by_kind: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for r in results:
        by_kind[r["kind"]][r["outcome"]] += 1
    total = collections.Counter(r["outcome"] for r in results)
    return {"cases": len(results), "seconds": round(seconds, 1),
            "counts": {o: total[o] for o in OUTCOMES},
            "by_kind": {k: {o: c[o] for o in OUTCOMES} for k, c in sorted(by_kind.items())},
            "max_worker_rss_mb": max((r["rss_mb"] for r in results), default=0),
            "failures": [r for r in results if r["outcome"] in OUTCOMES[2:]][:50]}


def print_report(summary: dict) -> None:
    print(f"{summary['cases']} cases in {summary['seconds']} s "
          f"(largest worker peak RSS {summary['max_worker_rss_mb']} MB)")
    print(f"{'kind':<16}" + "".join(f"{o:>17}" for o in OUTCOMES))
    rows = [*summary["by_kind"].items(), ("total", summary["counts"])]
    for kind, counts in rows:
        print(f"{kind:<16}" + "".join(f"{counts[o]:>17}" for o in OUTCOMES))
    for f in summary["failures"]:
        print(f"  {f['outcome']}: {f['kind']} {f['seed']}: {f['detail']}  "
              f"(replay: python scripts/fuzz.py --replay {f['kind']} {f['seed']})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000, help="number of cases")
    parser.add_argument("--kinds", default=",".join(CASES),
                        help=f"comma-separated case kinds (default: all of {', '.join(CASES)})")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds a case may take before it counts as a hang")
    parser.add_argument("--json", metavar="OUT", help="also write the summary as JSON")
    parser.add_argument("--replay", nargs=2, metavar=("KIND", "SEED"),
                        help="run one case in this process and print its outcome")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker()
        return 0
    if args.replay:
        print(*run_case(args.replay[0], int(args.replay[1])), sep=": ")
        return 0
    kinds = args.kinds.split(",")
    unknown = set(kinds) - set(CASES) - set(SELFTEST)
    if unknown or args.cases < 1 or args.jobs < 1:
        parser.error(f"unknown kinds {sorted(unknown)}" if unknown
                     else "--cases and --jobs must be at least 1")
    cases = [(kinds[i % len(kinds)], args.seed + i) for i in range(args.cases)]
    started = time.monotonic()
    summary = report(run_cases(cases, args.jobs, args.timeout, progress=True),
                     time.monotonic() - started)
    print_report(summary)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    bad = sum(summary["counts"][o] for o in OUTCOMES[2:])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
