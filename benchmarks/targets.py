"""What a benchmark measures: the artifacts (bundled, given, and the peer's), each a ``Target``.

A target that cannot run here (engine not installed, file missing, peer not fetched) is
kept with the reason it is skipped, so the report lists it instead of dropping it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..runtime.bundled import bundled_models, resolve_model
from ..runtime.errors import ConfigError, EmotionEdgeError
from ..runtime.formats import (
    BACKENDS,
    ArtifactFormat,
    backend_entries,
    backend_title,
    format_for_path,
    read_artifact,
    split_artifact_name,
)
from .peer import FETCH_COMMAND, PEER_PACKAGE, PEER_VERSION, peer_artifacts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """One artifact to measure; ``skip_reason`` says why it cannot run here."""

    name: str                     # file name, e.g. default.int8.tflite
    path: Path | None
    row: ArtifactFormat | None
    peer: bool = False
    skip_reason: str | None = None
    sidecar: dict[str, Any] = field(default_factory=dict, compare=False)
    on: str | None = None         # the backend running it when not its format's own

    @property
    def backend(self) -> str | None:
        """The backend that runs it (None when its format is unknown)."""
        return self.on or (self.row.backend if self.row else None)

    @property
    def stem(self) -> str:
        split = split_artifact_name(self.name)
        return split[0] if split else self.name.rsplit(".", 1)[0]

    @property
    def size_bytes(self) -> int | None:
        """All the artifact's files together (both of an OpenVINO pair); None if absent."""
        if self.row is None or self.path is None or self.row.missing(self.path):
            return None
        return self.row.size_bytes(self.path)

    @property
    def title(self) -> str:
        title = backend_title(self.row, self.backend) if self.row else self.name
        return f"{PEER_PACKAGE} {PEER_VERSION} peer, {title}" if self.peer else title


def _target_for(path: Path, peer: bool = False) -> Target:
    """The artifact at ``path`` on its format's own backend, or skipped with the reason."""
    if not path.exists():
        return Target(path.name, path, None, peer, f"{path}: no such model file")
    try:
        row, sidecar = read_artifact(path)
    except EmotionEdgeError as exc:
        return Target(path.name, path, None, peer, f"cannot read the artifact: {exc}")
    return Target(path.name, path, row, peer, None, sidecar)


def _checked(target: Target) -> Target:
    """``target``, skipped with the install command when its engine is not installed."""
    if target.row is None or target.skip_reason:
        return target
    engine = BACKENDS[target.backend]
    if engine.available():
        return target
    return replace(target, skip_reason=f"the {engine.title} engine ({engine.module}) is not "
                                       f"installed; install it with: {engine.install_hint}")


def _on_every_backend(targets: list[Target]) -> list[Target]:
    """Each readable target on every backend that runs it (``formats.backend_entries``: an
    ONNX file on OpenVINO too, unless its model has OpenVINO's own file), in order."""
    readable = [(t.path, t.row) for t in targets if t.row is not None and t.path is not None]
    extra: dict[Path, list[str]] = {}
    for path, row, backend in backend_entries(readable):
        if backend != row.backend:
            extra.setdefault(path, []).append(backend)
    out = []
    for target in targets:
        out.append(_checked(target))
        out += [_checked(replace(target, on=b)) for b in extra.get(target.path, [])]
    return out


def given_targets(models: tuple[str, ...]) -> list[Target]:
    """Targets for ``--models`` entries: paths or bundled names (bad ones become skipped),
    each on every backend that runs it."""
    out = []
    for name in models:
        try:
            path = resolve_model(name)
        except EmotionEdgeError as exc:
            out.append(Target(name, None, None, False, str(exc)))
            continue
        out.append(_target_for(path))
    return _on_every_backend(out)


#: The bundled stems a report lists first, in this order; any other stem follows by name.
STEM_ORDER = ("default", "accurate", "ferplus")


def _stem_key(stem: str) -> tuple[int, str]:
    return (STEM_ORDER.index(stem) if stem in STEM_ORDER else len(STEM_ORDER), stem)


def bundled_targets() -> list[Target]:
    """Every bundled artifact: stems in ``STEM_ORDER``, each stem's files in registry order."""
    found = bundled_models()
    return _on_every_backend([_target_for(path) for stem in sorted(found, key=_stem_key)
                              for path in found[stem]])


def peer_targets(cache_dir: str | Path | None = None) -> list[Target]:
    """The peer's artifacts from the cache; unfetched ones are skipped with the fetch command."""
    out = []
    for item, path in peer_artifacts(cache_dir).items():
        if path is None:
            out.append(Target(item.artifact, None, format_for_path(item.artifact), True,
                              f"the peer model is not fetched; run: {FETCH_COMMAND}"))
        else:
            out.append(_checked(_target_for(path, peer=True)))
    return out


def select_targets(models: tuple[str, ...], backends: tuple[str, ...], peer: bool,
                   cache_dir: str | Path | None = None) -> list[Target]:
    """Given models (or every bundled one) plus the peer's, kept to ``backends`` if given."""
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise ConfigError(f"unknown backend(s) {', '.join(unknown)}; valid backends: "
                          f"{', '.join(BACKENDS)}")
    targets = given_targets(models) if models else bundled_targets()
    if not models and not targets:
        log.warning("no bundled models found; pass --models PATH to measure your own")
    if peer:
        targets += peer_targets(cache_dir)
    if backends:
        targets = [t for t in targets if t.row is None or t.backend in backends]
    if not targets:
        raise ConfigError("nothing to benchmark: no bundled models, no --models given, and the "
                          "peer is off or filtered out by --backends")
    return targets
