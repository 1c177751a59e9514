"""The ``emotion-edge`` command line: one entry point, one subcommand per stage.

Each subcommand lives beside its stage (``train/cli.py`` …) as ``add_arguments(parser)``
and ``run(args)``. The top-level parser only names the subcommands; a stage's CLI module is
imported when its subcommand runs (``emotion-edge predict …`` or ``emotion-edge predict
--help``), never for ``emotion-edge --help``, so the top level stays fast and no stage pulls in
another's engine (TensorFlow, Gradio, Matplotlib).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from . import __version__

#: subcommand -> (module holding add_arguments/run, one-line help)
SUBCOMMANDS = {
    "train": ("emotion_edge.train.cli", "train a model on FER2013"),
    "export": ("emotion_edge.export.cli", "export a model to TFLite and ONNX, with parity checks"),
    "evaluate": ("emotion_edge.data.evaluate", "score a model on a data set"),
    "predict": ("emotion_edge.runtime.cli", "recognise emotions on the faces in photos"),
    "bench": ("emotion_edge.benchmarks.cli", "benchmark every artifact and the peer model"),
    "info": ("emotion_edge.info", "version, installed engines and bundled models"),
    "app": ("emotion_edge.app.cli", "serve the web app (Gradio) on localhost"),
    "video": ("emotion_edge.video.cli", "follow faces and their emotions through a video"),
    "batch": ("emotion_edge.batch.cli", "recognise emotions on many photos with Ray Data"),
}

#: the extra that brings what a subcommand's stage needs beyond the base install
COMMAND_EXTRAS = {"train": "train", "export": "export", "bench": "bench", "app": "app",
                  "video": "video", "batch": "ray"}
#: for the other subcommands, the extra that brings a missing module (``info --models``)
MODULE_EXTRAS = {"tensorflow": "keras", "keras": "keras", "ai_edge_litert": "tflite",
                 "onnxruntime": "onnx", "cv2": "opencv", "gradio": "app",
                 "matplotlib": "bench", "av": "video"}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: global options and the subcommand list, importing no stage."""
    parser = argparse.ArgumentParser(
        prog="emotion-edge", description="Facial emotion recognition, fast on edge devices.")
    parser.add_argument("--version", action="version", version=f"emotion-edge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def build_subcommand_parser(name: str) -> argparse.ArgumentParser:
    """The parser of one subcommand; imports that stage's CLI module."""
    module, help_text = SUBCOMMANDS[name]
    parser = argparse.ArgumentParser(prog=f"emotion-edge {name}", description=help_text)
    parser.set_defaults(command=name, _module=module)
    importlib.import_module(module).add_arguments(parser)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the global options, then the chosen subcommand's own arguments."""
    argv = sys.argv[1:] if argv is None else list(argv)
    split = next((i for i, a in enumerate(argv) if not a.startswith("-")), len(argv))
    top = build_parser().parse_args(argv[:split + 1])
    if not top.command:
        return top
    args = build_subcommand_parser(top.command).parse_args(argv[split + 1:])
    args.verbose = top.verbose
    return args


def missing_extra(exc: ModuleNotFoundError, command: str) -> str | None:
    """The one-line message for a third-party module that is not installed (None for one of
    our own modules: that is a bug, not a missing extra)."""
    module = (exc.name or "").split(".")[0]
    if not module or module == "emotion_edge":
        return None
    extra = COMMAND_EXTRAS.get(command) or MODULE_EXTRAS.get(module, "all")
    return (f"emotion-edge {command}: error: this needs the [{extra}] extra ({module} is not "
            f"installed); install it with: pip install 'emotion-edge[{extra}]'")


def main(argv: list[str] | None = None) -> int:
    from .errors import EmotionEdgeError

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), "")
    try:
        args = parse_args(argv)
        if not args.command:
            build_parser().print_help()
            return 2
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                            format="%(levelname)s %(name)s: %(message)s")
        code = int(importlib.import_module(args._module).run(args) or 0)
        sys.stdout.flush()  # a closed pipe fails here, inside the try
        return code
    except EmotionEdgeError as exc:
        print(f"emotion-edge {command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        message = missing_extra(exc, command)
        if message is None:
            raise
        print(message, file=sys.stderr)
        return 2
    except BrokenPipeError:  # `emotion-edge predict … | head -1`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print(f"emotion-edge {command}: interrupted", file=sys.stderr)
        return 130
