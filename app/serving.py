"""Serving hygiene for the app: answer files that are never rewritten while a client reads
them, memory handed back after big uploads, and error messages without server paths."""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np

#: Annotated photos are written here, one new file per answer.
RESULTS_DIR = Path(tempfile.gettempdir()) / "emotion-edge-results"
#: Result files kept at most; older ones are deleted as new ones are written. Gradio copies
#: each into its own cache when the answer is sent, so only the newest few are ever read.
KEEP_RESULTS = 64


class ResultFiles:
    """Annotated photos as JPEG files, each written once under a new name and never rewritten.

    Gradio, given an array, saves it under a name made from its content and rewrites that
    file for every identical answer, so a client still downloading the first copy of the same
    photo got a truncated file ("Too little data for declared Content-Length"). Here each
    answer gets its own file, written whole under a temporary name and renamed into place;
    the oldest beyond ``keep`` are deleted, and so are the folders of servers that ended
    without cleaning up (named after their process id).
    """

    def __init__(self, folder: Path = RESULTS_DIR, keep: int = KEEP_RESULTS) -> None:
        self.folder = folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.keep = keep
        self._written: list[Path] = []
        self._lock = threading.Lock()
        _remove_orphans(folder)

    def save(self, image: np.ndarray) -> Path:
        from PIL import Image

        self.folder.mkdir(parents=True, exist_ok=True)
        name = uuid.uuid4().hex
        staging = self.folder / f".{name}.part"
        Image.fromarray(image).save(staging, format="JPEG", quality=90)
        path = staging.rename(self.folder / f"{name}.jpg")
        with self._lock:
            self._written.append(path)
            old, self._written = self._written[:-self.keep], self._written[-self.keep:]
        for stale in old:
            stale.unlink(missing_ok=True)
        return path

    def close(self) -> None:
        with self._lock:
            written, self._written = self._written, []
        for path in written:
            path.unlink(missing_ok=True)
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to someone else
        return True
    return True


def _remove_orphans(root: Path) -> None:
    """Delete the result folders in ``root`` whose server process has ended."""
    if not root.is_dir():
        return
    for folder in root.iterdir():
        pid = folder.name.partition("-")[0]
        if folder.is_dir() and pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _load_libc() -> Any:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None


_LIBC = _load_libc()


def release_free_memory() -> None:
    """Hand memory the process has freed back to the system (glibc; elsewhere a no-op).

    A large photo is decoded in many worker threads' malloc arenas, and glibc keeps what
    they free for reuse: after a burst of big uploads the server stayed hundreds of MB above
    its baseline. ``malloc_trim`` returns the free pages, so memory goes back down. The app
    calls it after each request, once the request's arrays are gone.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def without_server_paths(message: str) -> str:
    """``message`` with every path into the server's temporary folders cut to its file name,
    so an error about an upload names the file, not where the server keeps it."""
    roots = {tempfile.gettempdir(), os.environ.get("GRADIO_TEMP_DIR") or ""} - {""}
    for root in sorted(roots, key=len, reverse=True):
        pattern = re.escape(str(Path(root))) + r"/[^\s'\",:)]*"
        message = re.sub(pattern, lambda match: Path(match.group()).name, message)
    return message
