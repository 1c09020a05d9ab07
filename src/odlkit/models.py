"""Small Keras models whose layers map one to one onto the board's C kernels.

The backbone turns a (50, 6) IMU window into 64 features; the head (Dense + softmax) is a
separate model, because on the device only the head trains. Every layer used here has a float
kernel in the Arduino library (``arduino_sketches/ODLEngine``): Conv1D (valid padding, stride
1), DepthwiseConv1D, ReLU, MaxPooling1D(2), GlobalAveragePooling1D and Dense. Batch
normalization is folded into the layer before it when the model is exported.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from .config import SEED
from .data import IMU_WINDOW

FEATURE_DIM = 64


def _init(seed: int, k: int):
    # One seeded initializer per layer, so a model is identical for the same seed.
    return keras.initializers.GlorotUniform(seed=seed * 1000 + k)


def build_backbone(
    input_shape: tuple[int, int] = (IMU_WINDOW, 6), feature_dim: int = FEATURE_DIM, seed: int = SEED
) -> keras.Model:
    """The 1-D CNN feature extractor: (T, C) window -> ``feature_dim`` features.

    Shapes for the default (50, 6) input::

        conv1  Conv1D(16, 5) + BN + ReLU   (46, 16)   pool1 MaxPool(2) (23, 16)
        dw2    DepthwiseConv1D(5) + BN + ReLU          (19, 16)
        pw2    Conv1D(32, 1) + BN + ReLU   (19, 32)   pool2 MaxPool(2) (9, 32)
        conv3  Conv1D(64, 3) + BN + ReLU   (7, 64)    gap   GlobalAveragePooling1D (64,)
        features Dense(feature_dim) + ReLU
    """
    if len(input_shape) != 2 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be (steps, channels), got {input_shape}")
    if input_shape[0] < 30:
        raise ValueError(f"the backbone needs windows of at least 30 steps, got {input_shape[0]}")
    inp = keras.Input(shape=input_shape, name="window")
    x = layers.Conv1D(16, 5, use_bias=False, kernel_initializer=_init(seed, 1), name="conv1")(inp)
    x = layers.BatchNormalization(name="conv1_bn")(x)
    x = layers.ReLU(name="conv1_relu")(x)
    x = layers.MaxPooling1D(2, name="pool1")(x)
    x = layers.DepthwiseConv1D(5, use_bias=False, depthwise_initializer=_init(seed, 2), name="dw2")(x)
    x = layers.BatchNormalization(name="dw2_bn")(x)
    x = layers.ReLU(name="dw2_relu")(x)
    x = layers.Conv1D(32, 1, use_bias=False, kernel_initializer=_init(seed, 3), name="pw2")(x)
    x = layers.BatchNormalization(name="pw2_bn")(x)
    x = layers.ReLU(name="pw2_relu")(x)
    x = layers.MaxPooling1D(2, name="pool2")(x)
    x = layers.Conv1D(64, 3, use_bias=False, kernel_initializer=_init(seed, 4), name="conv3")(x)
    x = layers.BatchNormalization(name="conv3_bn")(x)
    x = layers.ReLU(name="conv3_relu")(x)
    x = layers.GlobalAveragePooling1D(name="gap")(x)
    x = layers.Dense(feature_dim, kernel_initializer=_init(seed, 5), name="features")(x)
    out = layers.ReLU(name="features_relu")(x)
    return keras.Model(inp, out, name="backbone")


def build_head(feature_dim: int, n_classes: int, seed: int = SEED) -> keras.Model:
    """The trainable head: Dense(n_classes) + softmax on the backbone's features."""
    if feature_dim < 1 or n_classes < 2:
        raise ValueError(f"need feature_dim >= 1 and n_classes >= 2, got {feature_dim} and {n_classes}")
    inp = keras.Input(shape=(feature_dim,), name="features")
    out = layers.Dense(n_classes, activation="softmax", kernel_initializer=_init(seed, 9), name="head")(inp)
    return keras.Model(inp, out, name="head")


def build_classifier(backbone: keras.Model, head: keras.Model, trainable_backbone: bool = False) -> keras.Model:
    """Backbone followed by head, as one model; the backbone is frozen unless asked otherwise."""
    if backbone.output_shape[-1] != head.input_shape[-1]:
        raise ValueError(
            f"backbone gives {backbone.output_shape[-1]} features but the head expects {head.input_shape[-1]}"
        )
    backbone.trainable = trainable_backbone
    inp = keras.Input(shape=backbone.input_shape[1:], name="window")
    # training=False keeps batch-norm statistics fixed while the backbone is frozen.
    feats = backbone(inp, training=False) if not trainable_backbone else backbone(inp)
    return keras.Model(inp, head(feats), name="classifier")


def build_mlp(input_dim: int, n_classes: int, hidden: Sequence[int] = (64,), seed: int = SEED) -> keras.Model:
    """A small multilayer perceptron for tabular features (e.g. digits or sensor features)."""
    inp = keras.Input(shape=(input_dim,), name="features")
    x = inp
    for i, h in enumerate(hidden):
        x = layers.Dense(h, activation="relu", kernel_initializer=_init(seed, 20 + i), name=f"dense{i + 1}")(x)
    out = layers.Dense(n_classes, activation="softmax", kernel_initializer=_init(seed, 40), name="head")(x)
    return keras.Model(inp, out, name="mlp")


def compile_classifier(model: keras.Model, learning_rate: float = 1e-3) -> keras.Model:
    """Adam + sparse categorical cross-entropy + accuracy, the default of the chapters."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one forward pass (batch 1) over Conv1D, DepthwiseConv1D and Dense."""
    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            macs += count_macs(layer)
            continue
        if isinstance(layer, layers.DepthwiseConv1D):
            out_len, ch = layer.output.shape[1], layer.output.shape[2]
            macs += out_len * ch * layer.kernel_size[0]
        elif isinstance(layer, layers.Conv1D):
            out_len, out_ch = layer.output.shape[1], layer.output.shape[2]
            macs += out_len * out_ch * layer.kernel_size[0] * layer.input.shape[-1]
        elif isinstance(layer, layers.Dense):
            macs += layer.input.shape[-1] * layer.units
    return int(macs)
