"""The format registry: every row complete and consistent, layouts of one file, a pair or a
folder, names, and the stages (app menu, bench targets, info) reading it."""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from emotion_edge.runtime.bundled import bundled_models, models_dir
from emotion_edge.runtime.errors import ModelLoadError
from emotion_edge.runtime.formats import (
    BACKENDS,
    EXPORTABLE,
    FORMATS,
    backend_entries,
    find_format,
    format_for_path,
    format_of,
    scan_artifacts,
    split_artifact_name,
)
from emotion_edge.runtime.sidecar import sha256_of, write_sidecar

OPENVINO_FP32 = find_format("openvino", "fp32")


def test_every_row_is_complete():
    keys = [row.key for row in FORMATS]
    assert len(set(keys)) == len(keys)
    assert len({row.suffix for row in FORMATS}) == len(FORMATS)
    for row in FORMATS:
        assert row.backend in BACKENDS and row.title and row.description, row.key
        assert row.layout in ("file", "pair", "folder"), row.key
        assert bool(row.companions) == (row.layout == "pair"), row.key
    for row in EXPORTABLE:
        assert row.parity is not None and row.made_by, row.key
        assert row.calibrated == (row.precision in ("int8", "qat")), row.key
    assert [r.key for r in FORMATS if not r.exporter] == ["keras-fp32"]


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_engine_classes_exist_and_stay_unimported(backend):
    module, _, name = BACKENDS[backend].engine_class.partition(":")
    assert importlib.util.find_spec(module) is not None, module
    source = Path(importlib.util.find_spec(module).origin).read_text()
    assert f"class {name}(Engine)" in source


@pytest.mark.parametrize("row", EXPORTABLE, ids=lambda r: r.key)
def test_exporters_resolve_inside_the_export_stage(row):
    module, _, name = row.exporter.partition(":")
    assert module.startswith("emotion_edge.export.")
    assert callable(getattr(importlib.import_module(module), name))


def test_runtime_import_loads_no_engine_or_converter():
    engines = [b.engine_class.partition(":")[0] for b in BACKENDS.values()]
    code = (f"ENGINES = {engines!r}\n"
            "import sys, emotion_edge.runtime.formats, emotion_edge.runtime.predictor; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', "
            "'onnxruntime', 'openvino', 'ai_edge_litert', 'tf2onnx') "
            "or m.startswith('emotion_edge.export') or m in ENGINES))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name, expected", [
    ("default.int8.tflite", ("default", "tflite-int8")),
    ("my.model.fp32.onnx", ("my.model", "onnx-fp32")),
    ("default.int8.openvino.xml", ("default", "openvino-int8")),
    ("default.int8.openvino.bin", None),     # a pair's companion is not an artifact
    ("default.tflite", None),
    (".int8.tflite", None),
])
def test_split_artifact_name(name, expected):
    split = split_artifact_name(name)
    assert (split and (split[0], split[1].key)) == expected or (split is None is expected)


def test_plain_names_take_their_precision_from_the_sidecar(tmp_path):
    assert format_for_path("model.xml").key == "openvino-fp32"
    assert format_of(tmp_path / "model.xml", {"precision": "int8"}).key == "openvino-int8"
    assert format_of(tmp_path / "m.tflite", {"precision": "qat"}).key == "tflite-qat"
    with pytest.raises(ModelLoadError, match="sidecar says onnx int8 but the file name says "
                                             "openvino int8"):
        format_of(tmp_path / "m.int8.openvino.xml", {"format": "onnx", "precision": "int8"})
    with pytest.raises(ModelLoadError, match=r"expected one of \.keras, \.onnx, \.tflite, \.xml"):
        format_for_path("model.pt")


def _pair(folder: Path, stem: str = "m.fp32.openvino") -> Path:
    xml = folder / f"{stem}.xml"
    xml.write_text('<?xml version="1.0"?>\n<net name="m"/>\n')
    (folder / f"{stem}.bin").write_bytes(bytes(range(256)) * 4)
    return xml


def test_pair_layout_members_size_and_hash(tmp_path):
    xml = _pair(tmp_path)
    row = OPENVINO_FP32
    assert row.members(xml) == [xml, tmp_path / "m.fp32.openvino.bin"]
    assert row.missing(xml) == []
    assert row.size_bytes(xml) == xml.stat().st_size + 1024
    before = row.sha256(xml)
    assert before != sha256_of(xml)  # both files count
    data = bytearray((tmp_path / "m.fp32.openvino.bin").read_bytes())
    data[100] ^= 1
    (tmp_path / "m.fp32.openvino.bin").write_bytes(bytes(data))
    assert row.sha256(xml) != before
    row.check_magic(xml)
    (tmp_path / "m.fp32.openvino.bin").unlink()
    assert row.missing(xml) == [tmp_path / "m.fp32.openvino.bin"]


def test_folder_layout(tmp_path):
    row = replace(find_format("onnx", "fp32"), suffix=".fp32.onnxdir", layout="folder")
    folder = tmp_path / "m.fp32.onnxdir"
    assert row.missing(folder) == [folder]
    (folder / "weights").mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"a")
    (folder / "weights" / "w.bin").write_bytes(b"bc")
    assert [p.relative_to(folder).as_posix() for p in row.members(folder)] == [
        "model.onnx", "weights/w.bin"]
    assert row.size_bytes(folder) == 3 and row.missing(folder) == []
    before = row.sha256(folder)
    (folder / "weights" / "w.bin").rename(folder / "weights" / "v.bin")
    assert row.sha256(folder) != before  # names count, not only contents


def test_scan_lists_complete_artifacts_with_sidecars(tmp_path):
    complete = _pair(tmp_path, "a.fp32.openvino")
    write_sidecar(complete, {"labels": ["x"], "input": {}})
    _pair(tmp_path, "b.fp32.openvino")  # no sidecar
    broken = _pair(tmp_path, "c.int8.openvino")
    write_sidecar(broken, {"labels": ["x"], "input": {}})
    (tmp_path / "c.int8.openvino.bin").unlink()
    (tmp_path / "notes.xml").write_text("<x/>")
    assert scan_artifacts(tmp_path) == [(complete, OPENVINO_FP32)]


def test_magic_is_checked(tmp_path):
    fake = tmp_path / "m.int8.tflite"
    fake.write_bytes(b"PK\x03\x04not a flatbuffer")
    with pytest.raises(ModelLoadError, match="not a TFLite int8 model"):
        find_format("tflite", "int8").check_magic(fake)


needs_bundle = pytest.mark.skipif(not bundled_models(), reason="no bundled model")


@needs_bundle
def test_app_menu_and_bench_targets_list_every_bundled_row():
    from emotion_edge.app.catalog import find_models
    from emotion_edge.benchmarks.targets import bundled_targets

    found = scan_artifacts(models_dir())
    bundled = sorted(path for path, _ in found)
    # every file on its own backend, and an ONNX file on OpenVINO too unless its model
    # ships OpenVINO's own IR at that precision (default does; accurate and ferplus do not)
    entries = sorted((path, backend) for path, _, backend in backend_entries(found))
    on_openvino = {path.name for path, backend in entries if backend == "openvino"}
    assert {"accurate.int8.onnx", "ferplus.int8.onnx", "default.int8.openvino.xml"} \
        <= on_openvino
    assert not {"default.int8.onnx", "default.fp32.onnx"} & on_openvino
    assert len(entries) == len(bundled) + 2
    menu = find_models()
    assert sorted((c.path, c.engine.name) for c in menu) == entries
    assert sorted({c.path for c in menu}) == bundled
    assert menu[0].path.name.startswith("default.")  # the default model leads the menu
    titles = {c.title.split(" · ")[-1] for c in menu}
    assert {"OpenVINO fp32", "OpenVINO int8", "TFLite int8", "ONNX int8 on OpenVINO"} <= titles
    targets = bundled_targets()
    assert sorted((t.path, t.backend) for t in targets) == entries
    assert targets[0].path.name.startswith("default.")
    assert {t.row.key for t in targets} >= {"openvino-fp32", "openvino-int8"}


def test_info_formats_lists_the_registry():
    out = subprocess.run([sys.executable, "-m", "emotion_edge", "info", "--json", "--formats"],
                         capture_output=True, text=True, check=True)
    rows = json.loads(out.stdout)["formats"]
    assert [(r["format"], r["precision"]) for r in rows] == [
        (r.format, r.precision) for r in FORMATS]
    ov = next(r for r in rows if (r["format"], r["precision"]) == ("openvino", "int8"))
    assert ov["layout"] == "pair" and ov["companions"] == [".bin"] and ov["calibrated"]
    assert ov["parity"] == "top-1 agreement >= 98%" and ov["extra"] == "openvino"
