"""``emotion-edge app``: serve the Gradio page on localhost.

Kept light: Gradio and the engines are imported only when the command runs, after the
options are checked (a bad port or thread count, or a port already in use, is refused before
anything loads).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket

from ..runtime.errors import ConfigError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model file or bundled name to select first "
                        "(default: the bundled TFLite int8 model)")
    parser.add_argument("--models-dir", metavar="DIR",
                        help="folder of .tflite/.onnx/.keras artifacts with sidecars to offer "
                        "(default: the bundled models)")
    parser.add_argument("--report", metavar="PATH", default="reports/benchmark.json",
                        help="benchmark report (json, with its png beside it) for the About tab")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per engine")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default: 7860)")


def check_options(args: argparse.Namespace) -> None:
    """Refuse a port outside 1-65535 or in use, and a thread count below 1."""
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port must be between 1 and 65535, got {args.port}")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}")
    try:
        with socket.create_server((args.host, args.port)):
            pass
    except OSError as exc:
        raise port_error(args, os.strerror(exc.errno) if exc.errno else str(exc)) from None


def port_error(args: argparse.Namespace, reason: str) -> ConfigError:
    """The error for a port the app cannot listen on, naming it and how to pick another."""
    other = args.port + 1 if args.port < 65535 else 7860
    return ConfigError(f"cannot listen on {args.host}:{args.port} ({reason.lower()}): "
                       f"is another server, perhaps another emotion-edge app, using port "
                       f"{args.port}? Pick another port: --port {other} "
                       f"(with make: make demo PORT={other})")


def run(args: argparse.Namespace) -> int:
    check_options(args)
    from .ui import build_app, launch, make_service

    service = make_service(models_dir=args.models_dir, model=args.model, threads=args.threads)
    try:
        demo = build_app(service, report=args.report)
        log.info("serving on http://%s:%d (Ctrl+C to stop)", args.host, args.port)
        try:
            launch(demo, host=args.host, port=args.port)
        except OSError as exc:  # taken between the check and the launch
            raise port_error(args, "it was taken while the app started") from exc
    finally:
        service.close()
    return 0
