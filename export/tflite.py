"""Keras 3 model -> TFLite flatbuffer at each precision, with the TensorFlow Lite converter.

``from_keras_model`` keeps the batch axis dynamic; ``from_concrete_functions`` gave NaN
outputs with our pins, so it is not used.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ..runtime.errors import ExportError
from .common import first_line

if TYPE_CHECKING:
    from .exporter import ExportJob

log = logging.getLogger(__name__)

CONVERTER = "tf.lite.TFLiteConverter.from_keras_model"


def representative_dataset(images: np.ndarray):
    """A converter's representative dataset: one prepared image at a time."""
    def generate() -> Iterator[list[np.ndarray]]:
        for image in images:
            yield [image[None].astype(np.float32)]
    return generate


def configure_int8(converter, calibration: np.ndarray, int8_io: bool) -> None:
    """Full-integer quantisation calibrated on ``calibration``; float I/O unless ``int8_io``."""
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset(calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8


def convert_tflite(model, precision: str, calibration: np.ndarray | None = None,
                   int8_io: bool = False) -> bytes:
    """The TFLite flatbuffer of ``model`` at ``precision`` (fp32, fp16, dynamic or int8)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif precision == "int8":
        if calibration is None or not len(calibration):
            raise ExportError("int8 TFLite export needs calibration images")
        configure_int8(converter, calibration, int8_io)
    elif precision != "fp32":
        raise ExportError(f"TFLite export has no precision {precision!r}")
    try:
        return bytes(converter.convert())
    except Exception as exc:  # noqa: BLE001  the converter raises many types
        raise ExportError(f"TFLite {precision} conversion failed: {first_line(exc)}") from None


def export_tflite(job: ExportJob) -> dict[str, Any]:
    """The registry's exporter for TFLite fp32, fp16, dynamic and int8.

    An int8 export of a model with a stride-2 stem converts the equivalent graph of
    ``rewrite.space_to_depth_stem`` (less time a face under XNNPACK: ``make
    compare-stem-rewrite``) and records so in the sidecar (``export.graph``)."""
    from .rewrite import int8_graph

    model, added = int8_graph(job.model, job.row.precision)
    int8_io = job.options.int8_io and job.row.precision == "int8"
    job.out.write_bytes(convert_tflite(model, job.row.precision, job.calibration, int8_io))
    return {"io": "int8" if int8_io else "float32", **added}
