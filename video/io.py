"""Reading and writing video with PyAV (FFmpeg in its wheels): files, webcams, stream URLs.

:func:`open_video` opens a file path, a webcam index (``"0"``: ``/dev/video0`` through
video4linux2, where FFmpeg has it) or a URL (``rtsp://``, ``http://`` ...), and maps
FFmpeg's failures to the typed errors in :mod:`.errors`. :class:`VideoReader` yields RGB
frames with their times in seconds; :class:`VideoWriter` encodes frames to H.264 (MPEG-4
Part 2 where this FFmpeg has no H.264 encoder) at a constant frame rate.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.errors import BackendUnavailableError, ConfigError
from .errors import (
    EmptyVideoError,
    NotAVideoError,
    StreamOpenError,
    TruncatedVideoError,
    UnsupportedCodecError,
    VideoError,
)

log = logging.getLogger(__name__)

#: First bytes of common video containers: a file that starts like one but cannot be
#: opened is damaged or truncated rather than "not a video".
_CONTAINER_MAGIC = ((4, b"ftyp"), (0, b"RIFF"), (0, b"\x1a\x45\xdf\xa3"), (0, b"OggS"),
                    (0, b"FLV"), (0, b"\x00\x00\x01\xba"), (0, b"\x47"))
#: FFmpeg demuxers of still images (``png_pipe``, ``jpeg_pipe`` ...): a photo, not a video.
_IMAGE_DEMUXERS = ("image2", "_pipe")
#: Containers the annotated video may be written in (they all take H.264 and MPEG-4).
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi")
#: Encoders tried for the annotated video, best first.
ENCODERS = ("libx264", "h264", "mpeg4")
#: Scaler for the decoded frames' conversion to RGB (same size): FFmpeg's fast bilinear
#: gave the same pixels as its default (bicubic) on our test clips, in half the time.
RGB_SCALER = "FAST_BILINEAR"
#: libx264 preset: fast enough to keep up with the analysis on one thread.
X264_PRESET = "ultrafast"


def import_av() -> Any:
    """PyAV, or BackendUnavailableError naming the extra that installs it."""
    try:
        import av
    except ImportError:
        raise BackendUnavailableError(
            "video needs PyAV; install it with: pip install 'emotion-edge[video]'") from None
    return av


@dataclass(frozen=True)
class VideoInfo:
    """What the input is: its name, size, frame rate, codec and (if known) frame count."""

    source: str
    width: int
    height: int
    fps: float
    codec: str
    frames: int | None        # None for live sources and containers that do not say
    duration_s: float | None
    live: bool


def _is_live(source: str) -> bool:
    return source.isdigit() or "://" in source


def _open_container(source: str, av: Any) -> Any:
    if source.isdigit():
        device = f"/dev/video{source}" if sys.platform.startswith("linux") else source
        fmt = "v4l2" if sys.platform.startswith("linux") else None
        try:
            return av.open(device, format=fmt)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise StreamOpenError(f"webcam {source} ({device}) cannot be opened: {exc}") \
                from None
    if "://" in source:
        try:
            return av.open(source, timeout=10.0)
        except (av.error.FFmpegError, OSError) as exc:
            raise StreamOpenError(f"{source}: the stream cannot be opened ({exc})") from None
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"{source}: no such file" if not path.exists()
                          else f"{source}: not a file")
    try:
        return av.open(str(path))
    except av.error.FFmpegError as exc:
        raise _open_failure(path, exc) from None


def _open_failure(path: Path, exc: Exception) -> VideoError:
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError as os_exc:
        return NotAVideoError(f"{path}: cannot be read ({os_exc})")
    if not head:
        return EmptyVideoError(f"{path}: the file is empty")
    if any(head[at:at + len(magic)] == magic for at, magic in _CONTAINER_MAGIC):
        return TruncatedVideoError(f"{path}: a video file that is damaged or truncated "
                                   f"(FFmpeg: {getattr(exc, 'strerror', None) or exc})")
    return NotAVideoError(f"{path}: not a video file FFmpeg can read")


def upright(frame: Any) -> np.ndarray:
    """A decoded frame as RGB, turned as its display matrix says (videos filmed with a
    phone held upright are stored sideways with a rotation to apply)."""
    rgb = frame.to_ndarray(format="rgb24", interpolation=RGB_SCALER)
    turns = round((frame.rotation or 0) / 90) % 4  # FFmpeg's angle is counter-clockwise
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


class VideoReader:
    """Decoded RGB frames of one video stream with their times; a context manager.

    threads: decoder threads (None: FFmpeg's choice).
    """

    def __init__(self, source: str | Path, *, threads: int | None = None) -> None:
        av = import_av()
        self._av = av
        self.source = str(source)
        self._container = _open_container(self.source, av)
        try:
            self._stream = self._video_stream()
            if threads is not None:
                self._stream.codec_context.thread_count = threads
            self.info = self._info()
        except BaseException:
            self._container.close()
            raise

    def _video_stream(self) -> Any:
        name = self._container.format.name
        if any(part in name for part in _IMAGE_DEMUXERS):
            raise NotAVideoError(f"{self.source}: a still image ({name}), not a video; use "
                                 "emotion-edge predict for photos")
        if not self._container.streams.video:
            raise NotAVideoError(f"{self.source}: holds no video stream "
                                 f"({len(self._container.streams)} other streams)")
        stream = self._container.streams.video[0]
        if stream.codec_context is None:
            raise UnsupportedCodecError(f"{self.source}: no decoder here for its video codec")
        stream.thread_type = "AUTO"
        return stream

    def _info(self) -> VideoInfo:
        stream = self._stream
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 30.0
        duration = (float(stream.duration * stream.time_base)
                    if stream.duration and stream.time_base else None)
        if duration is None and self._container.duration:
            duration = self._container.duration / 1_000_000
        frames = stream.frames or (round(duration * fps) if duration else None)
        return VideoInfo(self.source, stream.codec_context.width, stream.codec_context.height,
                         fps, stream.codec_context.name, frames or None, duration,
                         _is_live(self.source))

    def frames(self, start_s: float = 0.0,
               end_s: float | None = None) -> Iterator[tuple[np.ndarray, float, Any]]:
        """RGB uint8 frames (turned upright, see :func:`upright`), their times in seconds
        and the decoded ``av.VideoFrame``s, from ``start_s`` to ``end_s``.

        Times always increase (a repeated or missing timestamp becomes the previous one
        plus one frame); a webcam's or stream's start at 0. Raises EmptyVideoError when no
        frame is in range and TruncatedVideoError, after the last good frame, when decoding
        fails part-way or ends before the frame count the header lists.
        """
        if start_s > 0 and not self.info.live:
            self._seek(start_s)
        step = 1.0 / self.info.fps
        last: float | None = None
        origin: float | None = None  # live sources count from their first frame
        count = 0
        for frame in self._decoded():
            if self.info.live and frame.time is not None and origin is None:
                origin = frame.time
            time_s = frame.time - (origin or 0.0) if frame.time is not None else (
                (last + step) if last is not None else 0.0)
            if last is not None and time_s <= last:
                time_s = last + step
            last = time_s
            if time_s < start_s - step / 2:
                continue
            if end_s is not None and time_s > end_s:
                break
            count += 1
            yield upright(frame), time_s, frame
        else:
            self._check_complete(count, whole=start_s <= 0 and end_s is None)
        if count == 0:
            where = "" if start_s <= 0 and end_s is None else " between --start and --end"
            raise EmptyVideoError(f"{self.source}: no video frames{where}")

    def _check_complete(self, count: int, whole: bool) -> None:
        """A file whose header lists more frames than could be decoded is cut short
        (FFmpeg stops at the end of the data without an error)."""
        listed = self._stream.frames
        if count and whole and not self.info.live and listed and count + 1 < listed:
            raise TruncatedVideoError(f"{self.source}: only {count} of the {listed} frames "
                                      "its header lists could be decoded; the file is "
                                      "damaged or truncated")

    def _seek(self, start_s: float) -> None:
        try:
            self._container.seek(int(start_s * 1_000_000), backward=True, any_frame=False)
        except self._av.error.FFmpegError as exc:
            log.debug("seek failed (%s); decoding from the start", exc)

    def _decoded(self) -> Iterator[Any]:
        av = self._av
        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets)
                decoded = packet.decode()
            except StopIteration:
                return
            except av.error.DecoderNotFoundError as exc:
                raise UnsupportedCodecError(f"{self.source}: no decoder for this video's "
                                            f"codec ({exc})") from None
            except av.error.FFmpegError as exc:
                kind = StreamOpenError if self.info.live else TruncatedVideoError
                raise kind(f"{self.source}: decoding failed part-way ({exc}); the file is "
                           "damaged or truncated") from None
            yield from decoded

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def writable_planes(frame: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Y, U and V planes of a decoded YUV 4:2:0 frame as writable arrays. The frame's
    buffer is first made its own (the decoder may still use it as a reference)."""
    frame.make_writable()
    planes = []
    for plane in frame.planes[:3]:
        flat = np.frombuffer(plane, np.uint8)
        planes.append(flat.reshape(plane.height, plane.line_size)[:, :plane.width])
    return planes[0], planes[1], planes[2]


def pick_encoder(av: Any) -> str:
    """The first encoder of :data:`ENCODERS` this FFmpeg has."""
    for name in ENCODERS:
        try:
            av.codec.Codec(name, "w")
        except (av.error.FFmpegError, ValueError):  # UnknownCodecError is a ValueError
            continue
        return name
    raise UnsupportedCodecError(f"this FFmpeg has none of the encoders {', '.join(ENCODERS)}")


class VideoWriter:
    """Encodes RGB frames to ``path`` at ``fps``; a context manager. Odd sizes lose their
    last row or column (the encoders need even ones)."""

    def __init__(self, path: str | Path, width: int, height: int, fps: float, *,
                 threads: int | None = None) -> None:
        av = import_av()
        self.path = Path(path)
        self.encoder = pick_encoder(av)
        self.width, self.height = width - width % 2, height - height % 2
        rate = Fraction(fps).limit_denominator(1001)
        try:
            self._container = av.open(str(self.path), "w")
        except av.error.FFmpegError as exc:
            raise ConfigError(f"{self.path}: cannot write a video here ({exc})") from None
        stream = self._container.add_stream(self.encoder, rate=rate)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
        if self.encoder == "libx264":
            stream.options = {"preset": X264_PRESET, "crf": "23"}
        if threads is not None:
            stream.codec_context.thread_count = threads
        self._stream = stream
        self._time_base = 1 / rate
        self._av = av
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        """Encode one RGB frame."""
        self._encode(self._av.VideoFrame.from_ndarray(
            np.ascontiguousarray(rgb[:self.height, :self.width]), format="rgb24"))

    def takes_as_is(self, frame: Any) -> bool:
        """Whether a decoded frame can be encoded as it is (YUV 4:2:0 of the output size)."""
        return (frame.format.name == "yuv420p" and not frame.rotation
                and frame.width == self.width and frame.height == self.height)

    def write_decoded(self, frame: Any) -> None:
        """Encode a decoded frame (see :meth:`takes_as_is`) without converting it."""
        frame.pict_type = 0  # let the encoder choose the frame type, not the source's
        self._encode(frame)

    def _encode(self, frame: Any) -> None:
        frame.pts = self.frames
        frame.time_base = self._time_base
        self.frames += 1
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and finish the file, so it plays."""
        if self._container is None:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
