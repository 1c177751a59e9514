"""Edge cases of user input: EXIF orientation, bad sidecar types, names vs paths, options."""

from __future__ import annotations

import numpy as np
import pytest
from emotion_edge.runtime.bundled import bundled_models, models_dir, resolve_model
from emotion_edge.runtime.errors import ConfigError, ModelLoadError
from emotion_edge.runtime.image import read_image
from emotion_edge.runtime.sidecar import InputSpec
from PIL import Image

from emotion_edge.cli import main


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((20, 40, 3), np.uint8)  # stored 40 wide, 20 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    path = tmp_path / "phone.jpg"
    Image.fromarray(pixels).save(path, exif=exif)
    assert read_image(path).shape == (40, 20, 3)


@pytest.mark.parametrize("spec", [{"height": "48"}, {"scale": "1/255"}, {"channels": 1.5},
                                  {"channels": 1, "color": "rgb"}, ["not", "a", "dict"]])
def test_input_spec_with_wrong_types_is_a_model_error(spec):
    with pytest.raises(ModelLoadError):
        InputSpec.from_dict(spec)


def test_a_local_folder_does_not_hide_a_bundled_model(tmp_path, monkeypatch):
    if not bundled_models():
        pytest.skip("no bundled model")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "default").mkdir()
    assert resolve_model("default").parent == models_dir()


def test_predict_option_errors(tmp_path, capsys):
    not_a_folder = tmp_path / "afile"
    not_a_folder.write_text("x")
    image = tmp_path / "img.png"
    Image.new("RGB", (64, 64)).save(image)
    assert main(["predict", str(image), "--annotate", str(not_a_folder)]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["predict", str(image), "--no-detect", "--tiling", "1"]) == 2
    assert "tiling" in capsys.readouterr().err


def test_evaluate_option_errors(tiny_csv, tmp_path, capsys):
    if not bundled_models():
        pytest.skip("no bundled model")
    assert main(["evaluate", "--data", str(tiny_csv), "--batch-size", "0"]) == 2
    assert "--batch-size" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(tiny_csv), "--json",
                 str(tmp_path / "missing" / "out.json")]) == 2
    assert "folder does not exist" in capsys.readouterr().err


def test_recognizer_refuses_tiling_without_detection():
    from emotion_edge.runtime import EmotionRecognizer, RecognizerOptions

    if not bundled_models():
        pytest.skip("no bundled model")
    with pytest.raises(ConfigError, match="tiling"):
        EmotionRecognizer(RecognizerOptions(detect_faces=False, tiling=2))
