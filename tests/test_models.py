"""The model registry: every builder makes a working model and reports its cost."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("keras")

from emotion_edge.runtime.errors import ConfigError  # noqa: E402
from emotion_edge.train.models import build_model, model_cost, model_names  # noqa: E402


@pytest.mark.parametrize("name", model_names())
def test_builders_produce_probabilities(name):
    model = build_model(name)
    cost = model_cost(model)
    assert cost.parameters == model.count_params() and cost.parameters <= 5_000_000
    assert cost.macs > 0
    probs = np.asarray(model(np.random.rand(2, 48, 48, 1).astype("float32"), training=False))
    assert probs.shape == (2, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert model.get_layer("logits") is not None


def test_registry_has_the_promised_models():
    assert {"mini_xception", "vgg_s2", "vgg", "mobilenet_v2", "vgg_wide",
            "vgg_fast"} <= set(model_names())
    assert 40_000 < model_cost(build_model("mini_xception")).parameters < 80_000


def test_unknown_model_lists_choices():
    with pytest.raises(ConfigError, match="vgg_s2"):
        build_model("resnet9000")


def test_vgg_fast_costs_what_its_layers_add_up_to():
    # stem 16@48x48 (3x3x1), stride-2 32@24x24 (3x3x16), then per stage 3x3 convs at
    # 24, 12, 6 and 3 pixels: 64, 64+64 ... as declared, then the 256-unit dense and the head
    convs = [(48, 1, 16), (24, 16, 32), (24, 32, 32), (12, 32, 64), (12, 64, 64),
             (6, 64, 128), (6, 128, 128), (3, 128, 256)]
    macs = sum(side * side * 9 * cin * cout for side, cin, cout in convs) + 256 * 256 + 256 * 7
    assert model_cost(build_model("vgg_fast")).macs == macs


@pytest.mark.parametrize("name", ["vgg_fast", "vgg_wide"])
def test_new_architectures_learn(name):
    """A few steps on eight fixed images drive the loss well down: the net trains."""
    import keras

    keras.utils.set_random_seed(0)
    model = build_model(name, dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.random((8, 48, 48, 1), np.float32)
    y = np.eye(7, dtype=np.float32)[np.arange(8) % 7]
    loss = model.fit(x, y, epochs=25, batch_size=8, verbose=0).history["loss"]
    assert loss[-1] < 0.5 * loss[0]  # training-mode loss: batch statistics, as it learns
