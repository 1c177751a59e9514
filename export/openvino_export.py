"""Keras 3 model -> OpenVINO IR (``.xml`` + ``.bin``), through the ONNX exporter.

fp32: the float32 ONNX model (tf2onnx) converted with ``openvino.convert_model``. int8: the
int8 QDQ ONNX model (ONNX Runtime static quantisation, calibrated on the same images as
every int8 export) converted the same way; OpenVINO reads the QDQ pairs as its own
FakeQuantize ops and runs the convolutions in int8. Weights are saved as they are (no
fp16 compression), so fp32 parity holds to 1e-4.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..runtime.errors import ExportError
from .common import first_line
from .onnx_export import convert_onnx

if TYPE_CHECKING:
    from .exporter import ExportJob


def onnx_to_openvino(onnx_path: Path, out_xml: Path) -> None:
    """Convert the ONNX model at ``onnx_path`` to IR at ``out_xml`` (and its ``.bin``)."""
    import openvino as ov

    try:
        model = ov.convert_model(str(onnx_path))
        ov.save_model(model, str(out_xml), compress_to_fp16=False)
    except Exception as exc:  # noqa: BLE001  OpenVINO raises many types
        raise ExportError(f"OpenVINO conversion of {onnx_path.name} failed: "
                          f"{first_line(exc)}") from None


def export_openvino(job: ExportJob) -> dict[str, Any]:
    """The registry's exporter for OpenVINO IR fp32 and int8; int8 is converted from the same
    graph as the int8 ONNX export (``rewrite.int8_graph``), so the IR and the ONNX file
    compute alike."""
    from .rewrite import int8_graph

    precision = job.row.precision
    if precision not in ("fp32", "int8"):
        raise ExportError(f"OpenVINO export has no precision {precision!r}")
    model, added = int8_graph(job.model, precision)
    with tempfile.TemporaryDirectory(dir=job.out.parent, prefix=".openvino-onnx-") as tmp:
        onnx_path = Path(tmp) / f"model.{precision}.onnx"
        convert_onnx(model, precision, onnx_path, job.calibration)
        onnx_to_openvino(onnx_path, job.out)
    return added
