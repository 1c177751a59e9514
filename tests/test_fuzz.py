"""Fuzzing the input layer with Hypothesis: any image, array, path, CSV, sidecar or command
line gives a result or a typed error, never another exception; mutated model files are
loaded in the fuzzer's worker processes, where an engine's crash is counted.

A fast sample (well under a minute) runs with the suite; ``make fuzz`` runs
``scripts/fuzz.py`` (10,000 cases, each in a worker process, so crashes and hangs are
counted too). The case makers are shared with that script.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from emotion_edge.data.datasets import load_fer2013
from emotion_edge.runtime.errors import BadImageError, DataError, EmotionEdgeError

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import array_shapes, arrays  # noqa: E402

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))
import fuzz  # noqa: E402

FAST = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
RANDOMS = st.randoms(note_method_calls=False, use_true_random=False)


def read_or_refuse(image) -> None:
    """``read_image`` must return a valid uint8 image or raise BadImageError."""
    try:
        fuzz.read_checked(image)
    except BadImageError:
        pass


@FAST
@given(st.binary(max_size=2048))
def test_random_bytes(data):
    read_or_refuse(data)


@FAST
@given(st.sampled_from(sorted(fuzz.image_samples())), RANDOMS)
def test_mutated_images(name, rng):
    read_or_refuse(fuzz.mutate(fuzz.image_samples()[name], rng))


@FAST
@given(name=st.sampled_from(sorted(fuzz.image_samples())), rng=RANDOMS)
def test_mutated_image_files(name, rng, tmp_path):
    path = tmp_path / f"image.{name.split('-')[0]}"
    path.write_bytes(fuzz.mutate(fuzz.image_samples()[name], rng))
    read_or_refuse(path)


@settings(FAST, max_examples=40)
@given(RANDOMS)
def test_decompression_bombs(rng):
    read_or_refuse(fuzz.header_bomb(rng))


DTYPES = ["uint8", "int8", "uint16", "int32", "int64", "uint64", "float16", "float32",
          "float64", "bool", "complex64", "m8[s]", "M8[s]"]


@FAST
@given(st.sampled_from(DTYPES).flatmap(
    lambda dtype: arrays(dtype, array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6))))
def test_arrays(array):
    read_or_refuse(array)


@FAST
@given(RANDOMS)
def test_odd_arrays_and_pil_images(rng):
    read_or_refuse(fuzz.random_array(rng))
    read_or_refuse(fuzz.random_pil_image(rng))


def test_every_valid_sample_reads():
    assert {"png", "jpeg", "gif", "webp"} <= set(fuzz.image_samples())
    for data in fuzz.image_samples().values():
        fuzz.read_checked(data)  # the unmutated files must not be refused


@settings(FAST, max_examples=60)
@given(RANDOMS)
def test_odd_pictures_through_the_model(rng):
    from emotion_edge.runtime.bundled import bundled_models

    if not bundled_models():
        pytest.skip("no bundled model")
    try:
        fuzz.case_analyze(rng, Path("."))
    except EmotionEdgeError:
        pass


@pytest.mark.parametrize("choice", range(fuzz.SPECIAL_PATHS))
def test_special_paths(choice, tmp_path):
    import random
    import signal

    signal.alarm(20)  # a pipe that is opened blocks: fail instead of hanging the suite
    try:
        with pytest.raises(BadImageError):
            fuzz.read_checked(fuzz.special_path(random.Random(choice), tmp_path, choice))
    finally:
        signal.alarm(0)


@FAST
@given(rng=RANDOMS)
def test_mutated_csvs(rng, tmp_path):
    path = tmp_path / "fer.csv.gz"
    path.write_bytes(fuzz.mutate_csv(rng))
    try:
        splits = load_fer2013(path, use_cache=False)
    except DataError:
        return
    for split in splits.values():
        assert split.x.dtype == np.uint8 and split.x.shape[1:] == (48, 48)
        assert split.y.min(initial=0) >= 0 and split.y.max(initial=0) < 7


def test_harness_counts_crashes_and_hangs():
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "fuzz.py"), "--cases", "6", "--timeout", "8",
         "--kinds", "selftest-crash,selftest-hang,array"],
        capture_output=True, text=True, timeout=120, check=False)
    total = next(line for line in result.stdout.splitlines() if line.startswith("total"))
    assert result.returncode == 1
    assert total.split()[-2:] == ["2", "2"]  # crash, hang


def test_a_small_fuzz_run_is_clean():
    """Every kind, mutated model files too: loaded in workers, an engine's crash is counted."""
    result = subprocess.run([sys.executable, str(SCRIPTS / "fuzz.py"), "--cases", "210"],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "210 cases" in result.stdout


def _bundled(name: str, folder: Path) -> Path:
    from emotion_edge.runtime.bundled import bundled_models

    if not bundled_models():
        pytest.skip("no bundled model")
    return fuzz.copy_artifact(name, folder)


@settings(FAST, max_examples=25)
@given(rng=RANDOMS)
def test_mutated_sidecars(rng, tmp_path_factory):
    from emotion_edge.runtime.sidecar import sidecar_path

    path = _bundled("default.int8.tflite", tmp_path_factory.mktemp("sidecar"))
    sidecar_path(path).write_bytes(fuzz.mutate_sidecar(sidecar_path(path).read_text(), rng))
    try:
        fuzz.load_and_run(path)
    except EmotionEdgeError:
        pass


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
                    max_leaves=8)


@settings(FAST, max_examples=40)
@given(field=st.sampled_from(["labels", "input", "sha256", "size_bytes", "format",
                              "precision"]), value=JSON)
def test_sidecar_fields_of_any_json_value(field, value, tmp_path_factory):
    from emotion_edge.runtime.sidecar import sidecar_path

    path = _bundled("default.int8.tflite", tmp_path_factory.mktemp("field"))
    data = json.loads(sidecar_path(path).read_text())
    sidecar_path(path).write_text(json.dumps({**data, field: value}))
    try:
        fuzz.load_and_run(path)
    except EmotionEdgeError:
        pass


@pytest.mark.parametrize("change", [{"input": "DEEP"}, {"input": "LONG"}, {"size_bytes": [1]}])
def test_sidecar_findings_are_typed(change, tmp_path):
    """Fuzz findings: deep nesting (RecursionError), a 5000-digit integer (ValueError) and a
    size_bytes list (TypeError while formatting) are ModelLoadErrors."""
    from emotion_edge.runtime.errors import ModelLoadError
    from emotion_edge.runtime.sidecar import sidecar_path

    path = _bundled("default.int8.tflite", tmp_path)
    text = json.dumps({**json.loads(sidecar_path(path).read_text()), **change})
    text = text.replace('"DEEP"', "[" * 100_000 + "]" * 100_000).replace('"LONG"', "1" * 5000)
    sidecar_path(path).write_text(text)
    with pytest.raises(ModelLoadError, match="sidecar"):
        fuzz.load_and_run(path)


def test_damaged_openvino_weights_name_the_reason(tmp_path):
    """Fuzz finding: OpenVINO's error opens with a source location; the message gives its
    reason instead."""
    from emotion_edge.runtime.errors import ModelLoadError

    pytest.importorskip("openvino")
    path = _bundled("default.int8.openvino.xml", tmp_path)
    weights = path.with_suffix(".bin")
    weights.write_bytes(weights.read_bytes()[:1000])
    fuzz.reseal(path)
    with pytest.raises(ModelLoadError, match="cannot load it: Incorrect weights in bin file"):
        fuzz.load_and_run(path)


@settings(FAST, max_examples=25)
@given(command=st.sampled_from(["predict", "evaluate", "info", "export", "video"]),
       rng=RANDOMS)
def test_random_command_lines(command, rng, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    argv = fuzz.random_argv(command, rng, fuzz.cli_paths(folder, rng))
    code, output = fuzz.run_cli(argv, folder)
    assert code in (0, 1, 2) and "Traceback" not in output, (argv, output[-2000:])



def test_a_model_that_loads_but_cannot_run_is_refused_at_load(tmp_path):
    """Fuzz finding (``--replay model 5433``): an OpenVINO IR with a mutated Reshape compiles,
    then raised RuntimeError on its first input; loading it is now a ModelLoadError."""
    import random

    from emotion_edge.runtime.errors import ModelLoadError

    pytest.importorskip("openvino")
    _bundled("default.int8.openvino.xml", tmp_path)
    with pytest.raises(ModelLoadError, match="loads but fails on a test input: .*reshape"):
        fuzz.case_model(random.Random("model:5433"), tmp_path)
