"""Benchmarks: accuracy, latency, throughput, memory and size of every model artifact, and of a
peer model, measured in one run on one machine (``emotion-edge bench``).

Everything is measured through the runtime (``load_predictor``, ``prepare_batch``,
``EmotionRecognizer``), each artifact in its own child process (``child``).
"""
