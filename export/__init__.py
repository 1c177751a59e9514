"""The export stage: a trained Keras model -> TFLite and ONNX artifacts, each proven.

``export_model`` / ``export_all`` (in ``exporter``) follow the format table in
``emotion_edge.runtime.formats``; each artifact gets a sidecar and must pass a parity
check against its source (``parity.TOLERANCES``). Importing this package imports neither
TensorFlow nor any converter.
"""
