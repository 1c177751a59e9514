"""Rebuild a Keras 3 functional model with ``tf_keras`` layers and copy its weights.

tensorflow-model-optimization only wraps legacy ``tf_keras`` models, so QAT (``qat.py``,
in its own process) starts from this rebuild: every layer is made again from its
``get_config()`` (separable convolutions as a depthwise and a pointwise one, a Dense
layer's following BatchNormalization folded into it), and the caller checks the rebuild
gives the same probabilities as the source.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import numpy as np

from ..runtime.errors import ExportError

log = logging.getLogger(__name__)

#: keyword arguments every tf_keras layer takes besides its own
_BASE_LAYER_KWARGS = {"name", "trainable", "dtype"}




def _plain_config(value: Any) -> Any:
    """A Keras 3 config value in a form tf_keras accepts: serialized objects lose their
    ``module``/``registered_name``, dtype policies become their name."""
    if isinstance(value, dict):
        if value.get("class_name") == "DTypePolicy":
            return value["config"]["name"]
        if "class_name" in value and "config" in value:
            return {"class_name": value["class_name"], "config": _plain_config(value["config"])}
        return {k: _plain_config(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain_config(v) for v in value)
    return value


def _layer_kwargs(cls: type, config: dict[str, Any]) -> dict[str, Any]:
    """The entries of a Keras 3 layer config that ``cls`` (a tf_keras layer) accepts."""
    accepted = set(_BASE_LAYER_KWARGS)
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            accepted |= set(inspect.signature(init).parameters) - {"self", "kwargs"}
    # initial values do not matter (the weights are copied), and Keras 3 initializers take
    # arguments tf_keras ones lack, so initializers keep tf_keras' defaults
    accepted = {k for k in accepted if not k.endswith("_initializer")}
    kwargs = {k: _plain_config(v) for k, v in config.items() if k in accepted}
    dropped = {k: v for k, v in config.items() if k not in accepted and v not in (None, False)
               and not k.endswith("_initializer")}
    if dropped:
        log.debug("%s: dropping Keras 3 options tf_keras lacks: %s", cls.__name__, dropped)
    return kwargs


def _resolve(value: Any, tensors: dict[tuple[str, int, int], Any]) -> Any:
    """Replace serialized Keras 3 tensors in a node's arguments with rebuilt tf_keras ones."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        name, node, index = value["config"]["keras_history"]
        return tensors[(name, node, index)]
    if isinstance(value, (list, tuple)):
        return [_resolve(v, tensors) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, tensors) for k, v in value.items()}
    return value


def _separable_as_two(tf_keras, config: dict[str, Any]):
    """A SeparableConv2D as DepthwiseConv2D + 1x1 Conv2D: the same function (and what the
    TFLite converter makes of it), in a form tfmot's graph rewriting handles; its separable
    transform miswires models with residual branches."""
    kwargs = _layer_kwargs(tf_keras.layers.SeparableConv2D, config)
    name = kwargs["name"]
    depthwise = tf_keras.layers.DepthwiseConv2D(
        kwargs["kernel_size"], strides=kwargs.get("strides", 1),
        padding=kwargs.get("padding", "valid"),
        depth_multiplier=kwargs.get("depth_multiplier", 1),
        dilation_rate=kwargs.get("dilation_rate", 1), use_bias=False, name=f"{name}_depthwise")
    pointwise = tf_keras.layers.Conv2D(
        kwargs["filters"], 1, use_bias=kwargs.get("use_bias", True),
        activation=kwargs.get("activation"), name=name, dtype=kwargs.get("dtype"))
    return lambda x: pointwise(depthwise(x))


def _dense_batchnorm_pairs(config: dict[str, Any]) -> dict[str, str]:
    """BatchNormalization layers (-> their Dense) that can be folded into that Dense: it feeds
    only them. tfmot leaves such a Dense in float, which would break full-integer export."""
    classes = {spec["name"]: spec["class_name"] for spec in config["layers"]}
    uses: dict[str, int] = {}
    for spec in config["layers"]:
        for node in spec["inbound_nodes"]:
            for name in _history_names(node["args"]):
                uses[name] = uses.get(name, 0) + 1
    pairs = {}
    for spec in config["layers"]:
        if spec["class_name"] != "BatchNormalization" or len(spec["inbound_nodes"]) != 1:
            continue
        inputs = _history_names(spec["inbound_nodes"][0]["args"])
        axis = spec["config"].get("axis", -1)
        if (len(inputs) == 1 and classes.get(inputs[0]) == "Dense" and uses[inputs[0]] == 1
                and axis in (-1, 1, [-1], [1])):
            pairs[spec["name"]] = inputs[0]
    return pairs


def _history_names(value: Any) -> list[str]:
    """Names of the layers whose outputs a node's serialized arguments use."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        return [value["config"]["keras_history"][0]]
    if isinstance(value, (list, tuple)):
        return [n for v in value for n in _history_names(v)]
    return []


def to_tf_keras(model):
    """Rebuild a Keras 3 functional ``model`` with tf_keras layers and copy its weights.

    SeparableConv2D becomes DepthwiseConv2D + Conv2D, and a BatchNormalization after a Dense
    is folded into the Dense's kernel and bias: the same function, in the forms tfmot
    quantises fully.
    """
    import tf_keras

    config = model.get_config()
    if "layers" not in config or "input_layers" not in config:
        raise ExportError(f"QAT needs a functional Keras model; {model.name!r} is not one")
    folded = _dense_batchnorm_pairs(config)
    tensors: dict[tuple[str, int, int], Any] = {}
    for spec in config["layers"]:
        name, class_name, layer_config = spec["name"], spec["class_name"], spec["config"]
        if name in folded:
            tensors[(name, 0, 0)] = tensors[(folded[name], 0, 0)]
            continue
        if name in folded.values():
            layer_config = {**layer_config, "use_bias": True}
        if class_name == "InputLayer":
            shape = layer_config["batch_shape"]
            tensors[(name, 0, 0)] = tf_keras.Input(shape=shape[1:], batch_size=shape[0],
                                                   name=name, dtype=layer_config.get("dtype"))
            continue
        cls = getattr(tf_keras.layers, class_name, None)
        if cls is None:
            raise ExportError(f"QAT: layer {name!r} is a {class_name}, which tf_keras lacks")
        if class_name == "SeparableConv2D":
            layer = _separable_as_two(tf_keras, layer_config)
        else:
            layer = cls(**_layer_kwargs(cls, layer_config))
        for node_index, node in enumerate(spec["inbound_nodes"]):
            args = _resolve(node["args"], tensors)
            kwargs = _resolve(node.get("kwargs", {}), tensors)
            outputs = layer(*args, **kwargs)
            for i, out in enumerate(outputs if isinstance(outputs, (list, tuple)) else [outputs]):
                tensors[(name, node_index, i)] = out
    rebuilt = tf_keras.Model([tensors[t] for t in _endpoints(config["input_layers"])],
                             [tensors[t] for t in _endpoints(config["output_layers"])],
                             name=config["name"])
    _copy_weights(model, rebuilt, folded)
    return rebuilt


def _endpoints(value: list) -> list[tuple[str, int, int]]:
    """A functional config's ``input_layers``/``output_layers``: one ``[name, node, index]``
    or a list of them."""
    items = [value] if value and isinstance(value[0], str) else value
    return [(name, node, index) for name, node, index in items]


def _copy_weights(source, target, folded: dict[str, str]) -> None:
    for layer in source.layers:
        weights = layer.get_weights()
        if not weights or layer.name in folded or layer.name in folded.values():
            continue  # folded pairs are set below
        if type(layer).__name__ == "SeparableConv2D":  # split by _separable_as_two
            _set_weights(target.get_layer(f"{layer.name}_depthwise"), weights[:1], layer.name)
            _set_weights(target.get_layer(layer.name), weights[1:], layer.name)
        else:
            _set_weights(target.get_layer(layer.name), weights, layer.name)
    for bn_name, dense_name in folded.items():
        _set_weights(target.get_layer(dense_name),
                     _fold(source.get_layer(dense_name), source.get_layer(bn_name)), dense_name)


def _fold(dense, bn) -> list[np.ndarray]:
    """Kernel and bias of ``bn(dense(x))`` as one Dense (inference-mode BatchNormalization)."""
    kernel = np.asarray(dense.kernel)
    bias = np.asarray(dense.bias) if dense.use_bias else np.zeros(kernel.shape[-1], np.float32)
    gamma = np.asarray(bn.gamma) if bn.scale else 1.0
    beta = np.asarray(bn.beta) if bn.center else 0.0
    factor = gamma / np.sqrt(np.asarray(bn.moving_variance) + bn.epsilon)
    return [(kernel * factor).astype(np.float32),
            ((bias - np.asarray(bn.moving_mean)) * factor + beta).astype(np.float32)]


def _set_weights(layer, weights: list[np.ndarray], source_name: str) -> None:
    shapes = [w.shape for w in layer.get_weights()]
    if shapes != [w.shape for w in weights]:
        raise ExportError(f"QAT: layer {source_name!r} rebuilt with weight shapes {shapes}, "
                          f"expected {[w.shape for w in weights]}")
    layer.set_weights(weights)


# ---------------------------------------------------------------- child side
