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
        ghost: bool | None = None,
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
        self._scalars: dict = {}  # (clip, lr / denominator) -> the step's scalar tensor
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
        if ghost is None:
            ghost = ghost_layers(model) is not None
        self.ghost = GhostClippedGradient(model, from_logits) if ghost else None
        if self.ghost is not None:
            compute_segments = self.ghost.compute_segments
            handles = [v.handle for v in variables]  # Keras 3 variables expose their tf resource handle

            @tf.function(input_signature=[x_spec, tf.TensorSpec((None,), tf.int64), tf.TensorSpec((2,), tf.float32),
                                          tf.TensorSpec((self.n_params,), tf.float32)])
            def ghost_step(x, y, scalars, noise):
                # scalars = (clip, learning rate / denominator): one cached tensor; noise drawn outside
                segments, _, losses = compute_segments(x, y, scalars[0])
                # the noise is i.i.d. per coordinate, so each segment takes the next slice of it (no
                # reordering) and its variables are updated as soon as it is ready, while the other
                # segments are still being computed: w <- w - (lr / B) (clipped sum + noise), one fused op each
                start = 0
                for flat, idx in segments:
                    sizes = [self.sizes[i] for i in idx]
                    noisy = flat + noise[start:start + sum(sizes)]
                    start += sum(sizes)
                    for i, p in zip(idx, [noisy] if len(idx) == 1 else tf.split(noisy, sizes), strict=True):
                        tf.raw_ops.ResourceApplyGradientDescent(var=handles[i], alpha=scalars[1],
                                                                delta=tf.reshape(p, self.shapes[i]))
                return tf.reduce_mean(losses)

            self._zero_noise = tf.zeros((self.n_params,), tf.float32)
            # the concrete function: no per-call signature matching (sgd_step_fn gets the same)
            self._ghost_step = ghost_step.get_concrete_function()

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

    def clipped_gradient_sum(self, X, y):
        """``(sum_i clip(g_i) (n_params,), ||g_i|| (B,), losses (B,))`` without noise.

        By ghost clipping when the model allows it (no per-example gradients), else from
        :meth:`per_example_gradients`; tests compare the two with brute force.
        """
        if self.ghost is not None:
            return self.ghost(np.asarray(X, np.float32), np.asarray(y), self.l2_norm_clip)
        g, losses = self.per_example_gradients(X, y)
        return clip_l2(g, self.l2_norm_clip, axis=1).sum(axis=0), np.linalg.norm(g, axis=1), losses

    def step(self, X, y, batch_size=None) -> float:
        """One DP-SGD step on the batch ``(X, y)``; returns its mean (pre-update) loss.

        Ghost-clipping models run the whole step (clipped sum, noise, update) as one compiled
        function; the noise (std ``noise_multiplier * l2_norm_clip``) comes from the trainer's
        numpy generator either way (drawn in float32 here, the precision of the update).
        """
        if len(X) and self.ghost is not None:
            if self.noise_multiplier > 0 and not math.isfinite(self.l2_norm_clip):
                raise ValueError("noise needs a finite l2_norm_clip: the noise std is noise_multiplier * l2_norm_clip")
            denom = len(X) if batch_size is None else batch_size
            std = self.noise_multiplier * self.l2_norm_clip if self.noise_multiplier > 0 else 0.0
            key = (self.l2_norm_clip, self.learning_rate / denom)
            scalars = self._scalars.get(key)
            if scalars is None:
                if len(self._scalars) > 256:  # batch sizes vary without batch_size=: keep the cache small
                    self._scalars.clear()
                scalars = self._scalars[key] = self._tf.constant(key, self._tf.float32)
            tf = self._tf
            # numpy's ziggurat in float32: several times cheaper than TF's Box-Muller kernel in the graph
            if std > 0:
                noise = self.rng.standard_normal(self.n_params, dtype=np.float32)
                noise *= np.float32(std)
                noise = tf.constant(noise)
            else:
                noise = self._zero_noise
            loss = self._ghost_step(tf.convert_to_tensor(np.asarray(X, np.float32)),
                                    tf.convert_to_tensor(np.asarray(y, np.int64)), scalars, noise)
            self.steps_done += 1
            return float(loss)
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

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_obj(y, model(x, training=False))
        grads = tape.gradient(loss, variables)
        for v, g in zip(variables, grads, strict=True):
            if g is not None:
                v.assign_sub(learning_rate * g)
        return loss

    # called as a concrete function, like DPSGD's compiled step: no per-call signature matching
    step = step.get_concrete_function(tf.TensorSpec((None, *tuple(model.inputs[0].shape[1:])), tf.float32),
                                      tf.TensorSpec((None,), tf.int64))

    def run(X, y):
        return float(step(tf.convert_to_tensor(X, tf.float32), tf.convert_to_tensor(y, tf.int64)))

    return run


# ----------------------------------------------------------------------------------------------
# Ghost clipping: per-example gradient norms without per-example gradients
# ----------------------------------------------------------------------------------------------
# For a layer z = a W (+ b) the per-example gradient is a_i^T dz_i, so its squared norm is
# ||a_i||^2 ||dz_i||^2 for a vector input (Goodfellow 2015) and, for a sequence or a convolution
# (patches a_it), ||sum_t a_it dz_it^T||^2, computed from per-example sums over t that are as small
# as the kernel (Li et al. 2022; Bu et al. 2023 book-keeping: the per-example pieces are reused
# for the clipped sum, so no second backward pass is needed). All it needs is one forward pass
# that keeps every trainable layer's input and pre-activation output, and one backward pass to
# those outputs. Layers handled: Dense, Conv1D and DepthwiseConv1D (stride 1, no dilation, valid
# padding, channels last) and BatchNormalization in inference mode; parameter-free layers are
# called as they are. Anything else falls back to the exact vectorized per-example path.

_PASS_THROUGH = {"InputLayer", "ReLU", "Activation", "MaxPooling1D", "AveragePooling1D", "GlobalAveragePooling1D",
                 "GlobalMaxPooling1D", "Flatten", "Dropout", "Softmax", "Reshape"}


def _conv_ok(layer) -> bool:
    cfg = layer.get_config()
    return (tuple(cfg.get("strides", (1,))) == (1,) and tuple(cfg.get("dilation_rate", (1,))) == (1,)
            and cfg.get("padding") == "valid" and cfg.get("data_format", "channels_last") == "channels_last"
            and cfg.get("groups", 1) == 1 and cfg.get("depth_multiplier", 1) == 1)


def ghost_layers(model):
    """The model's layers as a chain if ghost clipping can handle every one of them, else None."""
    from odlkit.keras_utils import flat_layers

    try:
        layers = flat_layers(model, chain=True)
    except ValueError:
        return None
    covered = []
    for layer in layers:
        kind = type(layer).__name__
        if not layer.trainable_weights:
            if kind in _PASS_THROUGH or kind in ("Dense", "Conv1D", "DepthwiseConv1D", "BatchNormalization"):
                continue
            return None
        if kind in ("Conv1D", "DepthwiseConv1D") and not _conv_ok(layer):
            return None
        if kind not in ("Dense", "Conv1D", "DepthwiseConv1D", "BatchNormalization"):
            return None
        covered += [v.path for v in layer.trainable_weights]
    if covered != [v.path for v in model.trainable_variables]:
        return None  # a trainable variable the chain does not account for (or a different order)
    return layers


_IM2COL_MAX_CHANNELS = 8  # conv1 of the backbone (6 channels) yes, conv3 (32) no: see _ghost_forward


def _ghost_forward(layers, x):
    """Forward pass; returns ``(output, logits, taps)``: ``logits`` is the input of a final softmax
    (else None) and, per trainable layer, a tap ``(layer, kind, input, z)`` with ``z`` its
    pre-activation output; a convolution's input in its tap is its patches (B, T_out, k*C_in)."""
    import keras
    from keras import ops

    taps = []
    h, logits = x, None
    for layer in layers:
        kind = type(layer).__name__
        logits = None
        if not layer.trainable_weights:
            if kind == "Softmax" and layer.axis in (-1, len(h.shape) - 1):
                logits = h
            h = layer(h, training=False)
            continue
        if kind == "BatchNormalization":
            # z = h * s + o with per-channel s, o (as Keras computes it): two full-size ops, not four
            r = ops.rsqrt(layer.moving_variance + layer.epsilon)
            s = r * layer.gamma if layer.scale else r
            o = -layer.moving_mean * s + (layer.beta if layer.center else 0.0)
            z = h * s + o
            taps.append((layer, kind, h, z))
            h = z
            continue
        a = h
        if kind == "Dense":
            z = ops.matmul(h, layer.kernel)
        elif kind == "Conv1D":
            # the patches (B, T_out, k*C_in), index j*C_in + c as in the (k, C_in, C_out) kernel: the tap's
            # input, reused by the per-example terms. With few input channels the forward is the patches
            # times the kernel, one (B*T_out, k*C_in) x (k*C_in, C_out) product (im2col): cheaper than
            # TF's CPU convolution there, which wins again from 32 channels at batch 64 (measured).
            k, c_in, c_out = layer.kernel.shape
            t_out = h.shape[1] - k + 1
            a = h if k == 1 else ops.concatenate([h[:, j:j + t_out] for j in range(k)], axis=-1)
            if k == 1 or c_in <= _IM2COL_MAX_CHANNELS:
                z = ops.reshape(ops.matmul(ops.reshape(a, (-1, k * c_in)),
                                           ops.reshape(layer.kernel, (k * c_in, c_out))), (-1, t_out, c_out))
            else:
                z = ops.conv(h, layer.kernel, strides=1, padding="valid")
        else:
            z = ops.depthwise_conv(h, layer.kernel, strides=1, padding="valid")
        if layer.use_bias:
            z = z + layer.bias
        taps.append((layer, kind, a, z))
        act = layer.activation
        if act is keras.activations.softmax:
            logits = z
        h = z if act is None or act is keras.activations.linear else act(z)
    return h, logits, taps


def _layer_terms(kind, layer, a, g):
    """One trainable layer's share of the clipped sum, the cheaper of two ways (Bu et al. 2023's rule).

    ``("pieces", [(B, size) matrices])``: the per-example gradients of the layer's variables, in
    variable order, when they are cheap (BatchNorm, a depthwise kernel, a convolution whose
    per-example kernel gradient costs fewer multiply-adds than the Gram matrices below).
    ``("implicit", sq (B,), clipped(c) -> [flat gradients])``: the per-example gradients are never
    formed. A Dense layer on vectors: ``||a_i||^2 ||g_i||^2`` (Goodfellow 2015). A convolution
    (patches ``P_i`` (T, k*C_in), output gradient ``G_i`` (T, C_out)):
    ``||P_i^T G_i||^2 = sum(P_i P_i^T * G_i G_i^T)`` (ghost norm, Li et al. 2022). The clipped sum
    ``sum_i c_i P_i^T G_i`` is then one ordinary matrix product ``P^T (c * G)`` over batch and time.
    Patches are the input's k shifted copies side by side (static slices), made by the forward pass.
    """
    import tensorflow as tf

    if kind == "BatchNormalization":
        # z = a * s + o with s = gamma / sqrt(var + eps): d gamma_i = sum_t g (a - mean) / sqrt(var + eps),
        # formed as (sum_t g a - mean sum_t g) / sqrt(...) so the only full-size product is g * a
        axes = list(range(1, len(a.shape) - 1))
        g_sum = tf.reduce_sum(g, axis=axes) if axes else g
        pieces = []
        if layer.scale:
            ga = tf.reduce_sum(g * a, axis=axes) if axes else g * a
            pieces.append((ga - g_sum * layer.moving_mean) * tf.math.rsqrt(layer.moving_variance + layer.epsilon))
        return "pieces", pieces + ([g_sum] if layer.center else [])
    bias = [tf.reduce_sum(g, axis=list(range(1, len(g.shape) - 1)))] if layer.use_bias and len(g.shape) > 2 else []
    if kind == "Dense" and len(a.shape) == 2:
        gg = tf.reduce_sum(g * g, axis=1)
        sq = tf.reduce_sum(a * a, axis=1) * gg + (gg if layer.use_bias else 0.0)

        def clipped(c):
            cg = g * c[:, None]
            return [tf.reshape(tf.matmul(a, cg, transpose_a=True), [-1])] + (
                [tf.reduce_sum(cg, axis=0)] if layer.use_bias else [])

        return "implicit", sq, clipped
    t_in, t_out, c_in, c_out = a.shape[1], g.shape[1], a.shape[-1], g.shape[-1]
    if kind == "DepthwiseConv1D":  # multiplier 1: kernel (k, C, 1), d w[j, c] = sum_t a[t + j, c] g[t, c]
        k = layer.kernel.shape[0]
        # one depthwise filter gradient with the batch folded into the channels (example i's channel c
        # is channel i*C + c): the per-example kernels in one op instead of k products and sums
        a_folded = tf.reshape(tf.transpose(a, [1, 0, 2]), [1, 1, t_in, -1])
        g_folded = tf.reshape(tf.transpose(g, [1, 0, 2]), [1, 1, t_out, -1])
        w = tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
            input=a_folded, filter_sizes=tf.stack([1, k, tf.shape(a_folded)[3], 1]), out_backprop=g_folded,
            strides=[1, 1, 1, 1], padding="VALID")
        pw = tf.transpose(tf.reshape(w, [k, -1, c_in]), [1, 0, 2])  # (B, k, C)
        return "pieces", [tf.reshape(pw, [-1, k * c_in])] + bias
    # a convolution (its tap input is its patches, see _ghost_forward) or a Dense layer on (B, T, d):
    # per example z_i = A_i W with A_i (T, d) and W (d, C_out), so dW_i = A_i^T G_i
    d = c_in
    # multiply-adds per example: the kernel gradient A^T G against the two Gram matrices A A^T, G G^T
    if t_out * d * c_out <= t_out * t_out * (d + c_out):
        pw = tf.matmul(a, g, transpose_a=True)  # (B, d, C_out)
        return "pieces", [tf.reshape(pw, [-1, d * c_out])] + bias
    sq = tf.reduce_sum(tf.matmul(a, a, transpose_b=True) * tf.matmul(g, g, transpose_b=True), axis=[1, 2])
    if bias:
        sq = sq + tf.reduce_sum(bias[0] * bias[0], axis=1)

    def clipped(c):
        # sum_i c_i A_i^T G_i: one ordinary product over batch and time
        cg = g * c[:, None, None]
        kernel = tf.matmul(tf.reshape(a, [-1, d]), tf.reshape(cg, [-1, c_out]), transpose_a=True)
        return [tf.reshape(kernel, [-1])] + ([tf.linalg.matvec(bias[0], c, transpose_a=True)] if bias else [])

    return "implicit", sq, clipped


def _clipped_segments(taps, grads, clip):
    """``(segments, ||g_i||)``: the clipped sum ``sum_i c_i g_i`` (``c_i = min(1, clip / ||g_i||)``) as
    ``(flat tensor, indices of the variables it holds, in order)`` segments, cheapest order first.

    All layers' per-example pieces form one ``(B, size)`` block: its squared norms are one
    reduction and its clipped sum one product ``c^T block``, whichever layers they come from;
    implicit layers (see :func:`_layer_terms`) give their squared norms and clipped sums directly.
    """
    import tensorflow as tf

    pieces, piece_vars, implicit = [], [], []
    var = 0
    for (layer, kind, a, _), g in zip(taps, grads, strict=True):
        term = _layer_terms(kind, layer, a, g)
        n_vars = len(layer.trainable_weights)
        if term[0] == "pieces":
            pieces += term[1]
            piece_vars += list(range(var, var + n_vars))
        else:
            implicit.append((term, list(range(var, var + n_vars))))
        var += n_vars
    squares = [term[1] for term, _ in implicit]
    if pieces:
        block = pieces[0] if len(pieces) == 1 else tf.concat(pieces, axis=1)
        squares.insert(0, tf.reduce_sum(block * block, axis=1))
    norms = tf.sqrt(squares[0] if len(squares) == 1 else tf.add_n(squares))
    c = tf.minimum(1.0, clip / tf.maximum(norms, 1e-12))
    # c^T block as a product and a column sum: cheaper here than a (1, B) x (B, P) matrix product
    segments = [(tf.reduce_sum(block * c[:, None], axis=0), piece_vars)] if pieces else []
    for term, idx in implicit:
        segments += [(part, [i]) for part, i in zip(term[2](c), idx, strict=True)]
    return segments, norms


def _in_variable_order(segments, sizes):
    """The segments of :func:`_clipped_segments` as one flat vector in variable order."""
    import tensorflow as tf

    parts = {}
    for flat, idx in segments:
        split = [flat] if len(idx) == 1 else tf.split(flat, [sizes[i] for i in idx])
        parts.update(zip(idx, split, strict=True))
    ordered = [parts[i] for i in range(len(sizes))]
    return ordered[0] if len(ordered) == 1 else tf.concat(ordered, axis=0)


class GhostClippedGradient:
    """Clipped per-example gradient *sum* of a Keras chain model by ghost clipping (see above).

    ``__call__(x, y, clip)`` returns ``(clipped_sum (n_params,), per-example norms (B,), losses (B,))``
    in one compiled function: one forward pass, one backward pass to the layers' outputs, and
    per-example pieces no larger than the kernels. :class:`DPSGD` uses it when
    :func:`ghost_layers` accepts the model; the exact per-example path stays the reference.
    """

    def __init__(self, model, from_logits: bool):
        import tensorflow as tf

        layers = ghost_layers(model)
        if layers is None:
            raise ValueError("ghost clipping handles chains of Dense / Conv1D / DepthwiseConv1D / "
                             "BatchNormalization (inference) and parameter-free layers only")
        loss_obj = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits, reduction="none")
        self.layers = layers

        sizes = [int(np.prod(v.shape)) for v in model.trainable_variables]

        def compute_segments(x, y, clip):
            with tf.GradientTape() as tape:
                out, logits, taps = _ghost_forward(layers, x)
                if not from_logits and logits is not None:
                    # a softmax output: the loss on its logits, as Keras itself computes it
                    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
                else:
                    losses = loss_obj(y, out)
                total = tf.reduce_sum(losses)
            gz = tape.gradient(total, [t[3] for t in taps])
            segments, norms = _clipped_segments(taps, gz, clip)
            return segments, norms, losses

        def compute(x, y, clip):
            segments, norms, losses = compute_segments(x, y, clip)
            return _in_variable_order(segments, sizes), norms, losses

        self.compute_segments = compute_segments
        self.compute = compute
        x_spec = tf.TensorSpec((None, *tuple(model.inputs[0].shape[1:])), tf.float32)
        self._fn = tf.function(compute, input_signature=[x_spec, tf.TensorSpec((None,), tf.int64),
                                                         tf.TensorSpec((), tf.float32)])

    def __call__(self, x, y, clip):
        import tensorflow as tf

        s, n, loss = self._fn(tf.convert_to_tensor(x, tf.float32), tf.convert_to_tensor(y, tf.int64),
                              tf.constant(clip, tf.float32))
        return s.numpy(), n.numpy(), loss.numpy()
