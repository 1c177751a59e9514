"""Export-time graph rewrites: the same function, computed in a shape the int8 kernels run faster.

XNNPACK's int8 convolutions cost about the same per output pixel whatever the channel count
when channels are few: on a 48x48 face, the full-resolution first convolution of a model
with a stride-2 stem (``vgg_fast``, ``vgg_wide``: 3x3 to a few channels, then a 3x3 stride-2
convolution) costs a large share of the int8 model's time for a small share of its
multiply-accumulates. :func:`space_to_depth_stem` computes that stem on the half-resolution
grid instead (``make compare-stem-rewrite`` times the int8 files with and without it):

    image (H, W, C)                          image (H, W, C)
    conv 3x3 -> c0, BN, ReLU          ==     space_to_depth 2 -> (H/2, W/2, 4C)
    conv 3x3 stride 2 -> c1, BN, ReLU        conv 3x3 -> 4*c0 (each 2x2 block's c0 channels
                                             at its four positions), ReLU
                                             conv 2x2 -> c1, ReLU

The batch norms are folded into the convolutions, and the new kernels hold the old weights
(and zeros) at the taps each output reads, so in float the two graphs compute the same
numbers up to rounding; the exporter's parity check compares the written file with the
source model as for every export. The rest of the model is copied, layer for layer.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

#: What an artifact's sidecar says the rewrite did (``export.graph``).
SPACE_TO_DEPTH_STEM = (
    "space-to-depth stem: the full-resolution 3x3 convolution and the 3x3 stride-2 "
    "convolution after it (batch norms folded) computed on the half-resolution grid, "
    "equal in float (emotion_edge.export.rewrite)")


def _plain_conv(layer, strides: tuple[int, int]) -> bool:
    import keras

    return (type(layer) is keras.layers.Conv2D and tuple(layer.kernel_size) == (3, 3)
            and tuple(layer.strides) == strides and layer.padding == "same"
            and tuple(layer.dilation_rate) == (1, 1) and layer.groups == 1
            and layer.data_format == "channels_last"
            and layer.activation is keras.activations.linear)


def _plain_bn(layer) -> bool:
    import keras

    return (type(layer) is keras.layers.BatchNormalization and layer.axis in (-1, 3)
            and layer.center and layer.scale)


def _plain_relu(layer) -> bool:
    import keras

    return (type(layer) is keras.layers.ReLU and layer.max_value is None
            and not layer.negative_slope and not layer.threshold)


def _chain(model) -> list | None:
    """The model's layers in order if each takes the one before's output alone, else None."""
    layers = model.layers
    for before, layer in pairwise(layers):
        nodes = layer._inbound_nodes
        if len(nodes) != 1 or len(nodes[0].input_tensors) != 1:
            return None
        if nodes[0].input_tensors[0] is not before.output:
            return None
    return layers if model.outputs[0] is layers[-1].output else None


def _folded(conv, bn) -> tuple[np.ndarray, np.ndarray]:
    """``conv`` then ``bn`` as one kernel and bias."""
    kernel = np.asarray(conv.kernel.numpy(), np.float64)
    bias = np.asarray(conv.bias.numpy(), np.float64) if conv.use_bias else 0.0
    gamma, beta, mean, var = (np.asarray(w, np.float64) for w in bn.get_weights())
    scale = gamma / np.sqrt(var + bn.epsilon)
    return kernel * scale, (bias - mean) * scale + beta


def stem_kernels(k1: np.ndarray, b1: np.ndarray, k2: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The half-resolution kernels of a 3x3 convolution ``k1`` (bias ``b1``) followed by a
    3x3 stride-2 one ``k2``, both padded 'same' as TensorFlow pads (stride 2 pads only after):
    the first kernel, its bias, and the second (2x2) kernel.

    The input is ``space_to_depth(x, 2)``: channel ``(dy*2 + dx)*C + c`` of block (i, j) is
    ``x[2i+dy, 2j+dx, c]``. The first new kernel writes output pixel (2i+a, 2j+b) channel o
    to channel ``(a*2 + b)*c0 + o`` of block (i, j); it reads input row ``2i+a-1+ky``, which
    is row ``ry = a-1+ky`` relative to the block: block ``i + ry//2``, sub-row ``ry % 2``.
    The second reads rows ``2i+ky`` (``ky`` 0..2): block ``i + ky//2``, sub-row ``ky % 2``.
    """
    channels, c0 = k1.shape[2:]
    first = np.zeros((3, 3, 4 * channels, 4 * c0), np.float64)
    for a in range(2):
        for b in range(2):
            out = slice((a * 2 + b) * c0, (a * 2 + b + 1) * c0)
            for ky in range(3):
                for kx in range(3):
                    ry, rx = a - 1 + ky, b - 1 + kx
                    sub = (ry % 2) * 2 + rx % 2
                    first[ry // 2 + 1, rx // 2 + 1, sub * channels:(sub + 1) * channels,
                          out] = k1[ky, kx]
    second = np.zeros((2, 2, 4 * c0, k2.shape[3]), np.float64)
    for ky in range(3):
        for kx in range(3):
            sub = (ky % 2) * 2 + kx % 2
            second[ky // 2, kx // 2, sub * c0:(sub + 1) * c0] = k2[ky, kx]
    return first, np.tile(b1, 4), second


def _space_to_depth_layer():
    import keras

    class SpaceToDepth(keras.layers.Layer):
        """``tf.nn.space_to_depth`` with blocks of 2 (one SPACE_TO_DEPTH op in TFLite)."""

        def call(self, x):
            import tensorflow as tf

            return tf.nn.space_to_depth(x, 2)

        def compute_output_shape(self, shape):
            return (shape[0], shape[1] // 2, shape[2] // 2, shape[3] * 4)

    return SpaceToDepth(name="space_to_depth")


def space_to_depth_stem(model):
    """``model`` with its stride-2 stem computed on the half-resolution grid (see the module
    docstring), or None when the model does not start with that stem (or is not a plain
    chain of layers, or its input has an odd side): the export then converts ``model``."""
    import keras

    layers = _chain(model)
    if layers is None or len(layers) < 8:
        return None
    _, conv1, bn1, relu1, conv2, bn2, relu2 = layers[:7]
    height, width, channels = model.inputs[0].shape[1:]
    if not (height and width and height % 2 == 0 and width % 2 == 0
            and _plain_conv(conv1, (1, 1)) and _plain_bn(bn1) and _plain_relu(relu1)
            and _plain_conv(conv2, (2, 2)) and _plain_bn(bn2) and _plain_relu(relu2)):
        return None
    k1, b1 = _folded(conv1, bn1)
    k2, b2 = _folded(conv2, bn2)
    first, first_bias, second = stem_kernels(k1, b1, k2)

    inputs = keras.Input((height, width, channels), name=layers[0].name)
    x = _space_to_depth_layer()(inputs)
    stem_a = keras.layers.Conv2D(first.shape[3], 3, padding="same", name="stem_s2d_a")
    x = keras.layers.ReLU()(stem_a(x))
    stem_b = keras.layers.Conv2D(second.shape[3], 2, padding="same", name="stem_s2d_b")
    x = keras.layers.ReLU()(stem_b(x))
    tail = [(type(layer).from_config(layer.get_config()), layer) for layer in layers[7:]]
    for copy, _ in tail:  # copies: the source model's layers stay its own
        x = copy(x)
    stem_a.set_weights([first.astype(np.float32), first_bias.astype(np.float32)])
    stem_b.set_weights([second.astype(np.float32), np.asarray(b2, np.float32)])
    for copy, layer in tail:
        copy.set_weights(layer.get_weights())
    return keras.Model(inputs, x, name=model.name)


def int8_graph(model, precision: str) -> tuple[object, dict[str, str]]:
    """The graph an export at ``precision`` converts, and what its sidecar's ``export`` block
    adds: for int8, :func:`space_to_depth_stem` where it applies (``graph``); else ``model``
    as trained (the float precisions gain nothing from the rewrite)."""
    rewritten = space_to_depth_stem(model) if precision == "int8" else None
    return (model, {}) if rewritten is None else (rewritten, {"graph": SPACE_TO_DEPTH_STEM})
