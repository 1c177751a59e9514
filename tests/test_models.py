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
    assert {"mini_xception", "vgg_s2", "vgg", "mobilenet_v2", "vgg_wide"} <= set(model_names())
    assert 40_000 < model_cost(build_model("mini_xception")).parameters < 80_000


def test_unknown_model_lists_choices():
    with pytest.raises(ConfigError, match="vgg_s2"):
        build_model("resnet9000")
