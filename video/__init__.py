"""Video stage: analyse video files, webcams and streams with the runtime's stream mode.

Needs the ``[video]`` extra (PyAV for decoding and encoding, Matplotlib for the plot).

    from emotion_edge.video import VideoTargets, analyze_video

    run = analyze_video("clip.mp4", targets=VideoTargets(out=Path("annotated.mp4")))
    print(run.summary["processing_fps"], run.summary["tracks"])
"""

from .analyze import VideoOptions, VideoRun, VideoTargets, analyze_video
from .errors import (
    EmptyVideoError,
    NotAVideoError,
    StreamOpenError,
    TruncatedVideoError,
    UnsupportedCodecError,
    VideoError,
)

__all__ = ["EmptyVideoError", "NotAVideoError", "StreamOpenError", "TruncatedVideoError",
           "UnsupportedCodecError", "VideoError", "VideoOptions", "VideoRun", "VideoTargets",
           "analyze_video"]
