"""One engine class per backend, each in its own module, imported only when a model needs it.

The format registry (``runtime/formats.py``) names each backend's class as an import
string; ``predictor.load_predictor`` imports it when it opens a model, so importing the
runtime imports no engine.
"""
