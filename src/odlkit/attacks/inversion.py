"""Model inversion (Fredrikson et al. 2015): reconstruct what a class "looks like" from a trained model.

Gradient ascent on the input to maximise the log-probability of one class, with an L2
penalty that keeps the input small. On a linear head this recovers (a scaled version of) the
class's weight direction, which for a trained softmax head correlates with the class mean:
a privacy leak when each class is one person (a face, a gait, a voice).

:func:`invert_linear_head` is the same attack in closed form for a softmax-regression head
``(W, b)`` (numpy, plain gradient ascent): what an attacker who read the head out of a device's
flash can run (chapter 5, textbook 12.6.3-12.6.4). :func:`invert_class` works on any Keras model.
"""

from __future__ import annotations

import numpy as np


def invert_class(model, class_idx: int, input_shape, steps: int = 300, lr: float = 0.1, l2: float = 0.01,
                 init=None, clip=None, seed: int = 0) -> np.ndarray:
    """Input (input_shape) maximising ``log p(class_idx | x) - l2 * ||x||^2`` by Adam from ``init`` (zeros)."""
    import tensorflow as tf

    n_out = model.output_shape[-1]
    if not 0 <= class_idx < n_out:
        raise ValueError(f"class_idx {class_idx} out of range for a model with {n_out} outputs")
    from odlkit.keras_utils import outputs_probabilities

    probs_out = outputs_probabilities(model)
    rng = np.random.default_rng(seed)
    x0 = np.zeros((1, *input_shape), np.float32) if init is None else np.asarray(init, np.float32).reshape(1, *input_shape)
    x0 = x0 + 0.01 * rng.standard_normal(x0.shape).astype(np.float32)
    x = tf.Variable(x0)
    opt = tf.keras.optimizers.Adam(lr)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            out = model(x, training=False)
            logp = tf.math.log(out[0, class_idx] + 1e-12) if probs_out else tf.nn.log_softmax(out)[0, class_idx]
            loss = -logp + l2 * tf.reduce_sum(x * x)
        opt.apply_gradients([(tape.gradient(loss, x), x)])
        if clip is not None:
            x.assign(tf.clip_by_value(x, clip[0], clip[1]))
        return loss

    for _ in range(steps):
        step()
    return x.numpy()[0]


def invert_linear_head(W, b, class_idx: int, steps: int = 300, lr: float = 0.1, l2: float = 0.01,
                       clip=(0.0, 1.0)) -> np.ndarray:
    """Gradient ascent from zeros on ``log softmax(W x + b)[class_idx] - l2 * ||x||^2``.

    ``W`` is ``(n_classes, n_features)``. Each step: ``x <- clip(x + lr * (W^T (e_c - p) - 2 l2 x))``
    with ``p = softmax(W x + b)``; ``clip=None`` leaves the input unbounded.
    """
    W = np.asarray(W, np.float64)
    b = np.asarray(b, np.float64)
    if W.ndim != 2 or b.shape != (W.shape[0],):
        raise ValueError(f"need W (n_classes, n_features) and b (n_classes,), got {W.shape} and {b.shape}")
    if not 0 <= class_idx < W.shape[0]:
        raise ValueError(f"class_idx {class_idx} out of range for {W.shape[0]} classes")
    x = np.zeros(W.shape[1])
    onehot = np.eye(W.shape[0])[class_idx]
    for _ in range(steps):
        z = W @ x + b
        p = np.exp(z - z.max())
        p /= p.sum()
        x = x + lr * (W.T @ (onehot - p) - 2 * l2 * x)
        if clip is not None:
            x = np.clip(x, *clip)
    return x


def prototype_similarity(reconstruction, class_means) -> np.ndarray:
    """Pearson correlation of a reconstruction with each class mean (row k = class k)."""
    r = np.asarray(reconstruction, np.float64).ravel()
    M = np.asarray(class_means, np.float64).reshape(len(class_means), -1)
    r = (r - r.mean()) / (r.std() + 1e-12)
    M = (M - M.mean(1, keepdims=True)) / (M.std(1, keepdims=True) + 1e-12)
    return M @ r / len(r)
