"""Warm starts: a new run begins from another trained model's weights (``--init-from``).

The source must be the same architecture (the same layers in the same order); every layer
whose weight shapes match is copied, and a layer that differs (the ``logits`` head of a model
with another class count) keeps its fresh initialisation. That is how the 8-class ``ferplus``
model starts from the 7-class ``accurate`` one: the features carry over, the head is new.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..runtime.errors import ConfigError

log = logging.getLogger("emotion_edge.train.trainer")


def source_path(name_or_path: str) -> Path:
    """A ``.keras`` file, or a bundled model's name (``accurate`` -> ``accurate.keras``)."""
    from ..runtime.bundled import keras_source
    from ..runtime.errors import ModelLoadError

    try:
        path = keras_source(name_or_path)
    except ModelLoadError as exc:
        raise ConfigError(f"--init-from {name_or_path}: {exc}") from None
    if not path.is_file():
        raise ConfigError(f"--init-from {name_or_path}: no such .keras file or bundled model")
    return path


def copy_weights(name_or_path: str, model) -> int:
    """Copy the matching layers' weights of the source into ``model``; returns how many
    layers were copied. Raises ConfigError when the architectures differ."""
    import keras

    path = source_path(name_or_path)
    if path.suffix != ".keras":
        raise ConfigError(f"--init-from {path}: needs a .keras model (the exports hold "
                          "no trainable weights)")
    try:
        source = keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - any load failure is the user's file
        raise ConfigError(f"--init-from {path}: not a loadable Keras model "
                          f"({type(exc).__name__})") from None
    mine = [layer for layer in model.layers if layer.weights]
    theirs = [layer for layer in source.layers if layer.weights]
    kinds = [type(layer).__name__ for layer in mine]
    if kinds != [type(layer).__name__ for layer in theirs]:
        raise ConfigError(f"--init-from {path}: its layers ({source.name}, {len(theirs)} with "
                          f"weights) do not match {model.name}'s ({len(mine)}); warm starts "
                          "need the same architecture")
    copied, fresh = 0, []
    for dst, src in zip(mine, theirs, strict=True):
        values = src.get_weights()
        if [v.shape for v in values] == [tuple(w.shape) for w in dst.weights]:
            dst.set_weights(values)
            copied += 1
        else:
            fresh.append(dst.name)
    if not copied:
        raise ConfigError(f"--init-from {path}: no layer's shapes match; nothing to copy")
    log.info("warm start from %s: %d layers copied, fresh: %s", path, copied,
             ", ".join(fresh) or "none")
    return copied
