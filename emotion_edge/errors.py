"""The error family, re-exported from the runtime (the bottom layer) for convenience."""

from .runtime.errors import *  # noqa: F401,F403  (re-export)
