"""Small helpers shared by the export modules: provenance (versions, command) and messages."""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

from ..data.versions import installed_version

#: distribution names whose versions every export records, by the name shown in the sidecar
LIBRARIES = {
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "keras": ("keras",),
    "tf2onnx": ("tf2onnx",),
    "onnx": ("onnx",),
    "onnxruntime": ("onnxruntime",),
    "ai-edge-litert": ("ai-edge-litert",),
    "openvino": ("openvino",),
    "ai-edge-quantizer": ("ai-edge-quantizer",),
    "tf-keras": ("tf-keras", "tf_keras"),
    "tensorflow-model-optimization": ("tensorflow-model-optimization",),
}


def library_versions() -> dict[str, str | None]:
    """Installed versions of the export libraries (``None`` when one is absent)."""
    return {name: installed_version(*dists) for name, dists in LIBRARIES.items()}


def command_line() -> str:
    """This process's command line, as a shell would take it (program name without its folder)."""
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message: enough to say what went wrong."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout, by Python or by C++ (converters print progress),
    to stderr, so ``--json`` output on stdout stays clean."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
