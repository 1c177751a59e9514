"""Model builders: plain functions returning Keras 3 functional models, registered by name.

Each builder declares its input spec when it registers (FER2013's 48x48 gray crops scaled to
[0, 1] for all of today's); ``build_model`` sizes the input from it, and the trainer and the
sidecar read it, so no stage repeats the numbers. Every model ends in a softmax over the
labels. The final Dense layer is named ``logits`` and the softmax ``probabilities``, so a
prior correction can be folded into the logits' bias after training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
from keras import layers

from ..runtime.errors import ConfigError
from ..runtime.sidecar import InputSpec

Builder = Callable[..., keras.Model]
_REGISTRY: dict[str, tuple[Builder, str, InputSpec]] = {}


#: FER2013's crops: 48x48 gray, pixels scaled to [0, 1]
FER_INPUT = InputSpec()


def register(name: str, summary: str, input_spec: InputSpec = FER_INPUT):
    def wrap(fn: Builder) -> Builder:
        _REGISTRY[name] = (fn, summary, input_spec)
        return fn
    return wrap


def input_spec_of(name: str) -> InputSpec:
    """The input spec the model ``name`` is built and trained for."""
    _check_name(name)
    return _REGISTRY[name][2]


def _check_name(name: str) -> None:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(model_names())}")


def model_names() -> list[str]:
    return sorted(_REGISTRY)


def describe_models() -> dict[str, str]:
    return {name: summary for name, (_, summary, _) in sorted(_REGISTRY.items())}


def build_model(name: str, num_classes: int = 7, **kwargs) -> keras.Model:
    _check_name(name)
    builder, _, spec = _REGISTRY[name]
    return builder(num_classes=num_classes, input_shape=(spec.height, spec.width, spec.channels),
                   **kwargs)


def _head(x, num_classes: int, dropout: float):
    if dropout:
        x = layers.Dropout(dropout)(x)
    x = layers.Dense(num_classes, name="logits", dtype="float32")(x)  # float32 under mixed
    return layers.Activation("softmax", name="probabilities", dtype="float32")(x)


def _conv_bn(x, filters: int, kernel: int = 3, strides: int = 1, name: str | None = None):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                      name=name)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


@register("mini_xception", "Arriaga et al.'s mini-Xception, the architecture of the fer peer")
def mini_xception(input_shape, num_classes: int = 7, dropout: float = 0.0):
    inputs = keras.Input(input_shape, name="image")
    x = _conv_bn(inputs, 8)
    x = _conv_bn(x, 8)
    for filters in (16, 32, 64, 128):
        residual = layers.Conv2D(filters, 1, strides=2, padding="same", use_bias=False)(x)
        residual = layers.BatchNormalization()(residual)
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        x = layers.Add()([x, residual])
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, _head(x, num_classes, dropout), name="mini_xception")


def _vgg(inputs, widths, depths, stem_stride: int, num_classes: int, dropout: float,
         dense: int, name: str):
    """Conv-BN-ReLU stages, each ending in 2x2 max pooling.

    With ``stem_stride=2`` a half-width 3x3 conv at full resolution is followed by a
    stride-2 conv that opens the first stage: resolution early on is what costs time.
    """
    if stem_stride == 2:
        x = _conv_bn(inputs, widths[0] // 2)
        x = _conv_bn(x, widths[0], strides=2)
        depths = (depths[0] - 1, *depths[1:])
    else:
        x = inputs
    for i, (filters, depth) in enumerate(zip(widths, depths, strict=True)):
        for _ in range(depth):
            x = _conv_bn(x, filters)
        x = layers.MaxPooling2D(2)(x)
        if i < len(widths) - 1:
            x = layers.SpatialDropout2D(0.1)(x)
    x = layers.GlobalAveragePooling2D()(x)
    if dense:
        x = layers.Dropout(dropout)(x)
        x = layers.Dense(dense, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    return keras.Model(inputs, _head(x, num_classes, dropout), name=name)


@register("vgg_s2", "VGG-style net with a stride-2 stem: the fast default")
def vgg_s2(input_shape, num_classes: int = 7, dropout: float = 0.4,
           widths=(48, 96, 192), depths=(2, 2, 2), dense: int = 256):
    return _vgg(keras.Input(input_shape, name="image"), widths, depths, 2, num_classes,
                dropout, dense, "vgg_s2")


@register("vgg_wide", "a wide four-stage VGG with a stride-2 stem: the accurate model and teacher")
def vgg_wide(input_shape, num_classes: int = 7, dropout: float = 0.4,
             widths=(64, 128, 256, 384), depths=(2, 2, 2, 2), dense: int = 256):
    return _vgg(keras.Input(input_shape, name="image"), widths, depths, 2, num_classes,
                dropout, dense, "vgg_wide")


@register("vgg_fast", "a narrow four-stage VGG with a stride-2 stem: the distilled student "
          "(channels in multiples of 32, which XNNPACK runs fastest)")
def vgg_fast(input_shape, num_classes: int = 7, dropout: float = 0.4,
             widths=(32, 64, 128, 256), depths=(2, 2, 2, 1), dense: int = 256):
    return _vgg(keras.Input(input_shape, name="image"), widths, depths, 2, num_classes,
                dropout, dense, "vgg_fast")


@register("vgg", "the same VGG-style net at full 48x48 resolution")
def vgg(input_shape, num_classes: int = 7, dropout: float = 0.4,
        widths=(32, 64, 128, 256), depths=(2, 2, 2, 2), dense: int = 256):
    return _vgg(keras.Input(input_shape, name="image"), widths, depths, 1, num_classes,
                dropout, dense, "vgg")


def _inverted_residual(x, filters: int, expand: int, strides: int):
    cin = x.shape[-1]
    y = _conv_bn(x, cin * expand, kernel=1) if expand != 1 else x
    y = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False)(y)
    y = layers.BatchNormalization()(y)
    y = layers.ReLU()(y)
    y = layers.Conv2D(filters, 1, use_bias=False)(y)
    y = layers.BatchNormalization()(y)
    if strides == 1 and cin == filters:
        y = layers.Add()([x, y])
    return y


@register("mobilenet_v2", "MobileNetV2-style inverted residuals")
def mobilenet_v2(input_shape, num_classes: int = 7, dropout: float = 0.3):
    inputs = keras.Input(input_shape, name="image")
    x = _conv_bn(inputs, 32, strides=2)  # 24x24
    # (filters, expansion, repeats, first stride)
    for filters, expand, repeats, stride in ((24, 4, 2, 1), (48, 4, 3, 2), (96, 4, 3, 2),
                                             (160, 4, 2, 2)):
        for r in range(repeats):
            x = _inverted_residual(x, filters, expand, stride if r == 0 else 1)
    x = _conv_bn(x, 512, kernel=1)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, _head(x, num_classes, dropout), name="mobilenet_v2")


@dataclass(frozen=True)
class ModelCost:
    parameters: int
    macs: int


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one forward pass (convolutions and dense layers)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.SeparableConv2D):
            _, h, w, _ = layer.output.shape
            kh, kw = layer.kernel_size
            cin = layer.input.shape[-1]
            total += h * w * (kh * kw * cin * layer.depth_multiplier
                              + cin * layer.depth_multiplier * layer.filters)
        elif isinstance(layer, layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            kh, kw = layer.kernel_size
            total += h * w * kh * kw * c
        elif isinstance(layer, layers.Conv2D):
            _, h, w, cout = layer.output.shape
            kh, kw = layer.kernel_size
            total += h * w * kh * kw * layer.input.shape[-1] * cout // layer.groups
        elif isinstance(layer, layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return int(total)


def model_cost(model: keras.Model) -> ModelCost:
    return ModelCost(parameters=int(model.count_params()), macs=count_macs(model))
