"""emotion-edge: facial emotion recognition with small CNNs, fast on edge devices.

Stages live in subpackages: ``emotion_edge.train``, ``emotion_edge.export``,
``emotion_edge.runtime`` (the light, embeddable layer), ``emotion_edge.benchmarks`` and
``emotion_edge.app``. Importing this package imports none of them.
"""

__version__ = "0.1.0"
