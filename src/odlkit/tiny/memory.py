"""Where training memory goes: a calculator for a Keras model and an update strategy.

The number that decides whether training fits a device is the **peak**: everything live at the
worst moment of one training step (textbook 12.3.1). It is the sum of what lives through the
whole step and the largest working set of one moment:

- **weights**, **gradients**, **optimizer state** and **stored activations** (below) are the
  *stored state* (``total_bytes``);
- the **working buffers** come on top: in the forward pass a layer's input and output are both
  live while it runs; in the backward pass the gradient arriving at a layer's output (``dy``)
  and the one it sends to its input (``dx``) are both live. For bias-only training at batch 32
  the gradient at the first convolution's output alone is larger than all the stored state.

``training_memory`` walks one step layer by layer (forward, loss, backward down to the earliest
updated layer) and records the live bytes at every allocation; ``peak_bytes`` is the maximum,
``ram_bytes`` the same with frozen weights left in flash. The walk assumes the schedule a
careful implementation uses (and the measured numpy step in ``tests/test_memory_peak.py``
follows): BatchNorm (frozen, an affine map) and ReLU run in place; a buffer is released as soon
as nothing later needs it; in the backward pass a layer first computes its parameter gradients
(into the gradient buffers), releases what they needed, then computes ``dx``. Two executions:

- ``execution="batched"``: the whole batch passes through each layer at once (Keras, PyTorch);
  every activation and working buffer scales with the batch;
- ``execution="streamed"``: one sample at a time, the parameter gradients accumulated over the
  batch before the update (what ODLEngine does): activations and working buffers are those of
  batch 1, whatever the batch size.

The walk follows ``model.layers`` as one chain: exact for a sequential model such as the course's
backbone; for a model with branches (a lite residual branch) a branch's input stays live beside
the main path, which the walk does not add, so read its peak as a lower bound.

``forward_arena_bytes`` is the static alternative to dynamic buffers that ODLEngine reserves
for inference: two ping-pong halves, each the size of the largest activation (input included).

The stored state, per term:

- **weights**: every parameter of the model. Frozen ones can stay in flash (read-only), the
  ones being updated must be in RAM;
- **gradients**: one value per *updated* parameter;
- **optimizer state**: SGD keeps nothing, SGD with momentum one buffer per updated parameter,
  Adam two (first and second moment);
- **stored activations**: what the forward pass must keep for the backward pass. This is the
  term TinyTL points at. The rules used here (per layer, for a batch of ``batch`` samples):

  ============================  ===============================================================
  layer                          stored for backward
  ============================  ===============================================================
  Dense / Conv / DepthwiseConv   its **input** if its kernel is updated (dW = x^T dy); nothing
                                 for a bias (db = sum dy) nor to pass the gradient on (dx = dy W^T)
  ReLU (layer or fused)          a 1-bit mask per output element, if a gradient passes through it
  other activations              the output (sigmoid, tanh, ...), if a gradient passes through
  MaxPooling                     ceil(log2(pool size)) bits per output element (the argmax)
  BatchNormalization (frozen)    nothing (a per-channel affine map); its input if gamma is updated
  pooling avg, flatten, add, ... nothing
  the loss                       the softmax probabilities, batch x n_outputs floats
  ============================  ===============================================================

  A gradient "passes through" a layer only if some layer *before* it has updated parameters:
  back-propagation stops at the earliest updated layer, which is why training only the last
  layer needs almost no activation memory.

Precision: ``"float32"`` stores everything in 4 bytes. ``"int8"`` stores kernels (tensors of
rank >= 2) as int8 plus one float32 scale per tensor and the stored activations as int8
(1 byte; bit masks stay bits); biases and normalization vectors stay 32-bit (int32 biases, as
in TFLite), and gradients and optimizer state stay float32, as in the Tiny Training Engine with
quantization-aware scaling.

Strategies (``resolve_plan``): ``"full"``, ``"last"`` (the last layer with parameters),
``"bias"`` (every bias and BN beta, plus the last layer in full: the new classifier),
``"bias+lite_residual"`` (``"bias"`` plus every parameter of layers named ``lite_residual*``,
see :func:`odlkit.tiny.techniques.add_lite_residual`), or an explicit ``dict`` mapping layer
names to the parts to update, ``{"conv1d_2": ("bias",), "dense": ("kernel", "bias")}``
(a sparse update). Parts are ``"kernel"`` (kernel, depthwise kernel, BN gamma) and
``"bias"`` (bias, BN beta).

``head_training_bytes`` gives the same count for a dense softmax head without TensorFlow.

The calculator is checked against hand counts (``tests/test_tiny.py``), against the RAM ODLEngine
reserves (its ``INFO`` report, exactly) and against the tracemalloc peak of an independent numpy
training step of the course's backbone (within 10 %, ``tests/test_memory_peak.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = [
    "OPTIMIZER_SLOTS",
    "MemoryReport",
    "LayerMemory",
    "resolve_plan",
    "training_memory",
    "head_training_memory",
    "head_training_bytes",
    "dense_backward_bytes",
    "format_bytes",
    "ENGINE_PLANS",
    "EnginePlanMemory",
    "engine_plan_strategy",
    "engine_plan_memory",
]

OPTIMIZER_SLOTS = {"sgd": 0, "momentum": 1, "adam": 2}
"""Number of optimizer buffers kept per updated parameter."""

_PRECISIONS = ("float32", "int8")
_EXECUTIONS = ("batched", "streamed")
_STRATEGIES = ("full", "last", "bias", "bias+lite_residual")

# layer classes with no parameters that store nothing for backward
_PASSTHROUGH = {
    "InputLayer", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "AveragePooling1D",
    "AveragePooling2D", "Flatten", "Reshape", "Add", "Concatenate", "UpSampling1D",
    "UpSampling2D", "Cropping1D", "Cropping2D", "ZeroPadding1D", "ZeroPadding2D", "Dropout",
    "Identity", "Subtract", "Average", "Rescaling", "Normalization",
}
_PARAM_LAYERS = {"Dense", "Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D"}
_KERNEL_NAMES = {"kernel", "depthwise_kernel", "pointwise_kernel", "gamma"}
_BIAS_NAMES = {"bias", "beta"}


def format_bytes(n: float) -> str:
    """Human-readable size: ``format_bytes(2048) == '2.0 KiB'``."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


@dataclass
class LayerMemory:
    """One layer's share: parameters by role, stored activation bytes and why."""

    name: str
    kind: str
    params: int
    updated_params: int
    weight_bytes: int
    activation_bytes: int
    note: str = ""


@dataclass
class MemoryReport:
    """Bytes of training memory by category (see the module docstring for the rules).

    Stored state: ``weight_bytes`` + ``gradient_bytes`` + ``optimizer_bytes`` +
    ``activation_bytes`` (= ``total_bytes``). The peak adds the working buffers live at the worst
    moment: ``peak_bytes`` (all weights in RAM) and ``ram_bytes`` (frozen weights in flash), the
    number to compare with a device's SRAM.
    """

    frozen_weight_bytes: int
    trainable_weight_bytes: int
    gradient_bytes: int
    optimizer_bytes: int
    activation_bytes: int
    updated_params: int
    total_params: int
    strategy: str = ""
    optimizer: str = "sgd"
    precision: str = "float32"
    batch_size: int = 1
    layers: list[LayerMemory] = field(default_factory=list)
    peak_activation_bytes: int | None = None
    """Largest live activation memory of the step: stored activations + working buffers."""
    forward_working_bytes: int = 0
    """Largest working set of the forward pass (buffers that are not stored for backward)."""
    backward_working_bytes: int = 0
    """Largest working set of the backward pass (``dy`` + ``dx`` of one layer)."""
    forward_arena_bytes: int = 0
    """A static forward arena: 2 x the largest activation (ODLEngine's ``arena_ram``)."""
    peak_moment: str = ""
    """Where the peak happens (``"forward conv1"``, ``"backward pw2"``, ...)."""
    execution: str = "batched"

    def __post_init__(self):
        if self.peak_activation_bytes is None:
            self.peak_activation_bytes = self.activation_bytes

    @property
    def weight_bytes(self) -> int:
        """All weights (frozen + trainable)."""
        return self.frozen_weight_bytes + self.trainable_weight_bytes

    @property
    def training_bytes(self) -> int:
        """Stored state training adds on top of the weights: gradients, optimizer state, stored
        activations (no working buffers: see ``peak_bytes``)."""
        return self.gradient_bytes + self.optimizer_bytes + self.activation_bytes

    @property
    def total_bytes(self) -> int:
        """Stored state: all weights + gradients + optimizer state + stored activations."""
        return self.weight_bytes + self.training_bytes

    @property
    def stored_ram_bytes(self) -> int:
        """Stored state with frozen weights in flash: trainable weights + ``training_bytes``."""
        return self.trainable_weight_bytes + self.training_bytes

    @property
    def _peak_activations(self) -> int:
        # set in __post_init__ when not given: never None after construction
        return self.activation_bytes if self.peak_activation_bytes is None else self.peak_activation_bytes

    @property
    def peak_bytes(self) -> int:
        """Peak memory of a training step, every weight in RAM."""
        return self.weight_bytes + self.gradient_bytes + self.optimizer_bytes + self._peak_activations

    @property
    def ram_bytes(self) -> int:
        """Peak RAM of a training step when frozen weights stay in flash (compare with SRAM)."""
        return self.peak_bytes - self.frozen_weight_bytes

    def as_dict(self) -> dict:
        """Flat dict (one table row)."""
        return {
            "strategy": self.strategy, "optimizer": self.optimizer, "precision": self.precision,
            "batch_size": self.batch_size, "execution": self.execution,
            "updated_params": self.updated_params,
            "total_params": self.total_params, "weights": self.weight_bytes,
            "trainable_weights": self.trainable_weight_bytes, "gradients": self.gradient_bytes,
            "optimizer_state": self.optimizer_bytes, "activations": self.activation_bytes,
            "working_buffers": self._peak_activations - self.activation_bytes,
            "forward_working": self.forward_working_bytes,
            "backward_working": self.backward_working_bytes,
            "training_bytes": self.training_bytes, "stored_ram_bytes": self.stored_ram_bytes,
            "total_bytes": self.total_bytes, "peak_bytes": self.peak_bytes,
            "ram_bytes": self.ram_bytes, "peak_moment": self.peak_moment,
        }

    def layer_table(self):
        """Per-layer breakdown as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame([vars(x) for x in self.layers])


def _check_common(batch_size, optimizer, precision, execution="batched"):
    if execution not in _EXECUTIONS:
        raise ValueError(f"unknown execution {execution!r}: use 'batched' or 'streamed'")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if optimizer not in OPTIMIZER_SLOTS:
        raise ValueError(f"unknown optimizer {optimizer!r}: use one of {sorted(OPTIMIZER_SLOTS)}")
    if precision not in _PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use 'float32' or 'int8'")


def dense_backward_bytes(in_features: int, out_features: int, batch: int, update_kernel: bool = True,
                         update_bias: bool = True, bytes_per_value: int = 4) -> int:
    """Bytes a Dense layer's backward pass needs beyond its weights: the stored input (only if
    the kernel is updated) and the gradients of the updated parameters (float32 by default).

    >>> dense_backward_bytes(64, 4, batch=8)   # x (8*64) + dW (64*4) + db (4), 4 bytes each
    3088
    """
    for nm, v in (("in_features", in_features), ("out_features", out_features), ("batch", batch)):
        if int(v) != v or v < 1:
            raise ValueError(f"{nm} must be a positive integer, got {v!r}")
    n = 0
    if update_kernel:
        n += batch * in_features + in_features * out_features
    if update_bias:
        n += out_features
    return n * bytes_per_value


def head_training_memory(feature_dim: int, n_classes: int, batch: int = 1, momentum: bool = True,
                         optimizer: str | None = None) -> MemoryReport:
    """Training memory of a dense softmax head ``z = x W + b`` alone, float32, no TensorFlow.

    Weights ``(F*C + C)``, gradients the same, momentum the same (if ``momentum``), stored
    activations: the ``batch x F`` input features (for dW) and the ``batch x C`` softmax
    probabilities (for the loss gradient). A device that streams a mini-batch one sample at a
    time and accumulates the gradient holds activations for one sample: use ``batch=1``.
    """
    for nm, v in (("feature_dim", feature_dim), ("n_classes", n_classes)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{nm} must be a positive integer, got {v!r}")
    opt = optimizer if optimizer is not None else ("momentum" if momentum else "sgd")
    _check_common(batch, opt, "float32")
    p = feature_dim * n_classes + n_classes
    act = batch * feature_dim * 4 + batch * n_classes * 4
    layer = LayerMemory("head", "Dense", p, p, p * 4, batch * feature_dim * 4, "input features")
    loss = LayerMemory("loss", "softmax", 0, 0, 0, batch * n_classes * 4, "probabilities")
    # forward: input features and logits live together; softmax in place; backward: dy = p - y in
    # place, dW and db into the gradient buffers, no dx (nothing below the head is trained)
    return MemoryReport(0, p * 4, p * 4, p * 4 * OPTIMIZER_SLOTS[opt], act, p, p, "last", opt,
                        "float32", batch, [layer, loss], peak_activation_bytes=act,
                        forward_working_bytes=batch * n_classes * 4, backward_working_bytes=batch * n_classes * 4,
                        forward_arena_bytes=2 * max(feature_dim, n_classes) * 4,
                        peak_moment="forward head")


def head_training_bytes(feature_dim: int, n_classes: int, batch: int = 1, momentum: bool = True) -> int:
    """Total bytes to train a dense softmax head (weights + gradients + momentum + activations).

    >>> head_training_bytes(64, 4, batch=1, momentum=True)   # 3*260*4 + (64+4)*4
    3392
    """
    return head_training_memory(feature_dim, n_classes, batch, momentum).total_bytes


# ----------------------------------------------------------------------------------------------
# Keras models


def _layer_parents(layer):
    import keras

    inputs = layer.input
    flat = keras.tree.flatten(inputs) if isinstance(inputs, list | tuple | dict) else [inputs]
    parents = []
    for t in flat:
        hist = getattr(t, "_keras_history", None)
        if hist is not None and hist[0] is not layer:
            parents.append(hist[0])
    return parents


def _elements(shape) -> int:
    """Elements per sample of a (None, ...) shape."""
    if isinstance(shape, list) and shape and isinstance(shape[0], tuple | list):
        return sum(_elements(s) for s in shape)
    dims = list(shape)[1:]
    if any(d is None for d in dims):
        raise ValueError(f"cannot count activations of a tensor with unknown shape {tuple(shape)}: "
                         "build the model with a fixed input shape, e.g. keras.Input((50, 6))")
    return int(math.prod(dims))


def _param_part(var) -> str | None:
    name = var.path.split("/")[-1]
    if not var.trainable:
        return None
    if name in _KERNEL_NAMES:
        return "kernel"
    if name in _BIAS_NAMES:
        return "bias"
    return "kernel"


def _layers_with_params(model):
    return [la for la in model.layers if any(v.trainable for v in la.weights)]


def resolve_plan(model, strategy) -> dict[str, tuple[str, ...]]:
    """Which parts of which layers a strategy updates: ``{layer_name: ("kernel", "bias")}``."""
    layers = _layers_with_params(model)
    if not layers:
        raise ValueError("the model has no trainable parameters")
    names = [la.name for la in layers]
    if isinstance(strategy, dict):
        unknown = [k for k in strategy if k not in names]
        if unknown:
            raise ValueError(f"layers {unknown} are not layers with parameters of this model; "
                             f"choose among {names}")
        plan = {}
        for k, parts in strategy.items():
            parts = (parts,) if isinstance(parts, str) else tuple(parts)
            bad = [p for p in parts if p not in ("kernel", "bias")]
            if bad:
                raise ValueError(f"layer {k!r}: unknown parts {bad}; parts are 'kernel' and 'bias'")
            if parts:
                plan[k] = parts
        return plan
    if strategy not in _STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}: use one of {_STRATEGIES} or a dict "
                         "{layer_name: ('kernel', 'bias')} for a sparse update")
    last = layers[-1].name
    if strategy == "full":
        return {n: ("kernel", "bias") for n in names}
    if strategy == "last":
        return {last: ("kernel", "bias")}
    plan = {la.name: ("bias",) for la in layers if any(_param_part(v) == "bias" for v in la.weights)}
    if strategy == "bias+lite_residual":
        lite = [n for n in names if n.startswith("lite_residual")]
        if not lite:
            raise ValueError("strategy 'bias+lite_residual' needs layers named 'lite_residual*': "
                             "build the model with odlkit.tiny.add_lite_residual(model) first")
        for n in lite:
            plan[n] = ("kernel", "bias")
    plan[last] = ("kernel", "bias")
    return plan


def _bits_to_bytes(bits: int) -> int:
    return (bits + 7) // 8


def training_memory(model, strategy="full", optimizer: str = "sgd", batch_size: int = 1,
                    precision: str = "float32", execution: str = "batched") -> MemoryReport:
    """Count the bytes of weights, gradients, optimizer state, stored activations and working
    buffers needed to train ``model`` (a built Keras model) with ``strategy`` (see the module
    docstring), and the peak of one training step (``ram_bytes``, ``peak_bytes``).

    ``execution="streamed"``: one sample at a time with gradients accumulated over the batch
    (activations and working buffers of batch 1); ``"batched"``: the whole batch at once."""
    _check_common(batch_size, optimizer, precision, execution)
    if not getattr(model, "built", False) or not model.layers:
        raise ValueError("the model must be a built Keras model (give it an Input shape)")
    plan = resolve_plan(model, strategy)
    int8 = precision == "int8"
    act_bytes = 1 if int8 else 4
    slots = OPTIMIZER_SLOTS[optimizer]
    nb = 1 if execution == "streamed" else batch_size  # samples whose activations are live at once

    frozen_w = train_w = grads = opt = acts = updated = total = 0
    rows: list[LayerMemory] = []
    needs_grad: dict[int, bool] = {}  # id(layer) -> a gradient exists w.r.t. its output
    # the schedule of one step, for the peak: per layer what forward/backward allocate and free
    steps = []
    for layer in model.layers:
        kind = type(layer).__name__
        parts = plan.get(layer.name, ())
        parents = _layer_parents(layer) if kind != "InputLayer" else []
        grad_in = any(needs_grad.get(id(p), False) for p in parents)  # dL/d(input) is needed
        needs_grad[id(layer)] = grad_in or bool(parts)

        # weights, gradients, optimizer state
        lp = lu = lw = 0
        for v in layer.weights:
            size = int(math.prod(v.shape))
            is_kernel = len(v.shape) >= 2
            wb = (size + 4) if (int8 and is_kernel) else size * 4
            part = _param_part(v)
            lp += size
            lw += wb
            if part is not None and part in parts:
                lu += size
                train_w += wb
                grads += size * 4
                opt += size * 4 * slots
            else:
                frozen_w += wb
        total += lp
        updated += lu

        # stored activations (for the report: batch_size samples, or 1 when streamed)
        a, notes = 0, []
        inputs = layer.input if isinstance(layer.input, list | tuple) else [layer.input]
        in_el = sum(_elements(t.shape) for t in inputs) if kind != "InputLayer" else 0
        out_el = _elements(layer.output.shape)
        stored_input = stored_copy = bits = 0  # per sample: bytes kept for backward
        act_name = None
        in_place = False
        if kind in _PARAM_LAYERS:
            if "kernel" in parts:
                stored_input = in_el * act_bytes
                notes.append("input (kernel grad)")
            fn = getattr(layer, "activation", None)
            act_name = getattr(fn, "__name__", "linear") if fn is not None else "linear"
        elif kind == "BatchNormalization":
            in_place = True
            if "kernel" in parts:
                stored_copy = in_el * act_bytes
                notes.append("normalized input (gamma grad)")
        elif kind == "ReLU":
            act_name = "relu"
            in_place = True
        elif kind == "Activation":
            act_name = getattr(layer.activation, "__name__", str(layer.activation))
            in_place = True
        elif kind in ("MaxPooling1D", "MaxPooling2D"):
            if grad_in:
                window = int(math.prod(layer.pool_size))
                bits += out_el * max(1, math.ceil(math.log2(window)))
                notes.append("argmax bits")
        elif hasattr(layer, "layers"):
            raise ValueError(f"layer {layer.name!r} is a nested model; the calculator needs a flat model: "
                             "build it with odlkit.tiny.flat_classifier(backbone, n_classes)")
        elif kind not in _PASSTHROUGH:
            raise ValueError(f"layer {layer.name!r} of type {kind} is not supported by the memory "
                             f"calculator; supported: {sorted(_PARAM_LAYERS | _PASSTHROUGH)} plus "
                             "BatchNormalization, ReLU, Activation, MaxPooling")
        elif kind in ("InputLayer", "Flatten", "Reshape", "Dropout", "Identity", "Rescaling",
                      "Normalization"):
            in_place = True  # a view or an elementwise map
        # the activation function: needed if a gradient flows through it
        flows = needs_grad[id(layer)] if kind in _PARAM_LAYERS else grad_in
        act_mask_bits = act_copy = 0
        if act_name not in (None, "linear") and flows and layer is not model.layers[-1]:
            if act_name == "relu":
                act_mask_bits = out_el
                notes.append("relu mask bits")
            else:
                act_copy = out_el * act_bytes
                notes.append(f"{act_name} output")
        a = (stored_input + stored_copy + act_copy) * nb + _bits_to_bytes((bits + act_mask_bits) * nb)
        acts += a
        rows.append(LayerMemory(layer.name, kind, lp, lu, lw, a, ", ".join(notes)))
        steps.append({
            "name": layer.name, "kind": kind, "in": in_el, "out": out_el, "in_place": in_place,
            "stored_input": stored_input, "stored_copy": stored_copy + act_copy,
            "bits": bits + act_mask_bits, "grad_in": grad_in, "updated": bool(parts),
        })

    # the loss: softmax probabilities of the output (float32)
    n_out = _elements(model.outputs[0].shape)
    loss_b = n_out * nb * 4
    acts += loss_b
    rows.append(LayerMemory("loss", "softmax cross-entropy", 0, 0, 0, loss_b, "probabilities"))
    peak = _walk_step(steps, nb, act_bytes, n_out)
    largest = max([s["out"] for s in steps] + [s["in"] for s in steps])
    name = strategy if isinstance(strategy, str) else "sparse"
    return MemoryReport(frozen_w, train_w, grads, opt, acts, updated, total, name, optimizer,
                        precision, batch_size, rows, peak_activation_bytes=peak["peak"],
                        forward_working_bytes=peak["forward_working"],
                        backward_working_bytes=peak["backward_working"],
                        forward_arena_bytes=2 * largest * act_bytes, peak_moment=peak["moment"],
                        execution=execution)


def _walk_step(steps, nb: int, act_bytes: int, n_out: int) -> dict:
    """Live activation bytes through one training step of ``nb`` samples at once.

    Forward: a layer that is not in place allocates its output while its input is live, then the
    input is released unless the layer's kernel gradient needs it (it joins the stored set). Loss:
    softmax probabilities (float32) replace the logits. Backward, from the last layer down to the
    earliest updated one: parameter gradients first (they need the stored tensors, which are then
    released), then ``dx`` is allocated while ``dy`` is live, then ``dy`` is released.
    """
    stored = 0                       # bytes kept for backward so far
    cur = 0                          # the tensor flowing forward
    peak = fwd_work = bwd_work = 0
    moment = ""
    kept: list[tuple[int, int]] = []  # per step: (bytes kept for backward, bits bytes)

    def see(live, where):
        nonlocal peak, moment
        if live > peak:
            peak, moment = live, where

    for st in steps:
        kb = _bits_to_bytes(st["bits"] * nb)
        if st["kind"] == "InputLayer":
            cur = st["out"] * nb * act_bytes
            see(cur, f"forward {st['name']}")
            fwd_work = max(fwd_work, cur)
            kept.append((0, 0))
            continue
        keep = st["stored_copy"] * nb
        if st["in_place"]:
            # a stored copy (BN gamma, sigmoid output) or mask bits are allocated beside cur
            see(stored + cur + keep + kb, f"forward {st['name']}")
            fwd_work = max(fwd_work, cur)
            stored += keep + kb
        else:
            out = st["out"] * nb * act_bytes
            see(stored + cur + out + keep + kb, f"forward {st['name']}")
            keep_in = st["stored_input"] * nb
            fwd_work = max(fwd_work, (cur - keep_in) + out)
            keep += keep_in   # the input buffer itself is kept (not a copy)
            stored += keep + kb
            cur = out
        kept.append((keep, kb))
    # the loss: float32 probabilities (in place of float32 logits; int8 logits are replaced)
    probs = n_out * nb * 4
    see(stored + cur + (probs if act_bytes != 4 else 0), "loss")
    dy = probs
    # backward
    for st, (keep, kb) in zip(reversed(steps), reversed(kept), strict=True):
        if st["kind"] == "InputLayer":
            break
        if not st["grad_in"] and not st["updated"]:
            break  # nothing below needs a gradient
        # parameter gradients use the stored tensors, which are released afterwards
        see(stored + dy, f"backward {st['name']}")
        bwd_work = max(bwd_work, dy)
        stored -= keep + kb
        if not st["grad_in"]:
            break  # the earliest updated layer: no dx
        if st["in_place"]:
            continue  # dx overwrites dy
        dx = st["in"] * nb * 4
        see(stored + dy + dx, f"backward {st['name']}")
        bwd_work = max(bwd_work, dy + dx)
        dy = dx
    return {"peak": peak, "forward_working": fwd_work, "backward_working": bwd_work, "moment": moment}


# ----------------------------------------------------------------------------------------------
# ODLEngine's update plans (arduino_sketches/ODLEngine/src/odl_backprop.h)

ENGINE_PLANS = ("head", "bias", "sparse")
"""The engine's training plans: the head alone, TinyTL's bias-only, sparse update of the last k layers."""


@dataclass
class EnginePlanMemory:
    """What an ODLEngine plan keeps in the engine's plan buffer (``INFO``'s ``plan_ram``).

    The head's own buffers (``head_ram``) and the forward arena (``arena_ram``, which the
    backward pass reuses for ``dy`` / ``dx``) are apart; this is what the plan adds on top."""

    plan: str
    sparse_layers: int
    copies: int
    """RAM copies of the backbone tensors the plan updates (the exported ones stay in flash)."""
    gradients: int
    momentum: int
    activations: int
    """Stored for backward: inputs of layers whose kernel is updated, ReLU mask and MaxPool argmax bits."""
    report: MemoryReport

    @property
    def bytes(self) -> int:
        return self.copies + self.gradients + self.momentum + self.activations


def _folded_classifier(backbone, n_classes: int = 2):
    """The backbone as the board runs it (BatchNorm folded, ReLU fused: odlkit.export.c_header's
    layer list) as a flat Keras model with a softmax head."""
    import keras

    from odlkit.export.c_header import CONV1D, DENSE, DEPTHWISE, GAP, MAXPOOL, RELU, export_layers

    ops = export_layers(backbone)
    inp = keras.Input(tuple(backbone.input_shape[1:]), name="window")
    x = inp
    for op in ops:
        act = "relu" if op.relu else None
        if op.type == CONV1D:
            x = keras.layers.Conv1D(op.out_channels, op.kernel, activation=act, name=op.name)(x)
        elif op.type == DEPTHWISE:
            x = keras.layers.DepthwiseConv1D(op.kernel, activation=act, name=op.name)(x)
        elif op.type == DENSE:
            x = keras.layers.Dense(op.out_channels, activation=act, name=op.name)(x)
        elif op.type == RELU:
            x = keras.layers.ReLU(name=op.name)(x)
        elif op.type == MAXPOOL:
            x = keras.layers.MaxPooling1D(op.kernel, name=op.name)(x)
        elif op.type == GAP:
            x = keras.layers.GlobalAveragePooling1D(name=op.name)(x)
    out = keras.layers.Dense(n_classes, activation="softmax", name="head")(x)
    return keras.Model(inp, out, name="folded_classifier"), ops


def engine_plan_strategy(model, plan: str, sparse_layers: int = 0) -> dict[str, tuple[str, ...]]:
    """The :func:`resolve_plan` dict of an engine plan on a flat classifier whose last layer is
    the head: ``"bias"`` = every bias + the head; ``"sparse"`` = every bias + the kernels of the
    last ``sparse_layers`` backbone layers with weights + the head; ``"head"`` = the head."""
    if plan not in ENGINE_PLANS:
        raise ValueError(f"unknown engine plan {plan!r}: use one of {ENGINE_PLANS}")
    layers = _layers_with_params(model)
    head, backbone = layers[-1].name, layers[:-1]
    if plan == "head":
        return {head: ("kernel", "bias")}
    if plan == "sparse" and not (isinstance(sparse_layers, int) and 1 <= sparse_layers <= len(backbone)):
        raise ValueError(f"sparse_layers must be 1..{len(backbone)} (backbone layers with weights), "
                         f"got {sparse_layers!r}")
    k = sparse_layers if plan == "sparse" else 0
    out: dict[str, tuple[str, ...]] = {}
    for i, la in enumerate(backbone):
        parts = ["bias"] if any(_param_part(v) == "bias" for v in la.weights) else []
        if i >= len(backbone) - k:
            parts.insert(0, "kernel")
        if parts:
            out[la.name] = tuple(parts)
    out[head] = ("kernel", "bias")
    return out


def engine_plan_memory(backbone, plan: str, sparse_layers: int = 0) -> EnginePlanMemory:
    """Bytes an ODLEngine training plan keeps in the engine's plan buffer, from the Keras
    backbone (folded as exported) and :func:`training_memory`'s rules (SGD with momentum, one
    sample at a time): per updated backbone parameter a RAM copy, a gradient and a momentum value
    (float32); the stored activations of the backbone layers. The engine reports the same number
    (``Stats::plan_bytes``, ``INFO plan_ram``), byte for byte (``tests/test_training_plans.py``).
    ``"head"`` keeps nothing there (its buffers are ``head_ram``)."""
    model, _ = _folded_classifier(backbone)
    strategy = engine_plan_strategy(model, plan, sparse_layers)
    rep = training_memory(model, strategy, optimizer="momentum", batch_size=1, execution="streamed")
    rows = [r for r in rep.layers if r.name not in ("head", "loss")]
    if plan == "head":
        rows = []
    upd = sum(r.updated_params for r in rows)
    acts = sum(r.activation_bytes for r in rows)
    return EnginePlanMemory(plan, sparse_layers if plan == "sparse" else 0, 4 * upd, 4 * upd,
                            4 * upd * OPTIMIZER_SLOTS["momentum"], acts, rep)
