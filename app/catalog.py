"""The app's backend menu: which model artifacts exist, which can run here, and a cache of
loaded recognizers so switching backends needs no restart.

Artifacts are found through the format registry (``runtime/formats.py``): every complete
artifact in the models folder named with a registry suffix and with a sidecar is an entry
(an OpenVINO ``.xml`` with its ``.bin`` is one entry), on its format's own backend, and once
more on each other backend that reads its format ("ONNX int8 on OpenVINO") unless the model
has that backend's own file at the same precision. Beside other models each entry is named
after its model too ("accurate · TFLite int8"), the default model's first. An entry whose
engine is not installed stays in the menu, marked unavailable with the extra to install.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..runtime.bundled import DEFAULT_FORMAT, DEFAULT_STEM, bundled_models, resolve_model
from ..runtime.detectors import DEFAULT_DETECTOR
from ..runtime.detectors import DETECTORS as DETECTOR_REGISTRY
from ..runtime.errors import ConfigError, ModelLoadError
from ..runtime.formats import (
    BACKENDS,
    FORMATS,
    MODEL_EXTENSIONS,
    ArtifactFormat,
    Backend,
    backend_entries,
    backend_title,
    format_of,
    scan_artifacts,
    stem_of,
)
from ..runtime.sidecar import read_sidecar

if TYPE_CHECKING:
    from ..runtime.recognizer import EmotionRecognizer

log = logging.getLogger(__name__)

#: Face detectors offered in the app, read from the detector registry (those whose engine
#: is installed): name -> what it is good for. ``whole-image`` skips detection and
#: classifies the whole photo as one face (for photos that are face crops).
DETECTORS: dict[str, str] = {
    **{name: info.summary for name, info in DETECTOR_REGISTRY.items() if info.available()},
    "whole-image": "the photo is one face crop",
}
#: Faces classified per photo at most (a class photo has a couple of dozen).
MAX_FACES = 64


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the backend menu: an artifact file and whether its engine is installed."""

    path: Path
    format: ArtifactFormat
    title: str                 # "TFLite int8", or "ferplus · TFLite int8" beside other stems
    stem: str = DEFAULT_STEM   # the model it belongs to: "default", "accurate", "ferplus"
    backend: str | None = None  # the engine running it; None: its format's own

    @property
    def engine(self) -> Backend:
        return BACKENDS[self.backend or self.format.backend]

    @property
    def unavailable(self) -> str | None:
        """Why it cannot run here, e.g. "pip install 'emotion-edge[keras]'"; None if it can.
        Checked each time it is asked (an engine may be installed while the app runs)."""
        importlib.invalidate_caches()
        return None if self.engine.available() else self.engine.install_hint

    @property
    def key(self) -> str:
        """The dropdown value, also what API callers pass: the title, e.g. "TFLite int8"."""
        return self.title

    @property
    def available(self) -> bool:
        return self.unavailable is None

    @property
    def label(self) -> str:
        """The dropdown text."""
        return self.title if self.available else f"{self.title} (unavailable: {self.unavailable})"


def _row_of(path: Path) -> ArtifactFormat | None:
    """The artifact's registry row from its name and sidecar; None if it is not one."""
    try:
        return format_of(path, read_sidecar(path))
    except ModelLoadError:
        return None


def scan_folder(folder: str | os.PathLike) -> list[Path]:
    """Artifacts in ``folder``: complete artifacts named with a registry suffix that have a
    sidecar."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: models folder not found")
    return [path for path, _ in scan_artifacts(folder)]


def _menu_entries(paths: Sequence[Path]) -> list[ModelChoice]:
    rows = [(path, _row_of(path)) for path in paths]
    known = [(path, row) for path, row in rows if row is not None]
    stems = {stem_of(path, row) for path, row in known}
    order = {row.key: i for i, row in enumerate(FORMATS)}
    known.sort(key=lambda item: (stem_of(*item) != DEFAULT_STEM, stem_of(*item),
                                 order[item[1].key]))
    entries = []
    for path, row, backend in backend_entries(known):
        stem = stem_of(path, row)
        title = backend_title(row, backend)
        title = title if len(stems) == 1 else f"{stem} · {title}"
        entries.append(ModelChoice(path=path, format=row, title=title, stem=stem,
                                   backend=None if backend == row.backend else backend))
    titles = Counter(entry.title for entry in entries)
    return [replace(e, title=f"{e.title} ({e.path.parent.name}/)") if titles[e.title] > 1 else e
            for e in entries]


def find_models(models: Sequence[str | os.PathLike] | None = None,
                models_dir: str | os.PathLike | None = None) -> list[ModelChoice]:
    """The backend menu, in registry order.

    ``models``: artifact paths or bundled names to list; ``models_dir``: a folder to scan.
    With neither, the bundled models are listed. Duplicates are listed once.
    """
    paths: list[Path] = []
    if models_dir is not None:
        paths += scan_folder(models_dir)
    for name in models or ():
        path = resolve_model(name)
        if _row_of(path) is None:
            raise ConfigError(f"{path}: not a model file; expected a "
                              f"{', '.join(MODEL_EXTENSIONS)} file with its .json sidecar")
        paths.append(path)
    if models_dir is None and not models:
        paths = bundled_paths()
    unique = list(dict.fromkeys(p.resolve() for p in paths))
    return _menu_entries(unique)


def bundled_paths() -> list[Path]:
    """Every bundled artifact (``runtime/models/``), stem by stem in registry order."""
    return [path for group in bundled_models().values() for path in group]


def default_choice(choices: Sequence[ModelChoice],
                   preferred: str | os.PathLike | None = None) -> ModelChoice | None:
    """The entry to select first: ``preferred`` if listed, else the first available TFLite
    int8, else the first available entry (None when nothing can run)."""
    if preferred is not None:
        wanted = resolve_model(preferred).resolve()
        for choice in choices:
            if choice.path == wanted:
                return choice
    available = [c for c in choices if c.available]
    for choice in available:
        if choice.format == DEFAULT_FORMAT and choice.backend is None:
            return choice
    return available[0] if available else None


def _aliases(choices: Sequence[ModelChoice]) -> dict[str, ModelChoice]:
    """Other names API callers may give an entry: its file name ("ferplus.int8.tflite"), and
    for the default model's entries their bare format title ("TFLite int8"), as the menu
    names them when the default model is the only one."""
    aliases: dict[str, ModelChoice] = {}
    for choice in choices:
        aliases.setdefault(choice.path.name, choice)
        if choice.stem == DEFAULT_STEM:
            aliases.setdefault(backend_title(choice.format, choice.backend
                                             or choice.format.backend), choice)
    return aliases


class RecognizerPool:
    """Loaded recognizers by (artifact, detector), each used by one caller at a time.

    Loading is lazy and cached, so switching backends in the app costs one load the first
    time and nothing after. A failed load is not cached: the next call tries again.
    """

    def __init__(self, choices: Sequence[ModelChoice], threads: int | None = None) -> None:
        self.choices = {c.key: c for c in choices}
        self.aliases = _aliases(choices)
        self.threads = threads
        self._lock = threading.Lock()
        self._loaded: dict[tuple[str, str], tuple[EmotionRecognizer, threading.Lock]] = {}

    def choice(self, key: str | None) -> ModelChoice:
        """The entry named ``key``: its menu title, or an alias (see ``_aliases``)."""
        found = self.choices.get(key or "") or self.aliases.get(key or "")
        if found is None:
            raise ConfigError(f"unknown backend {key!r}; choose one from the menu")
        return found

    def _load(self, choice: ModelChoice, detector: str) -> EmotionRecognizer:
        from ..runtime.recognizer import EmotionRecognizer, RecognizerOptions

        importlib.invalidate_caches()  # availability is checked now, not at start-up
        choice.engine.require()  # raises BackendUnavailableError naming the extra
        whole = detector == "whole-image"
        options = RecognizerOptions(model=choice.path, backend=choice.backend,
                                    threads=self.threads,
                                    detect_faces=not whole,
                                    detector=DEFAULT_DETECTOR if whole else detector,
                                    max_faces=MAX_FACES)
        log.info("loading %s with the %s detector", choice.path.name, detector)
        return EmotionRecognizer(options)

    @contextmanager
    def recognizer(self, key: str | None,
                   detector: str = DEFAULT_DETECTOR) -> Iterator[EmotionRecognizer]:
        """The loaded recognizer for menu entry ``key``, held exclusively while in use."""
        choice = self.choice(key)
        if detector not in DETECTORS:
            raise ConfigError(f"unknown detector {detector!r}; choose one of: "
                              f"{', '.join(DETECTORS)}")
        slot = (choice.key, detector)
        with self._lock:
            entry = self._loaded.get(slot)
            if entry is None:
                entry = (self._load(choice, detector), threading.Lock())
                self._loaded[slot] = entry
        recognizer, in_use = entry
        with in_use:
            yield recognizer

    def close(self) -> None:
        with self._lock:
            for recognizer, _ in self._loaded.values():
                recognizer.close()
            self._loaded.clear()
