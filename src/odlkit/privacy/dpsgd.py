"""DP-SGD (Abadi et al. 2016) for small Keras models.

One step:

1. per-example gradients ``g_i`` of the loss, vectorised with ``tf.vectorized_map``
   (one trace, no Python loop over the batch);
2. per-example L2 clipping ``g_i <- g_i * min(1, C / ||g_i||)`` with
   :func:`odlkit.clipping.clip_l2` (the flattened gradient of all trainable variables is one vector);
3. ``g = (sum_i g_i + N(0, (sigma C)^2 I)) / B`` with ``B`` the batch size;
4. a plain SGD update ``w <- w - lr * g``.

The noise is added once per batch to the *sum*, so the averaged gradient carries noise of
standard deviation ``sigma * C / B`` per coordinate. With ``noise_multiplier=0`` and
``l2_norm_clip=inf`` the step is exactly the plain mini-batch SGD step.

Privacy accounting (:mod:`odlkit.privacy.accounting`) assumes Poisson sampling with rate
``q = batch_size / n``; :func:`poisson_batches` draws batches that way.
"""

from __future__ import annotations

import math

import numpy as np

from odlkit.clipping import clip_l2
from odlkit.keras_utils import outputs_probabilities


def privatize(per_example_grads, l2_norm_clip: float, noise_multiplier: float, rng, batch_size=None):
    """Clip each row of ``per_example_grads`` (B, D), sum, add Gaussian noise, divide by the batch size.

    ``batch_size`` defaults to ``B``; with Poisson sampling pass the *expected* batch size so the
    noise scale does not depend on the random batch size.
    Returns the noisy mean gradient (D,) as float32.
    """
    g = np.asarray(per_example_grads)
    if g.ndim != 2:
        raise ValueError(f"per_example_grads must be (batch, n_params), got shape {g.shape}")
    if noise_multiplier < 0:
        raise ValueError(f"noise_multiplier must be >= 0 (got {noise_multiplier})")
    if noise_multiplier > 0 and not math.isfinite(l2_norm_clip):
        raise ValueError("noise needs a finite l2_norm_clip: the noise std is noise_multiplier * l2_norm_clip")
    denom = g.shape[0] if batch_size is None else batch_size
    if denom < 1:
        raise ValueError("empty batch: batch_size must be >= 1")
    total = clip_l2(g, l2_norm_clip, axis=1).sum(axis=0, dtype=np.float64)
    if noise_multiplier > 0:
        total = total + rng.normal(0.0, noise_multiplier * l2_norm_clip, size=total.shape)
    return (total / denom).astype(np.float32)


def poisson_batches(n: int, sampling_rate: float, steps: int, rng):
    """Yield ``steps`` index arrays, each example included independently with prob ``sampling_rate``."""
    for _ in range(steps):
        yield np.flatnonzero(rng.random(n) < sampling_rate)


class DPSGD:
    """A DP-SGD trainer for a built Keras model with a sparse-categorical loss on logits.

    >>> dp = DPSGD(model, l2_norm_clip=1.0, noise_multiplier=1.1, learning_rate=0.1, seed=0)
    >>> dp.step(Xb, yb)               # one private step, returns the mean loss of the batch
    >>> dp.fit(X, y, batch_size=32, epochs=5)   # Poisson-sampled batches, returns losses

    The loss is computed on logits, or on probabilities if the last layer has a softmax
    activation (``from_logits=None`` detects it; pass True/False to force).
    Layers that behave differently in training (BatchNorm statistics, Dropout) are run in
    inference mode: per-example gradients need per-example independence, which BatchNorm's
    batch statistics would break.
    """

    def __init__(
        self,
        model,
        l2_norm_clip: float = 1.0,
        noise_multiplier: float = 1.0,
        learning_rate: float = 0.1,
        seed: int = 0,
        from_logits: bool | None = None,
        fast_dense: bool = True,
    ):
        import tensorflow as tf

        if not model.built:
            raise ValueError("build the model first (call it on a batch or give it an Input shape)")
        if not l2_norm_clip > 0:
            raise ValueError(f"l2_norm_clip must be > 0 (got {l2_norm_clip}); use np.inf for no clipping")
        if from_logits is None:
            from_logits = not outputs_probabilities(model)
        self.model = model
        self.l2_norm_clip = float(l2_norm_clip)
        self.noise_multiplier = float(noise_multiplier)
        self.learning_rate = float(learning_rate)
        self.rng = np.random.default_rng(seed)
        self.variables = list(model.trainable_variables)
        self.shapes = [tuple(v.shape) for v in self.variables]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.n_params = int(sum(self.sizes))
        self.steps_done = 0
        loss_obj = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits, reduction="none")
        variables = self.variables

        def one_example_grad(xy):
            x, y = xy
            with tf.GradientTape() as tape:
                logits = model(x[None], training=False)
                loss = loss_obj(y[None], logits)[0]
            grads = tape.gradient(loss, variables)
            flat = tf.concat(
                [tf.reshape(g if g is not None else tf.zeros_like(v), [-1]) for g, v in zip(grads, variables, strict=True)],
                axis=0,
            )
            return flat, loss

        x_spec = tf.TensorSpec((None, *tuple(model.inputs[0].shape[1:])), tf.float32)

        @tf.function(input_signature=[x_spec, tf.TensorSpec((None,), tf.int64)])
        def per_example(x, y):
            return tf.vectorized_map(one_example_grad, (x, y))

        @tf.function(reduce_retracing=True)
        def apply(flat_grad, lr):
            parts = tf.split(flat_grad, self.sizes)
            for v, p, s in zip(variables, parts, self.shapes, strict=True):
                v.assign_sub(lr * tf.reshape(p, s))

        self._per_example = per_example
        self._apply = apply
        d = _single_dense(model) if fast_dense else None
        self._dense = d if d is not None and d[1] == (not from_logits) else None
        self._tf = tf

    def per_example_gradients(self, X, y):
        """(B, n_params) flattened per-example gradients and (B,) per-example losses, as numpy.

        A model that is one Dense layer (a head on frozen features) uses the closed form
        ``dL/dW_i = x_i (p_i - onehot(y_i))^T``, ``dL/db_i = p_i - onehot(y_i)`` (the Jacobian trick):
        no autodiff, one matrix product. Anything else goes through ``tf.vectorized_map``.
        """
        if self._dense is not None:
            return self._dense_head_gradients(np.asarray(X, np.float32), np.asarray(y))
        tf = self._tf
        g, loss = self._per_example(tf.convert_to_tensor(X, tf.float32), tf.convert_to_tensor(y, tf.int64))
        return g.numpy(), loss.numpy()

    def _dense_head_gradients(self, X, y):
        layer, softmax_out = self._dense
        W, b = layer.kernel.numpy(), layer.bias.numpy()
        z = X @ W + b
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        rows = np.arange(len(y))
        loss = -np.log(np.maximum(p[rows, y], 1e-12)) if softmax_out else np.log(np.exp(z).sum(1)) - z[rows, y]
        d = p
        d[rows, y] -= 1.0
        gW = (X[:, :, None] * d[:, None, :]).reshape(len(y), -1)
        return np.concatenate([gW, d], axis=1).astype(np.float32), loss.astype(np.float32)

    def step(self, X, y, batch_size=None) -> float:
        """One DP-SGD step on the batch ``(X, y)``; returns its mean (pre-update) loss."""
        if len(X) == 0:
            # Poisson sampling can draw an empty batch: the step is pure noise.
            grad = privatize(np.zeros((0, self.n_params), np.float32), self.l2_norm_clip,
                             self.noise_multiplier, self.rng, batch_size=batch_size or 1)
            loss = float("nan")
        else:
            g, losses = self.per_example_gradients(X, y)
            grad = privatize(g, self.l2_norm_clip, self.noise_multiplier, self.rng, batch_size=batch_size)
            loss = float(losses.mean())
        self._apply(self._tf.constant(grad), self._tf.constant(self.learning_rate, self._tf.float32))
        self.steps_done += 1
        return loss

    def fit(self, X, y, batch_size: int = 32, epochs: float = 1, progress: bool = False):
        """Train with Poisson-sampled batches (expected size ``batch_size``); returns per-step losses.

        The accounting for this run is ``compute_epsilon(noise_multiplier, batch_size/len(X), steps, delta)``
        with ``steps = self.steps_done`` afterwards.
        """
        from odlkit.privacy.accounting import steps_for

        X = np.asarray(X, np.float32)
        y = np.asarray(y)
        q, steps = steps_for(len(X), batch_size, epochs)
        batches = poisson_batches(len(X), q, steps, self.rng)
        if progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, total=steps, desc="DP-SGD")
        return [self.step(X[idx], y[idx], batch_size=batch_size) for idx in batches]


def _single_dense(model):
    """``(dense_layer, softmax)`` if the model's only trainable weights are one Dense(kernel, bias)
    applied to the input, with a linear or softmax activation; else None."""
    import keras

    dense = [lyr for lyr in model.layers if lyr.trainable_weights]
    if len(dense) != 1 or not isinstance(dense[0], keras.layers.Dense) or not dense[0].use_bias:
        return None
    lyr = dense[0]
    act = getattr(lyr.activation, "__name__", "")
    if act not in ("softmax", "linear"):
        return None
    others = [x for x in model.layers if x is not lyr and not isinstance(x, keras.layers.InputLayer)]
    if others or [v.path for v in model.trainable_variables] != [lyr.kernel.path, lyr.bias.path]:
        return None
    return lyr, act == "softmax"


def sgd_step_fn(model, learning_rate: float, from_logits: bool | None = None):
    """Plain mini-batch SGD step (same loss, same update rule) as a compiled function: the baseline."""
    import tensorflow as tf

    if from_logits is None:
        from_logits = not outputs_probabilities(model)
    loss_obj = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    variables = list(model.trainable_variables)

    @tf.function(reduce_retracing=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_obj(y, model(x, training=False))
        grads = tape.gradient(loss, variables)
        for v, g in zip(variables, grads, strict=True):
            if g is not None:
                v.assign_sub(learning_rate * g)
        return loss

    def run(X, y):
        return float(step(tf.convert_to_tensor(X, tf.float32), tf.convert_to_tensor(y, tf.int64)))

    return run
