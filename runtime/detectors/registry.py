"""The detector registry: every face detector by name, what it is good for, how to build it.

One module per detector in this folder declares its :class:`DetectorInfo`; this table
lists them, and the predict CLI's ``--detector`` choices, the app's menu and the README
read it. A new detector is a new module and one entry in :data:`_MODULES`.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from ..errors import ConfigError
from . import blazeface_full, blazeface_pyramid, blazeface_short, haar
from .base import DetectorInfo, DetectorOptions, FaceDetector

_MODULES = (blazeface_pyramid, blazeface_short, blazeface_full, haar)

#: Every detector by name, the default first.
DETECTORS: dict[str, DetectorInfo] = {m.INFO.name: m.INFO for m in _MODULES}
#: Used when no detector is named: finds faces of every size without options.
DEFAULT_DETECTOR = blazeface_pyramid.INFO.name

_EXTRA_OPTIONS = {option for info in DETECTORS.values() for option in info.extra_options}


def detector_names() -> tuple[str, ...]:
    """Names of all detectors, the default first."""
    return tuple(DETECTORS)


def detector_info(name: str) -> DetectorInfo:
    """The registry row of ``name``; ConfigError naming the valid names otherwise."""
    try:
        return DETECTORS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown face detector {name!r}; choose one of: "
                          f"{', '.join(DETECTORS)}") from None


def build_detector(name: str = DEFAULT_DETECTOR, **options: Any) -> FaceDetector:
    """Build the detector ``name`` with :class:`DetectorOptions` given as keywords.

    Raises ConfigError for an unknown name or option, an option this detector does not
    take (``tiling`` for the pyramid) or a value out of its range, and
    BackendUnavailableError when the detector's engine is not installed.
    """
    info = detector_info(name)
    valid = {f.name for f in fields(DetectorOptions)}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ConfigError(f"unknown face detector option(s) {', '.join(unknown)}; "
                          f"valid options: {', '.join(sorted(valid))}")
    foreign = sorted((set(options) & _EXTRA_OPTIONS) - set(info.extra_options))
    if foreign:
        takers = [n for n, i in DETECTORS.items() if foreign[0] in i.extra_options]
        raise ConfigError(f"{foreign[0]} is an option of the {' and '.join(takers)} "
                          f"detector(s), not of {name!r}")
    return info.create(DetectorOptions(**options))
