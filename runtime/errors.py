"""The package's one error family: callers catch what they mean, messages say what to do."""

from __future__ import annotations


class EmotionEdgeError(Exception):
    """Base class of every error emotion-edge raises on purpose."""


class DataError(EmotionEdgeError):
    """A data set (CSV, image folder, label file) cannot be read or holds a bad row."""


class BadImageError(EmotionEdgeError):
    """An image is missing, unreadable, truncated, empty or of an unsupported kind."""


class NoFaceError(EmotionEdgeError):
    """No face was found where one was required."""


class ModelLoadError(EmotionEdgeError):
    """A model file or its sidecar is missing, corrupt, or disagrees with itself."""


class BackendUnavailableError(EmotionEdgeError):
    """The engine a backend needs is not installed; the message names the extra to install."""


class InputShapeError(EmotionEdgeError):
    """An array given to a predictor has the wrong shape or dtype."""


class ExportError(EmotionEdgeError):
    """An export could not be made."""


class ExportParityError(ExportError):
    """An exported artifact disagrees with its source model beyond tolerance."""


class ConfigError(EmotionEdgeError):
    """A command-line option or configuration value is invalid."""
