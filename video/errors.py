"""Typed errors for video input, children of the package's one error family."""

from __future__ import annotations

from ..runtime.errors import EmotionEdgeError


class VideoError(EmotionEdgeError):
    """A video file or stream cannot be read or written."""


class NotAVideoError(VideoError):
    """The input is not a video (an image, a text file, an audio-only file ...)."""


class TruncatedVideoError(VideoError):
    """The video file is damaged or cut short."""


class EmptyVideoError(VideoError):
    """The video (or the part chosen with --start/--end) holds no frames."""


class UnsupportedCodecError(VideoError):
    """The video's codec has no decoder here (or no encoder for the output)."""


class StreamOpenError(VideoError):
    """A webcam or stream URL cannot be opened or stopped delivering frames."""
