"""Keras 3 model -> ONNX: float32 with tf2onnx, int8 with ONNX Runtime static quantisation.

The int8 model is QDQ, per-channel, calibrated on the same representative images as the
TFLite int8 export. Dynamic ONNX quantisation ran ten times slower on our CPUs than the
float model, so it is not offered.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..runtime.errors import ExportError
from .common import first_line

if TYPE_CHECKING:
    from .exporter import ExportJob

log = logging.getLogger(__name__)

OPSET = 17
INPUT_NAME = "image"


def convert_onnx_fp32(model, out_path: Path) -> None:
    """Write ``model`` as float32 ONNX (opset 17) with a dynamic batch axis."""
    import tensorflow as tf
    import tf2onnx

    signature = [tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=INPUT_NAME)]
    try:
        tf2onnx.convert.from_keras(model, input_signature=signature, opset=OPSET,
                                   output_path=str(out_path))
    except Exception as exc:  # noqa: BLE001  tf2onnx raises many types
        raise ExportError(f"ONNX conversion (tf2onnx, opset {OPSET}) failed: "
                          f"{first_line(exc)}") from None


class _CalibrationReader:
    """ONNX Runtime's calibration data reader over prepared images, in small batches."""

    def __init__(self, input_name: str, images: np.ndarray, batch: int = 32) -> None:
        self._batches = iter([images[i:i + batch] for i in range(0, len(images), batch)])
        self._input_name = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self._input_name: batch.astype(np.float32)}


def quantize_onnx_int8(fp32_path: Path, out_path: Path, calibration: np.ndarray) -> None:
    """Static QDQ int8 (per-channel weights) of the float ONNX model at ``fp32_path``."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    input_name = onnx.load(str(fp32_path)).graph.input[0].name
    try:
        with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".onnx-pre-") as tmp:
            prepared = Path(tmp) / "prepared.onnx"
            quant_pre_process(str(fp32_path), str(prepared))
            quantize_static(str(prepared), str(out_path),
                            _CalibrationReader(input_name, calibration),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    except Exception as exc:  # noqa: BLE001  the quantiser raises many types
        raise ExportError(f"ONNX int8 quantisation failed: {first_line(exc)}") from None


def convert_onnx(model, precision: str, out_path: Path,
                 calibration: np.ndarray | None = None) -> None:
    """Write ``model`` to ``out_path`` as ONNX at ``precision`` (fp32 or int8)."""
    if precision == "fp32":
        convert_onnx_fp32(model, out_path)
        return
    if precision != "int8":
        raise ExportError(f"ONNX export has no precision {precision!r}")
    if calibration is None or not len(calibration):
        raise ExportError("int8 ONNX export needs calibration images")
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".onnx-fp32-") as tmp:
        fp32_path = Path(tmp) / "model.fp32.onnx"
        convert_onnx_fp32(model, fp32_path)
        quantize_onnx_int8(fp32_path, out_path, calibration)


def export_onnx(job: ExportJob) -> dict[str, Any]:
    """The registry's exporter for ONNX fp32 and int8; int8 converts the space-to-depth stem
    where it applies, as the TFLite int8 export does (``rewrite.int8_graph``)."""
    from .rewrite import int8_graph

    model, added = int8_graph(job.model, job.row.precision)
    convert_onnx(model, job.row.precision, job.out, job.calibration)
    return added
