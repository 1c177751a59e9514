"""Shared, engine-free code every stage may use: FER2013 / FER+ / image-folder loading,
classification metrics and model evaluation through the runtime.

It sits between the stages (``train``, ``export``, ``benchmarks``, ``app``) and
``runtime``: it imports only NumPy, Pillow (through the runtime's image reader) and the
runtime itself, never TensorFlow, Keras, Gradio or Matplotlib.
"""
