"""Installed package versions, recorded beside results (benchmark reports, export sidecars,
``emotion-edge info``) so a figure says what produced it. Reads metadata only; imports no
package it names."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata


def installed_version(*distributions: str) -> str | None:
    """The version of the first of ``distributions`` (one package's alternative names) that
    is installed, or None."""
    for dist in distributions:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def installed_versions(distributions: Iterable[str]) -> dict[str, str | None]:
    """``{distribution: version or None}`` in the order given."""
    return {dist: installed_version(dist) for dist in distributions}
