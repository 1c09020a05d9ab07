"""Training-framework techniques for tiny devices, on Keras models.

- one training loop, :func:`train`, that updates only the variables a *plan* selects
  (the same plans the memory calculator counts: ``"full"``, ``"last"``, ``"bias"``,
  ``"bias+lite_residual"`` or a sparse ``{layer: parts}`` dict). BatchNorm statistics stay
  frozen (inference mode), as on a device where BN is folded;
- TinyTL's lite residual branch (:func:`add_lite_residual`);
- TinyTrain / Tiny Training Engine contribution analysis and a memory-budgeted selection
  (:func:`contribution_analysis`, :func:`select_under_budget`);
- int8 weights trained naively or with quantization-aware scaling (``weight_quant=``);
- layer-wise training (:func:`layerwise_train`) and recomputation (:func:`recompute_benchmark`).
"""

from __future__ import annotations

import itertools
import math
import time

import numpy as np

from odlkit.keras_utils import accuracy, flat_layers, outputs_probabilities
from odlkit.keras_utils import copy_model as clone_model
from odlkit.tiny.memory import _layers_with_params, _param_part, resolve_plan, training_memory
from odlkit.validation import check_xy

__all__ = [
    "clone_model",
    "flat_classifier",
    "select_variables",
    "train",
    "accuracy",
    "add_lite_residual",
    "quant_scale",
    "qas_scale_gradient",
    "grad_weight_ratios",
    "contribution_analysis",
    "select_under_budget",
    "layerwise_train",
    "recompute_benchmark",
]


def _copy_layer(layer):
    """A fresh layer with the same config; weights are copied after it is built (see callers)."""
    return layer.__class__.from_config(layer.get_config())


def _build_chain(inp, layers_):
    x = inp
    for layer in layers_:
        x = layer(x)
    return x


def flat_classifier(backbone, n_classes: int, seed: int = 0, name: str = "classifier"):
    """One flat Keras model: a copy of every backbone layer (with its weights) + a new
    ``Dense(n_classes, softmax)`` layer named ``head``. Flat, so the memory calculator and the
    plans see every layer."""
    import keras

    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    src = flat_layers(backbone, chain=True)
    inp = keras.Input(backbone.inputs[0].shape[1:], name="window")
    copies = [_copy_layer(la) for la in src]
    x = _build_chain(inp, copies)
    out = keras.layers.Dense(n_classes, activation="softmax", name="head",
                             kernel_initializer=keras.initializers.GlorotUniform(seed=seed))(x)
    for la, c in zip(src, copies, strict=True):
        c.set_weights(la.get_weights())
    return keras.Model(inp, out, name=name)


def select_variables(model, strategy) -> list:
    """The trainable variables a strategy updates (see :func:`odlkit.tiny.resolve_plan`)."""
    plan = resolve_plan(model, strategy)
    out = []
    for layer in model.layers:
        parts = plan.get(layer.name, ())
        for v in layer.weights:
            if _param_part(v) in parts:
                out.append(v)
    return out


# ----------------------------------------------------------------------------------------------
# quantization-aware scaling


def quant_scale(w) -> float:
    """Symmetric per-tensor int8 scale: ``s = max|w| / 127`` (so ``w ~= s * w_q``)."""
    m = float(np.max(np.abs(np.asarray(w))))
    return m / 127.0 if m > 0 else 1.0 / 127.0


def qas_scale_gradient(grad_wq, scale: float, input_scale: float | None = None):
    """Quantization-aware scaling (Lin et al. 2022, the Tiny Training Engine; textbook 12.3.2).

    Weights: with ``w = s_W * w_q`` the gradient w.r.t. the int8 tensor is ``g_wq = s_W * g_w``
    while ``w_q = w / s_W``, so ``|g_wq| / |w_q| = s_W**2 * |g_w| / |w|``: a per-tensor mismatch
    of ``s_W**2``, undone by ``g_wq * s_W**-2``.

    Biases: an int32 bias is stored with the scale of the product it is added to,
    ``b = s_W * s_x * b_q``, so its mismatch is ``(s_W * s_x)**2``: pass the input's scale as
    ``input_scale`` to get ``g_bq * (s_W * s_x)**-2``.
    """
    if not scale > 0:
        raise ValueError(f"the quantization scale must be positive, got {scale!r}")
    if input_scale is not None:
        if not input_scale > 0:
            raise ValueError(f"the input's quantization scale must be positive, got {input_scale!r}")
        scale = scale * input_scale
    return grad_wq * (1.0 / (scale * scale))


def grad_weight_ratios(model, X, y, strategy="full"):
    """Per kernel: ``|g|/|w|`` in the float graph, and for int8 ``w_q`` naively and with QAS.

    Returns a list of dicts (layer, scale, float, int8_naive, int8_qas); the naive ratio is
    ``s**2`` times the float one, QAS gives it back.
    """
    import keras
    import tensorflow as tf

    X, y = check_xy(X, y)
    variables = [v for v in select_variables(model, strategy) if len(v.shape) >= 2]
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=not outputs_probabilities(model))
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(X, training=False))
    grads = tape.gradient(loss, variables)
    rows = []
    for v, g in zip(variables, grads, strict=True):
        w = np.asarray(v.numpy())
        g = np.asarray(g)
        s = quant_scale(w)
        wq = np.clip(np.round(w / s), -127, 127)
        g_wq = s * g  # chain rule through w = s * w_q
        rows.append({
            "layer": v.path.split("/")[-2], "scale": s,
            "float": float(np.linalg.norm(g) / np.linalg.norm(w)),
            "int8_naive": float(np.linalg.norm(g_wq) / np.linalg.norm(wq)),
            "int8_qas": float(np.linalg.norm(qas_scale_gradient(g_wq, s)) / np.linalg.norm(wq)),
        })
    return rows


# ----------------------------------------------------------------------------------------------
# the training loop


def train(model, X, y, strategy="full", epochs: int = 10, batch_size: int = 32, lr: float = 0.01,
          optimizer: str = "momentum", seed: int = 0, weight_quant: str | None = None,
          masks: dict | None = None, progress: bool = False) -> list[float]:
    """Train the variables ``strategy`` selects with mini-batch SGD / momentum / Adam.

    ``weight_quant``: ``None`` (float), ``"naive"`` or ``"qas"``: every updated kernel is held
    as int8 ``w_q`` with a fixed per-tensor scale ``s`` (from its initial values); the forward
    pass uses ``s * round(w_q)``, the gradient w.r.t. ``w_q`` is ``s * dL/dw`` and is applied
    as is (naive) or times ``s**-2`` (QAS). Only tensors of rank >= 2 are quantized; biases and
    BN vectors stay float (int32 on a device).
    ``masks``: ``{variable.path: 0/1 array}`` keeps pruned weights at zero.
    Returns the mean training loss per epoch.
    """
    import keras
    import tensorflow as tf
    from tqdm.auto import tqdm

    X, y = check_xy(X, y)
    if weight_quant not in (None, "naive", "qas"):
        raise ValueError(f"weight_quant must be None, 'naive' or 'qas', got {weight_quant!r}")
    if optimizer not in ("sgd", "momentum", "adam"):
        raise ValueError(f"optimizer must be 'sgd', 'momentum' or 'adam', got {optimizer!r}")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs}, {batch_size}")
    variables = select_variables(model, strategy)
    if not variables:
        raise ValueError(f"strategy {strategy!r} selects no variables of this model")
    opt = {"sgd": lambda: keras.optimizers.SGD(lr),
           "momentum": lambda: keras.optimizers.SGD(lr, momentum=0.9),
           "adam": lambda: keras.optimizers.Adam(lr)}[optimizer]()
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=not outputs_probabilities(model))

    mask_t = []
    for v in variables:
        m = None if masks is None else masks.get(v.path)
        mask_t.append(None if m is None else tf.constant(np.asarray(m, dtype=np.float32)))

    quant = []  # (index, scale, latent w_q variable) for quantized kernels
    if weight_quant is not None:
        for i, v in enumerate(variables):
            if len(v.shape) >= 2:
                s = quant_scale(v.numpy())
                latent = keras.Variable(v.numpy() / s, name="latent_wq")
                v.assign(s * np.clip(np.round(latent.numpy()), -127, 127))
                quant.append((i, s, latent))
    qidx = {i: (s, lat) for i, s, lat in quant}
    # the optimizer works on proxies: the real variables, or the latent w_q for quantized kernels
    targets = [qidx[i][1] if i in qidx else v for i, v in enumerate(variables)]

    @tf.function(reduce_retracing=True)
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=False))
        grads = tape.gradient(loss, variables)
        out = []
        for i, g in enumerate(grads):
            if mask_t[i] is not None:
                g = g * mask_t[i]
            if i in qidx:
                s, _ = qidx[i]
                g = g * s  # dL/dw_q = s * dL/dw (straight-through the rounding)
                if weight_quant == "qas":
                    g = qas_scale_gradient(g, s)
            out.append(g)
        opt.apply_gradients(zip(out, targets, strict=True))
        for i, v in enumerate(variables):
            if i in qidx:
                s, lat = qidx[i]
                lat.assign(tf.clip_by_value(lat, -127.0, 127.0))
                v.assign(s * tf.round(lat))
            if mask_t[i] is not None:
                v.assign(v * mask_t[i])
        return loss

    rng = np.random.default_rng(seed)
    losses = []
    for _ in tqdm(range(epochs), desc="epochs", disable=not progress, leave=False):
        order = rng.permutation(len(X))
        tot = 0.0
        for k in range(0, len(X), batch_size):
            idx = order[k:k + batch_size]
            tot += float(step(tf.constant(X[idx]), tf.constant(y[idx]))) * len(idx)
        losses.append(tot / len(X))
    return losses


# ----------------------------------------------------------------------------------------------
# TinyTL lite residual


def add_lite_residual(model, downsample: int = 2, kernel_size: int = 3, reduction: int = 4, seed: int = 0):
    """Add a TinyTL *lite residual* branch beside every Conv1D of a chain-shaped model.

    Branch: ``AveragePooling1D(downsample)`` of the conv's input -> ``Conv1D(C_out // reduction,
    kernel_size)`` -> ``Conv1D(C_out, 1)`` (zero-initialised, so the new model starts equal to
    the old one) -> ``UpSampling1D`` -> crop/pad to the conv's output length, added to the conv's
    output. The branch works at ``1/downsample`` resolution, so the activations it must store
    for its weight gradients are small. Layers of the branch are named ``lite_residual*``.
    The other layers are copies of ``model``'s (same weights); ``model`` is left untouched.
    """
    import keras

    if downsample < 1 or kernel_size < 1 or reduction < 1:
        raise ValueError("downsample, kernel_size and reduction must be >= 1")
    inp = keras.Input(model.inputs[0].shape[1:])
    x = inp
    n = 0
    pairs = []
    for layer in flat_layers(model, chain=True):
        copy = _copy_layer(layer)
        pairs.append((layer, copy))
        y = copy(x)
        if type(layer).__name__ == "Conv1D":
            fn = getattr(layer.activation, "__name__", "linear")
            if fn != "linear":
                raise ValueError(f"layer {layer.name!r} has a fused activation ({fn}); the lite "
                                 "residual is added before the activation: use a separate ReLU layer")
            c_out, l_out = y.shape[-1], y.shape[1]
            c_mid = max(1, c_out // reduction)
            b = keras.layers.AveragePooling1D(downsample, padding="same", name=f"lite_residual_pool{n}")(x)
            b = keras.layers.Conv1D(c_mid, kernel_size, padding="same", activation="relu",
                                    kernel_initializer=keras.initializers.GlorotUniform(seed=seed + n),
                                    name=f"lite_residual_conv{n}")(b)
            b = keras.layers.Conv1D(c_out, 1, kernel_initializer="zeros", name=f"lite_residual_proj{n}")(b)
            b = keras.layers.UpSampling1D(downsample, name=f"lite_residual_up{n}")(b)
            extra = b.shape[1] - l_out
            if extra > 0:
                b = keras.layers.Cropping1D((0, extra), name=f"lite_residual_crop{n}")(b)
            elif extra < 0:
                b = keras.layers.ZeroPadding1D((0, -extra), name=f"lite_residual_pad{n}")(b)
            y = keras.layers.Add(name=f"lite_residual_add{n}")([y, b])
            n += 1
        x = y
    if n == 0:
        raise ValueError("the model has no Conv1D layer to put a lite residual beside")
    new = keras.Model(inp, x, name=f"{model.name}_lite_residual")
    for src, copy in pairs:
        copy.set_weights(src.get_weights())
    return new


# ----------------------------------------------------------------------------------------------
# sparse update: contribution analysis and selection under a memory budget


def contribution_analysis(build_model, X, y, X_val, y_val, epochs: int = 10, batch_size: int = 32,
                          lr: float = 0.01, optimizer: str = "momentum", layers=None, seed: int = 0,
                          progress: bool = True):
    """Measure what updating each layer's bias, or its kernel + bias, adds on top of training the
    last layer (TinyTrain / TTE contribution analysis).

    ``build_model()`` must return a fresh model with the same initial weights each call.
    Returns a DataFrame: layer, part ("bias" or "kernel+bias"), val accuracy, gain over
    last-layer-only, and the RAM that plan needs (``training_memory(...).ram_bytes``).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    m0 = build_model()
    candidates_layers = [la.name for la in _layers_with_params(m0)][:-1]
    last = _layers_with_params(m0)[-1].name
    if layers is not None:
        bad = [n for n in layers if n not in candidates_layers]
        if bad:
            raise ValueError(f"layers {bad} are not candidate layers; choose among {candidates_layers}")
        candidates_layers = list(layers)

    def run(plan):
        m = build_model()
        train(m, X, y, plan, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, seed=seed)
        mem = training_memory(m, plan, optimizer="momentum" if optimizer == "momentum" else optimizer,
                              batch_size=batch_size)
        return accuracy(m, X_val, y_val), mem.ram_bytes

    base_acc, base_mem = run({last: ("kernel", "bias")})
    rows = [{"layer": last, "part": "last only", "accuracy": base_acc, "gain": 0.0, "ram_bytes": base_mem}]
    jobs = [(n, p) for n in candidates_layers for p in ("bias", "kernel+bias")]
    for name, part in tqdm(jobs, desc="contribution", disable=not progress):
        parts = ("bias",) if part == "bias" else ("kernel", "bias")
        if part == "bias" and not any(_param_part(v) == "bias" for v in m0.get_layer(name).weights):
            continue
        acc, mem = run({last: ("kernel", "bias"), name: parts})
        rows.append({"layer": name, "part": part, "accuracy": acc, "gain": acc - base_acc, "ram_bytes": mem})
    return pd.DataFrame(rows)


def select_under_budget(model, contributions, budget_bytes: int, optimizer: str = "momentum",
                        batch_size: int = 32):
    """Best sparse plan under a RAM budget: for each candidate layer choose nothing, its bias,
    or kernel + bias, maximising the summed measured gains (assumed additive, as in TTE's
    search) among the plans whose ``training_memory(...).ram_bytes <= budget_bytes``
    (counted exactly, not summed, since activation costs interact). Exhaustive search.

    Returns ``(plan, expected_gain, ram_bytes)``.
    """
    layers = _layers_with_params(model)
    last = layers[-1].name
    df = contributions[contributions["part"] != "last only"]
    options = {}
    for name, grp in df.groupby("layer", sort=False):
        opts = [(None, 0.0)]
        for _, r in grp.iterrows():
            opts.append((("bias",) if r["part"] == "bias" else ("kernel", "bias"), float(r["gain"])))
        options[name] = opts
    names = list(options)
    if len(names) > 12:
        raise ValueError(f"{len(names)} candidate layers is too many for exhaustive search (max 12)")
    base_plan = {last: ("kernel", "bias")}
    base_mem = training_memory(model, base_plan, optimizer, batch_size).ram_bytes
    if base_mem > budget_bytes:
        raise ValueError(f"even last-layer training needs {base_mem} bytes > budget {budget_bytes}")
    best = (base_plan, 0.0, base_mem)
    for combo in itertools.product(*(options[n] for n in names)):
        gain = sum(g for _, g in combo)
        if gain <= best[1]:
            continue
        plan = dict(base_plan)
        for n, (parts, _) in zip(names, combo, strict=True):
            if parts is not None:
                plan[n] = parts
        mem = training_memory(model, plan, optimizer, batch_size).ram_bytes
        if mem <= budget_bytes:
            best = (plan, gain, mem)
    return best


# ----------------------------------------------------------------------------------------------
# layer-wise training and recomputation


def layerwise_train(model, X, y, X_val, y_val, epochs_per_stage: int = 5, batch_size: int = 32,
                    lr: float = 0.01, optimizer: str = "momentum", max_stages: int | None = None,
                    progress: bool = True):
    """Train one layer at a time, from the top down: stage k updates layer k (kernel + bias) and
    the last layer. Peak training memory is the largest stage, not the sum.

    Returns a DataFrame: stage, layer, val accuracy after the stage, that stage's RAM bytes,
    cumulative epochs. ``max_stages`` stops after that many stages (the top layers first).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    layers = [la.name for la in _layers_with_params(model)]
    last = layers[-1]
    rows = []
    stages = [last] + layers[:-1][::-1]
    if max_stages is not None:
        if max_stages < 1:
            raise ValueError(f"max_stages must be >= 1, got {max_stages}")
        stages = stages[:max_stages]
    for k, name in enumerate(tqdm(stages, desc="layer-wise", disable=not progress)):
        plan = {last: ("kernel", "bias"), name: ("kernel", "bias")}
        train(model, X, y, plan, epochs=epochs_per_stage, batch_size=batch_size, lr=lr,
              optimizer=optimizer, seed=k)
        mem = training_memory(model, plan, optimizer, batch_size).ram_bytes
        rows.append({"stage": k, "layer": name, "accuracy": accuracy(model, X_val, y_val),
                     "ram_bytes": mem, "epochs": (k + 1) * epochs_per_stage})
    return pd.DataFrame(rows)


def _peak_rss_reset() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")  # pragma: no cover


def _recompute_child(n_blocks, channels, length, batch, segments, mode, repeats, seed, wait=False):
    """Run in a fresh process: one mode of :func:`recompute_benchmark`; prints a JSON line.

    (Two modes in one process would not do: memory the first one freed hides the second's peak.)"""
    import json
    import sys

    import tensorflow as tf

    rng = np.random.default_rng(seed)
    ws = [tf.Variable(rng.normal(0, math.sqrt(2 / (3 * channels)), (3, channels, channels)).astype(np.float32))
          for _ in range(n_blocks)]
    x = tf.constant(rng.normal(size=(batch, length, channels)).astype(np.float32))

    def make_segment(idx):
        def seg(h):
            for i in idx:
                h = tf.nn.relu(tf.nn.conv1d(h, ws[i], 1, "SAME"))
            return h
        return seg

    bounds = np.array_split(np.arange(n_blocks), segments)
    segs = [make_segment(b) for b in bounds]
    if mode == "recompute":
        segs = [tf.recompute_grad(s) for s in segs]

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            h = x
            for s in segs:
                h = s(h)
            loss = tf.reduce_mean(h * h)
        return tape.gradient(loss, ws)

    step.get_concrete_function(x)  # trace without running
    _ = tf.reduce_sum(x)  # initialise the runtime outside the measurement
    if wait:  # the parent starts both processes together, then lets them measure one at a time
        print("READY", flush=True)
        sys.stdin.readline()
    base = _status_kib("VmRSS")
    _peak_rss_reset()
    g = step(x)
    _ = float(tf.reduce_sum(g[0]))
    peak = (_status_kib("VmHWM") - base) * 1024
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        g = step(x)
        _ = float(tf.reduce_sum(g[0]))
        times.append(time.perf_counter() - t0)
    print("RESULT " + json.dumps({"mode": mode, "peak_bytes": int(peak), "seconds": float(np.median(times))}),
          flush=True)


def recompute_benchmark(n_blocks: int = 8, channels: int = 32, length: int = 1024, batch: int = 32,
                        segments: int | None = None, repeats: int = 3, seed: int = 0, progress: bool = True) -> dict:
    """One gradient step of a deep 1-D conv stack (conv + ReLU blocks), plain vs with
    ``tf.recompute_grad``.

    ``segments`` groups of blocks are each wrapped in ``tf.recompute_grad`` (default
    ``sqrt(n_blocks)``, the classic choice): only the segment boundaries are kept, the inside
    of a segment is recomputed during the backward pass. Each mode runs in its own fresh Python
    process (so memory freed by one cannot hide the other's peak, and glibc returns large
    blocks to the OS: ``MALLOC_MMAP_THRESHOLD_``); the two start together and take turns to
    measure, so their timings do not compete for the CPU. Each measures the growth of the peak resident
    memory during the first step (Linux ``/proc/self/clear_refs`` resets the high-water mark)
    and the median step time over ``repeats``. Also gives the analytic stored-activation count.
    ``progress``: a tqdm bar over the three phases (both processes ready, each mode measured).
    """
    import json
    import os
    import subprocess
    import sys

    if not _peak_rss_reset():
        raise RuntimeError("measuring peak memory needs Linux /proc/self/clear_refs")
    segments = segments or max(1, round(math.sqrt(n_blocks)))
    if not 1 <= segments <= n_blocks:
        raise ValueError(f"segments must be in [1, n_blocks={n_blocks}], got {segments}")
    act = batch * length * channels * 4
    longest = max(len(b) for b in np.array_split(np.arange(n_blocks), segments))
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", TF_CPP_MIN_LOG_LEVEL="3",
               OMP_NUM_THREADS="1", TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
    # both processes import TensorFlow and trace in parallel (the slow part), then measure in turn
    import tempfile

    procs, errs = {}, {}
    for mode in ("plain", "recompute"):
        errs[mode] = tempfile.TemporaryFile("w+")  # a file, not a pipe: a chatty child cannot block
        code = ("from odlkit.tiny.techniques import _recompute_child as f; "
                f"f({n_blocks}, {channels}, {length}, {batch}, {segments}, {mode!r}, {repeats}, {seed}, wait=True)")
        procs[mode] = subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=errs[mode], text=True)

    def read_until(mode, prefix):
        for line in procs[mode].stdout:
            if line.startswith(prefix):
                return line
        procs[mode].wait(timeout=60)
        errs[mode].seek(0)
        raise RuntimeError(f"recompute benchmark ({mode}) failed with exit code {procs[mode].returncode}:\n"
                           f"{errs[mode].read()[-2000:]}")

    from tqdm.auto import tqdm

    out = {}
    bar = tqdm(total=1 + len(procs), desc="recompute benchmark (start, plain, recompute)", disable=not progress)
    try:
        for mode in procs:
            read_until(mode, "READY")
        bar.update(1)
        for mode, proc in procs.items():
            proc.stdin.write("GO\n")
            proc.stdin.flush()
            r = json.loads(read_until(mode, "RESULT ")[len("RESULT "):])
            r.pop("mode")
            r["stored_activation_bytes_model"] = int((n_blocks + 1) * act if mode == "plain"
                                                     else (segments + 1 + longest) * act)
            r["segments"] = segments if mode == "recompute" else 0
            out[mode] = r
            bar.update(1)
    finally:
        bar.close()
        for proc in procs.values():
            if proc.poll() is None:
                proc.stdin.close()
                try:
                    proc.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    proc.kill()
        for f in errs.values():
            f.close()
    return out
