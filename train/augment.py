"""Class-balanced sampling and on-the-fly augmentation as a ``tf.data`` pipeline.

Each epoch draws classes in proportion to ``count ** balance_power``: 0 draws them
evenly (the default), 1 keeps the data set's own skew. Minority images therefore
appear several times an epoch, each time as a different augmented variant: horizontal
flip, rotation, shift, zoom, brightness and contrast, and random erasing. Augmentation
runs on whole batches in parallel map calls, so both cores stay busy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool = True
    rotation_deg: float = 12.0
    shift: float = 0.1
    zoom: float = 0.12
    brightness: float = 0.2
    contrast: float = 0.25
    erase_prob: float = 0.4
    erase_area: tuple[float, float] = (0.02, 0.15)


def sampling_weights(counts: np.ndarray, balance_power: float) -> np.ndarray:
    """Per-class probability of a draw: proportional to ``count ** balance_power``."""
    counts = np.asarray(counts, dtype=np.float64)
    weights = np.where(counts > 0, np.power(np.maximum(counts, 1), balance_power), 0.0)
    return weights / weights.sum()


def _index_stream(y: np.ndarray, num_classes: int, balance_power: float,
                  seed: int) -> tf.data.Dataset:
    counts = np.bincount(y, minlength=num_classes)
    weights = sampling_weights(counts, balance_power)
    streams, probs = [], []
    for c in range(num_classes):
        idx = np.flatnonzero(y == c).astype(np.int64)
        if len(idx) == 0:
            continue
        streams.append(tf.data.Dataset.from_tensor_slices(idx)
                       .shuffle(len(idx), seed=seed + c, reshuffle_each_iteration=True)
                       .repeat())
        probs.append(weights[c])
    return tf.data.Dataset.sample_from_datasets(streams, weights=probs, seed=seed)


def drawn_class_counts(y: np.ndarray, num_classes: int, balance_power: float, draws: int,
                       seed: int = 0) -> np.ndarray:
    """Class counts of ``draws`` samples from the balanced stream (for the plots)."""
    stream = _index_stream(y, num_classes, balance_power, seed).take(draws).batch(4096)
    idx = np.concatenate([b.numpy() for b in stream])
    return np.bincount(y[idx], minlength=num_classes)


def _affine_matrices(batch: int, size: float, cfg: AugmentConfig) -> tf.Tensor:
    """Output->input projective transforms (rotation, zoom, shift about the centre)."""
    angle = tf.random.uniform([batch], -1.0, 1.0) * (cfg.rotation_deg * math.pi / 180.0)
    scale = 1.0 + tf.random.uniform([batch], -cfg.zoom, cfg.zoom)
    tx = tf.random.uniform([batch], -cfg.shift, cfg.shift) * size
    ty = tf.random.uniform([batch], -cfg.shift, cfg.shift) * size
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    c = (size - 1.0) / 2.0
    a0, a1 = cos, -sin
    b0, b1 = sin, cos
    a2 = c - a0 * c - a1 * c + tx
    b2 = c - b0 * c - b1 * c + ty
    zeros = tf.zeros([batch])
    return tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def flip_batch(images: tf.Tensor) -> tf.Tensor:
    """Mirror each image of a ``(B, H, W, C)`` batch with probability 1/2."""
    flip = tf.random.uniform([tf.shape(images)[0], 1, 1, 1]) < 0.5
    return tf.where(flip, tf.image.flip_left_right(images), images)


def augment_batch(images: tf.Tensor, cfg: AugmentConfig) -> tf.Tensor:
    """Augment a float batch ``(B, H, W, C)`` in [0, 1]."""
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    if cfg.flip:
        images = flip_batch(images)
    transforms = _affine_matrices(batch, tf.cast(width, tf.float32), cfg)
    images = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=shape[1:3], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="REFLECT")
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    contrast = 1.0 + tf.random.uniform([batch, 1, 1, 1], -cfg.contrast, cfg.contrast)
    brightness = tf.random.uniform([batch, 1, 1, 1], -cfg.brightness, cfg.brightness)
    images = (images - mean) * contrast + mean + brightness
    if cfg.erase_prob > 0:
        images = _random_erase(images, batch, height, width, cfg)
    return tf.clip_by_value(images, 0.0, 1.0)


def _random_erase(images, batch, height, width, cfg: AugmentConfig):
    h = tf.cast(height, tf.float32)
    w = tf.cast(width, tf.float32)
    area = tf.random.uniform([batch], *cfg.erase_area) * h * w
    aspect = tf.exp(tf.random.uniform([batch], math.log(0.5), math.log(2.0)))
    eh = tf.minimum(tf.sqrt(area * aspect), h)
    ew = tf.minimum(tf.sqrt(area / aspect), w)
    y0 = tf.random.uniform([batch]) * (h - eh)
    x0 = tf.random.uniform([batch]) * (w - ew)
    ys = tf.range(h)[None, :, None]
    xs = tf.range(w)[None, None, :]
    inside = ((ys >= y0[:, None, None]) & (ys < (y0 + eh)[:, None, None])
              & (xs >= x0[:, None, None]) & (xs < (x0 + ew)[:, None, None]))
    use = tf.random.uniform([batch, 1, 1]) < cfg.erase_prob
    mask = tf.cast(inside & use, images.dtype)[..., None]
    noise = tf.random.uniform(tf.shape(images))
    return images * (1.0 - mask) + noise * mask


def training_dataset(x: np.ndarray, targets: np.ndarray, y: np.ndarray, *, batch_size: int,
                     steps: int, balance_power: float, augment: AugmentConfig | None,
                     seed: int, scale: float, offset: float,
                     views: np.ndarray | None = None) -> tf.data.Dataset:
    """Endless balanced, augmented batches of ``(images, targets)``; ``steps`` per epoch.

    Augmentation works on pixels in [0, 1]; the batch then becomes model input as the input
    spec says (``pixel * scale + offset``, pixel in [0, 255]). With ``views`` (``(K, N, H,
    W)``, targets ``(K, N, C)``: see ``distill.view_targets``) each drawn image is one of its
    K views at random, with that view's targets, and is only mirrored (when ``augment``
    flips), since the targets were scored on the view.
    """
    if views is None:
        x_all = tf.constant(x[..., None] if x.ndim == 3 else x)
    else:
        x_all = tf.constant(views[..., None])
    t_all = tf.constant(targets.astype(np.float32))
    num_classes = targets.shape[-1]
    ds = _index_stream(y, num_classes, balance_power, seed).batch(batch_size, drop_remainder=True)

    def load(idx):
        if views is None:
            images = tf.cast(tf.gather(x_all, idx), tf.float32) / 255.0
            if augment is not None:
                images = augment_batch(images, augment)
            return images * (255.0 * scale) + offset, tf.gather(t_all, idx)
        view = tf.random.uniform(tf.shape(idx), 0, len(views), dtype=tf.int64)
        pick = tf.stack([view, idx], axis=1)
        images = tf.cast(tf.gather_nd(x_all, pick), tf.float32) / 255.0
        if augment is not None and augment.flip:
            images = flip_batch(images)
        return images * (255.0 * scale) + offset, tf.gather_nd(t_all, pick)

    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def augmented_samples(split, cfg: AugmentConfig, seed: int, per_class: int = 8) -> dict:
    """One image per class followed by ``per_class - 1`` augmented variants of it."""
    rng = np.random.default_rng(seed)
    tf.random.set_seed(seed)
    out = {}
    for c, label in enumerate(split.labels):
        idx = np.flatnonzero(split.y == c)
        if len(idx) == 0:
            continue
        img = split.x[rng.choice(idx)].astype(np.float32)[None, ..., None] / 255.0
        batch = np.repeat(img, per_class - 1, axis=0)
        out[label] = np.concatenate([img, augment_batch(tf.constant(batch), cfg).numpy()])
    return out
