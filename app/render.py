"""What the app shows: photos with boxed, labelled faces and per-face probability bars.

Plain NumPy, Pillow and HTML strings, no Gradio, so it is easy to test. Faces are numbered
from 1 in the order the recognizer returns them; the number on a box matches its card.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np

from ..runtime.draw import LabelledBox, draw_boxes

#: One colour per emotion, used for boxes and bars alike.
EMOTION_COLOURS: dict[str, str] = {
    "angry": "#e5484d", "disgust": "#30a46c", "fear": "#8e4ec6", "happy": "#f5a524",
    "sad": "#3e63dd", "surprise": "#e93d82", "neutral": "#8b8d98", "contempt": "#a16207",
}
_SPARE_COLOURS = ("#0091ff", "#12a594", "#ad7f58", "#d6409f")

#: Photos are shown (and analysed) at most this many pixels on their longer side.
DISPLAY_MAX_SIDE = 1600
#: Smaller photos are enlarged to this longer side for drawing, so labels stay legible.
DISPLAY_MIN_SIDE = 960


def colour_of(label: str) -> str:
    if label in EMOTION_COLOURS:
        return EMOTION_COLOURS[label]
    return _SPARE_COLOURS[sum(map(ord, label)) % len(_SPARE_COLOURS)]


def fit_for_display(image: np.ndarray, max_side: int = DISPLAY_MAX_SIDE) -> np.ndarray:
    """``image`` downscaled so its longer side is at most ``max_side`` (unchanged if smaller)."""
    from ..runtime.image import resize

    height, width = image.shape[:2]
    longest = max(height, width)
    if longest <= max_side:
        return image
    ratio = max_side / longest
    return resize(image, max(1, round(width * ratio)), max(1, round(height * ratio)))


def annotate(image: np.ndarray, faces: Sequence,
             min_side: int = DISPLAY_MIN_SIDE) -> np.ndarray:
    """An RGB copy of ``image`` with each face boxed in its emotion's colour and labelled
    ``"N label score%"`` (just ``N`` where the box is too narrow for the text). N is the
    face's track id where it has one (stream mode, ``#3``), else its place in the list.

    Images smaller than ``min_side`` on their longer side are enlarged first (0: never).
    """
    tags = [f"#{face.track_id}" if getattr(face, "track_id", None) is not None else str(n)
            for n, face in enumerate(faces, start=1)]
    boxes = [LabelledBox(tuple(face.box), f"{tag} {face.label} {face.score:.0%}",
                         colour_of(face.label), short_text=tag)
             for tag, face in zip(tags, faces, strict=True)]
    return draw_boxes(image, boxes, min_side=min_side)


def _bar(label: str, probability: float, top: bool) -> str:
    percent = f"{probability:.1%}"
    width = f"{max(probability, 0.0) * 100:.1f}%"
    weight = " ee-top" if top else ""
    return (f'<div class="ee-row{weight}"><span class="ee-name">{html.escape(label)}</span>'
            f'<span class="ee-track"><span class="ee-fill" style="width:{width};'
            f'background:{colour_of(label)}"></span></span>'
            f'<span class="ee-value">{percent}</span></div>')


def face_cards_html(faces: Sequence) -> str:
    """One card per face: its number, top label, detection score and a bar per emotion."""
    if not faces:
        return '<div class="ee-empty">No faces to show.</div>'
    cards = []
    for number, face in enumerate(faces, start=1):
        bars = "".join(_bar(label, prob, label == face.label)
                       for label, prob in face.probabilities.items())
        found = ("" if face.detection_score is None
                 else f'<span class="ee-muted">face score {face.detection_score:.2f}</span>')
        title = (f'<div class="ee-title"><span class="ee-badge" '
                 f'style="background:{colour_of(face.label)}">{number}</span>'
                 f"<b>{html.escape(face.label)}</b> {face.score:.0%}{found}</div>")
        cards.append(f'<div class="ee-card">{title}{bars}</div>')
    return f'<div class="ee-cards">{"".join(cards)}</div>'


#: Styles for the cards; passed to ``launch(css=...)``.
CARDS_CSS = """
.ee-cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr));
            gap: 10px; }
.ee-card { border: 1px solid var(--border-color-primary); border-radius: 8px;
           padding: 8px 10px; background: var(--block-background-fill); }
.ee-title { display: flex; align-items: center; gap: 6px; margin-bottom: 6px;
            color: var(--body-text-color); }
.ee-badge { color: white; border-radius: 999px; min-width: 22px; height: 22px;
            display: inline-flex; align-items: center; justify-content: center;
            font-size: 12px; font-weight: 600; }
.ee-muted { margin-left: auto; font-size: 12px; color: var(--body-text-color-subdued); }
.ee-row { display: grid; grid-template-columns: 66px 1fr 46px; align-items: center;
          gap: 6px; font-size: 13px; line-height: 20px; color: var(--body-text-color); }
.ee-top { font-weight: 600; }
.ee-track { height: 10px; border-radius: 5px; background: var(--neutral-200);
            overflow: hidden; }
.dark .ee-track { background: var(--neutral-700); }
.ee-fill { display: block; height: 100%; border-radius: 5px; }
.ee-value { text-align: right; font-variant-numeric: tabular-nums; }
.ee-empty { color: var(--body-text-color-subdued); padding: 8px 0; }
"""
