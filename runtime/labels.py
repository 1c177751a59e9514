"""Emotion label sets and the spellings of them that data sets use."""

from __future__ import annotations

#: FER2013's seven classes, in the order of its ``emotion`` column.
FER2013_LABELS: tuple[str, ...] = (
    "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral",
)

#: FER+ adds contempt; we keep FER2013's order and append it.
FERPLUS_LABELS: tuple[str, ...] = FER2013_LABELS + ("contempt",)

_SPELLINGS = {
    "angry": "angry", "anger": "angry", "mad": "angry",
    "disgust": "disgust", "disgusted": "disgust", "disgusting": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear",
    "happy": "happy", "happiness": "happy", "joy": "happy", "smile": "happy",
    "sad": "sad", "sadness": "sad", "unhappy": "sad",
    "surprise": "surprise", "surprised": "surprise", "suprise": "surprise",
    "neutral": "neutral", "calm": "neutral", "none": "neutral",
    "contempt": "contempt", "contemptuous": "contempt",
}


def canonical_label(name: str) -> str | None:
    """Map a label spelling (``Happiness``, ``surprised``, ``anger``…) to ours, or None."""
    key = name.strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    return _SPELLINGS.get(key)
