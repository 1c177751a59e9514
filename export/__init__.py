"""The export stage: a trained Keras model -> TFLite, ONNX and OpenVINO artifacts, each proven.

``export_model`` / ``export_all`` (in ``exporter``) follow the format registry in
``emotion_edge.runtime.formats``: each row names its exporter module here and its parity
rule; each artifact gets a sidecar and must pass that check against its source. Importing
this package imports neither TensorFlow nor any converter.
"""
