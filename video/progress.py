"""A progress bar for long video runs: tqdm where it is installed, else a plain stderr line."""

from __future__ import annotations

import sys
import time
from typing import Any


class _PlainBar:
    """A one-line stderr counter, redrawn at most twice a second."""

    def __init__(self, total: int | None, desc: str) -> None:
        self.total, self.desc, self.n = total, desc, 0
        self._start = self._shown = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self._shown >= 0.5:
            self._shown = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        rate = self.n / max(now - self._start, 1e-9)
        of = f"/{self.total}" if self.total else ""
        sys.stderr.write(f"\r{self.desc}: {self.n}{of} frames, {rate:.1f} fps")
        sys.stderr.flush()

    def close(self) -> None:
        self._draw(time.perf_counter())
        sys.stderr.write("\n")


def progress_bar(total: int | None, desc: str = "video") -> Any:
    """An object with ``update(n)`` and ``close()`` counting frames on stderr."""
    try:
        from tqdm import tqdm
    except ImportError:
        return _PlainBar(total, desc)
    return tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, dynamic_ncols=True)
