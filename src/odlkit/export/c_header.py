"""Write the backbone (and an initial head) as ``odl_model_data.h`` for the ODLEngine library.

The header is plain C++14 data the sketch compiles with the library::

    #include <ODLEngine.h>
    #include "odl_model_data.h"
    static odl::Engine<ODL_ARENA_FLOATS, ODL_FEATURE_DIM, ODL_MAX_CLASSES, 200> engine;
    engine.begin(kOdlModel);

What the export does to the Keras backbone:

- BatchNormalization is folded into the Conv1D / DepthwiseConv1D / Dense before it
  (``W' = W * s``, ``b' = (b - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)``);
- a ReLU (layer, ``Activation("relu")`` or ``activation="relu"``) after a layer is fused into it;
- Dropout and InputLayer are skipped (identity at inference);
- anything else (other activations, ``padding="same"``, strides, dilation) raises an error
  naming the layer, because the board has no kernel for it.

Weights keep Keras's layouts (Conv1D (k, in, out), DepthwiseConv1D (k, in), Dense (in, out))
as float32 literals printed with 9 significant digits, which round-trip float32 exactly.
The head is stored row-major ``[class][feature]`` (the transpose of Keras's kernel), as the
engine and the weights blob (``odlkit.weights``) keep it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["export_layers", "model_header_text", "write_model_header", "LayerOp"]

# Values of odl::LayerType (odl_types.h)
CONV1D, DEPTHWISE, DENSE, RELU, MAXPOOL, GAP = 1, 2, 3, 4, 5, 6
_TYPE_NAMES = {CONV1D: "odl::kConv1D", DEPTHWISE: "odl::kDepthwiseConv1D", DENSE: "odl::kDense",
               RELU: "odl::kReLU", MAXPOOL: "odl::kMaxPool1D", GAP: "odl::kGlobalAvgPool1D"}
NAME_BYTES = 16


@dataclass
class LayerOp:
    """One layer of the board's layer list (BN folded, ReLU fused)."""

    type: int
    name: str
    kernel: int = 0
    in_channels: int = 0
    out_channels: int = 0
    W: np.ndarray | None = None
    b: np.ndarray | None = None
    relu: bool = False


def _activation_name(layer) -> str:
    act = getattr(layer, "activation", None)
    if act is None:
        return "linear"
    return getattr(act, "__name__", str(act))


def _check_conv(layer, what: str) -> None:
    cfg = layer.get_config()
    if cfg.get("padding", "valid") != "valid":
        raise ValueError(f"layer {layer.name!r}: {what} with padding={cfg['padding']!r}; the board supports 'valid' only")
    if tuple(cfg.get("strides", (1,))) != (1,):
        raise ValueError(f"layer {layer.name!r}: {what} with strides={cfg['strides']}; the board supports stride 1 only")
    if tuple(cfg.get("dilation_rate", (1,))) != (1,):
        raise ValueError(f"layer {layer.name!r}: {what} with dilation {cfg['dilation_rate']}; not supported on the board")
    if cfg.get("groups", 1) != 1:
        raise ValueError(f"layer {layer.name!r}: grouped convolution is not supported on the board")


def export_layers(backbone) -> list[LayerOp]:
    """The backbone as the board's layer list (float32 arrays, BN folded, ReLU fused)."""
    from keras import layers as L

    ops: list[LayerOp] = []
    shape = tuple(backbone.input_shape[1:])
    if len(shape) != 2:
        raise ValueError(f"the backbone must take (steps, channels) windows, got input shape {backbone.input_shape}")
    channels = int(shape[1])

    def fuse_activation(layer, op: LayerOp) -> None:
        name = _activation_name(layer)
        if name == "relu":
            op.relu = True
        elif name != "linear":
            raise ValueError(f"layer {layer.name!r}: activation {name!r} has no board kernel (use relu or none)")

    for layer in backbone.layers:
        if isinstance(layer, (L.InputLayer, L.Dropout)):
            continue
        prev = ops[-1] if ops else None
        if isinstance(layer, L.DepthwiseConv1D):  # before Conv1D: it subclasses it in some Keras versions
            _check_conv(layer, "DepthwiseConv1D")
            k = np.asarray(layer.depthwise_kernel.numpy() if hasattr(layer, "depthwise_kernel") else layer.get_weights()[0])
            if k.ndim != 3 or k.shape[2] != 1:
                raise ValueError(f"layer {layer.name!r}: depth_multiplier must be 1 for the board, kernel shape {k.shape}")
            w = layer.get_weights()
            b = np.asarray(w[1]) if layer.use_bias else np.zeros(k.shape[1], np.float32)
            op = LayerOp(DEPTHWISE, layer.name, int(k.shape[0]), channels, channels,
                         k[:, :, 0].astype(np.float64), b.astype(np.float64))
            fuse_activation(layer, op)
            ops.append(op)
        elif isinstance(layer, L.Conv1D):
            _check_conv(layer, "Conv1D")
            w = layer.get_weights()
            k = np.asarray(w[0])
            b = np.asarray(w[1]) if layer.use_bias else np.zeros(k.shape[2], np.float32)
            op = LayerOp(CONV1D, layer.name, int(k.shape[0]), int(k.shape[1]), int(k.shape[2]),
                         k.astype(np.float64), b.astype(np.float64))
            fuse_activation(layer, op)
            ops.append(op)
            channels = op.out_channels
        elif isinstance(layer, L.Dense):
            w = layer.get_weights()
            k = np.asarray(w[0])
            b = np.asarray(w[1]) if layer.use_bias else np.zeros(k.shape[1], np.float32)
            op = LayerOp(DENSE, layer.name, 0, int(k.shape[0]), int(k.shape[1]), k.astype(np.float64), b.astype(np.float64))
            fuse_activation(layer, op)
            ops.append(op)
            channels = op.out_channels
        elif isinstance(layer, L.BatchNormalization):
            if prev is None or prev.W is None or prev.relu:
                raise ValueError(
                    f"layer {layer.name!r}: BatchNormalization must directly follow a Conv1D, DepthwiseConv1D "
                    "or Dense without activation, so it can be folded into it"
                )
            cfg = layer.get_config()
            if cfg.get("axis", -1) not in (-1, 2, [-1], [2]):
                raise ValueError(f"layer {layer.name!r}: BatchNormalization must normalize the channel axis")
            n = prev.out_channels
            gamma = np.asarray(layer.gamma.numpy(), np.float64) if layer.scale else np.ones(n)
            beta = np.asarray(layer.beta.numpy(), np.float64) if layer.center else np.zeros(n)
            mean = np.asarray(layer.moving_mean.numpy(), np.float64)
            var = np.asarray(layer.moving_variance.numpy(), np.float64)
            s = gamma / np.sqrt(var + float(layer.epsilon))
            if prev.type == DEPTHWISE:
                prev.W = prev.W * s[None, :]
            else:
                prev.W = prev.W * s  # last axis is the output channel for Conv1D and Dense
            prev.b = (prev.b - mean) * s + beta
        elif isinstance(layer, (L.ReLU, L.Activation)):
            if isinstance(layer, L.ReLU):
                cfg = layer.get_config()
                if cfg.get("max_value") is not None or cfg.get("negative_slope", 0.0) or cfg.get("threshold", 0.0):
                    raise ValueError(f"layer {layer.name!r}: only a plain ReLU (no max_value/slope/threshold) is supported")
            elif _activation_name(layer) != "relu":
                if _activation_name(layer) == "linear":
                    continue
                raise ValueError(f"layer {layer.name!r}: activation {_activation_name(layer)!r} has no board kernel")
            if prev is not None and not prev.relu and prev.type != RELU:
                prev.relu = True
            else:
                ops.append(LayerOp(RELU, layer.name, 0, channels, channels))
        elif isinstance(layer, L.MaxPooling1D):
            cfg = layer.get_config()
            pool = int(cfg["pool_size"][0] if isinstance(cfg["pool_size"], (list, tuple)) else cfg["pool_size"])
            strides = cfg.get("strides") or pool
            strides = int(strides[0] if isinstance(strides, (list, tuple)) else strides)
            if strides != pool or cfg.get("padding", "valid") != "valid":
                raise ValueError(f"layer {layer.name!r}: MaxPooling1D needs strides == pool_size and padding 'valid'")
            ops.append(LayerOp(MAXPOOL, layer.name, pool, channels, channels))
        elif isinstance(layer, L.GlobalAveragePooling1D):
            if layer.get_config().get("keepdims", False):
                raise ValueError(f"layer {layer.name!r}: GlobalAveragePooling1D(keepdims=True) is not supported")
            ops.append(LayerOp(GAP, layer.name, 0, channels, channels))
        else:
            raise ValueError(
                f"layer {layer.name!r} ({type(layer).__name__}) has no kernel on the board; supported: Conv1D, "
                "DepthwiseConv1D, BatchNormalization, ReLU, MaxPooling1D, GlobalAveragePooling1D, Dense, Dropout"
            )
    for op in ops:
        if op.W is not None:
            op.W = op.W.astype(np.float32)
            op.b = op.b.astype(np.float32)
    return ops


def _shapes(ops: list[LayerOp], steps: int, channels: int) -> list[tuple[int, int]]:
    shapes = [(steps, channels)]
    t, c = steps, channels
    for op in ops:
        if op.type in (CONV1D, DEPTHWISE):
            if op.in_channels != c or op.kernel > t:
                raise ValueError(f"layer {op.name!r} does not fit its input ({t}, {c})")
            t, c = t - op.kernel + 1, op.out_channels
        elif op.type == DENSE:
            if t != 1 or op.in_channels != c:
                raise ValueError(f"layer {op.name!r}: Dense must come after GlobalAveragePooling1D (input ({t}, {c}))")
            c = op.out_channels
        elif op.type == MAXPOOL:
            t = t // op.kernel
        elif op.type == GAP:
            t = 1
        shapes.append((t, c))
    return shapes


def _f(v: float) -> str:
    v = float(np.float32(v))
    if not np.isfinite(v):
        raise ValueError(f"non-finite weight {v}: the model is broken (NaN/inf); retrain it before exporting")
    s = f"{v:.9g}"
    if not any(ch in s for ch in ".en"):
        s += ".0"
    return s + "f"


def _array(name: str, values: np.ndarray, per_line: int = 8) -> str:
    flat = np.asarray(values, np.float32).reshape(-1)
    lines = []
    for i in range(0, len(flat), per_line):
        lines.append("  " + ", ".join(_f(v) for v in flat[i : i + per_line]) + ",")
    return f"static const float {name}[{max(len(flat), 1)}] = {{\n" + "\n".join(lines or ["  0.0f,"]) + "\n};\n"


def _c_string(s: str) -> str:
    raw = s.encode("utf-8")
    if len(raw) > NAME_BYTES - 1:
        raise ValueError(f"class name {s!r} is {len(raw)} UTF-8 bytes; the board keeps at most {NAME_BYTES - 1}: shorten it")
    return '"' + "".join(chr(b) if 32 <= b < 127 and chr(b) not in '"\\' else f"\\{b:03o}" for b in raw) + '"'


def _head_arrays(head, class_names: list[str], feature_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(W [class][feature], b) of the initial head."""
    nc = len(class_names)
    if head is None:
        return np.zeros((nc, feature_dim), np.float32), np.zeros(nc, np.float32)
    if hasattr(head, "W") and hasattr(head, "b"):  # odlkit.weights.HeadWeights / odlkit.head.Head
        W, b = np.asarray(head.W, np.float32), np.asarray(head.b, np.float32)
    else:
        from keras import layers as L

        dense = [ly for ly in head.layers if isinstance(ly, L.Dense)]
        if len(dense) != 1:
            raise ValueError(f"the head must be one Dense layer (+ softmax); found {len(dense)} Dense layers")
        act = _activation_name(dense[0])
        if act not in ("softmax", "linear"):
            raise ValueError(f"head layer {dense[0].name!r} has activation {act!r}; the board head is Dense + softmax")
        w = dense[0].get_weights()
        W = np.asarray(w[0], np.float32)
        b = np.asarray(w[1], np.float32) if dense[0].use_bias else np.zeros(W.shape[1], np.float32)
    if W.shape != (feature_dim, nc) or b.shape != (nc,):
        raise ValueError(
            f"head shapes W {W.shape}, b {b.shape} do not match feature_dim={feature_dim} and "
            f"{nc} class names: expected W ({feature_dim}, {nc}) and b ({nc},)"
        )
    return np.ascontiguousarray(W.T), b


def model_header_text(backbone, head, input_mean, input_std, class_names, max_classes: int) -> str:
    """The text of ``odl_model_data.h`` (see :func:`write_model_header`)."""
    steps, channels = (int(d) for d in backbone.input_shape[1:])
    mean = np.asarray(input_mean, np.float64).reshape(-1)
    std = np.asarray(input_std, np.float64).reshape(-1)
    if mean.shape != (channels,) or std.shape != (channels,):
        raise ValueError(f"input_mean and input_std need {channels} values (one per channel), got {mean.shape} and {std.shape}")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
        raise ValueError(f"input_std must be finite and > 0 per channel (got {std.tolist()}); fit a Standardizer on real data")
    class_names = [str(c) for c in class_names]
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"class names must be unique, got {class_names}")
    max_classes = int(max_classes)
    if max_classes < max(len(class_names), 1) or max_classes > 255:
        raise ValueError(f"max_classes={max_classes} must be >= the {len(class_names)} initial classes and <= 255")
    ops = export_layers(backbone)
    shapes = _shapes(ops, steps, channels)
    t_out, feature_dim = shapes[-1]
    if t_out != 1:
        raise ValueError(f"the backbone must end in a vector (GlobalAveragePooling1D / Dense), ends in {shapes[-1]}")
    W_head, b_head = _head_arrays(head, class_names, feature_dim)
    arena = 2 * max(t * c for t, c in shapes)
    macs = 0
    for op, (t, _c) in zip(ops, shapes[1:], strict=True):
        if op.type == CONV1D:
            macs += t * op.out_channels * op.kernel * op.in_channels
        elif op.type == DEPTHWISE:
            macs += t * op.out_channels * op.kernel
        elif op.type == DENSE:
            macs += op.in_channels * op.out_channels
    nc = len(class_names)
    out = [
        "// odl_model_data.h - GENERATED by odlkit.export.c_header.write_model_header; do not edit.",
        f"// Backbone {backbone.name!r}: input ({steps}, {channels}) -> {feature_dim} features, "
        f"{len(ops)} layers (BatchNorm folded), {macs} MACs per window.",
        "#ifndef ODL_MODEL_DATA_H",
        "#define ODL_MODEL_DATA_H",
        "",
        "#include <ODLEngine.h>",
        "",
        f"#define ODL_INPUT_LEN {steps}",
        f"#define ODL_INPUT_CHANNELS {channels}",
        f"#define ODL_FEATURE_DIM {feature_dim}",
        f"#define ODL_NUM_CLASSES {nc}",
        f"#define ODL_MAX_CLASSES {max_classes}",
        f"#define ODL_ARENA_FLOATS {arena}",
        f"#define ODL_NUM_LAYERS {len(ops)}",
        f"#define ODL_BACKBONE_MACS {macs}",
        "",
        _array("kOdlInputMean", mean),
        _array("kOdlInputStd", std),
    ]
    for i, op in enumerate(ops):
        if op.W is not None:
            out.append(f"// layer {i}: {op.name} {_TYPE_NAMES[op.type]} W {tuple(op.W.shape)}")
            out.append(_array(f"kOdlL{i}W", op.W))
            out.append(_array(f"kOdlL{i}B", op.b))
    out.append("static const odl::LayerSpec kOdlLayers[ODL_NUM_LAYERS] = {")
    for i, op in enumerate(ops):
        w = f"kOdlL{i}W" if op.W is not None else "nullptr"
        b = f"kOdlL{i}B" if op.W is not None else "nullptr"
        act = "odl::kActRelu" if op.relu else "odl::kActNone"
        out.append(f"  {{{_TYPE_NAMES[op.type]}, {act}, {op.kernel}, {op.in_channels}, {op.out_channels}, {w}, {b}}},"
                   f"  // {op.name} -> {shapes[i + 1]}")
    out.append("};\n")
    names = ", ".join(_c_string(c) for c in class_names) or "nullptr"
    out.append(f"static const char* const kOdlClassNames[{max(nc, 1)}] = {{{names}}};")
    out.append("// initial head, row-major [class][feature]")
    out.append(_array("kOdlHeadWeights", W_head))
    out.append(_array("kOdlHeadBias", b_head))
    out.append(
        "static const odl::ModelSpec kOdlModel = {\n"
        "  ODL_INPUT_LEN, ODL_INPUT_CHANNELS, ODL_FEATURE_DIM, ODL_NUM_CLASSES, ODL_ARENA_FLOATS,\n"
        "  kOdlInputMean, kOdlInputStd, kOdlLayers, ODL_NUM_LAYERS,\n"
        "  kOdlClassNames, kOdlHeadWeights, kOdlHeadBias};\n"
    )
    out.append("#endif  // ODL_MODEL_DATA_H\n")
    return "\n".join(out)


def write_model_header(backbone, head_or_None, path, input_mean, input_std, class_names, max_classes: int = 8) -> Path:
    """Write ``odl_model_data.h`` for the ODLEngine library and return its path.

    backbone: the Keras backbone (``odlkit.models.build_backbone`` layers only);
    head_or_None: a Keras head (one Dense + softmax), an ``odlkit.weights.HeadWeights``, or
    None for a zero head with one row per class name; input_mean / input_std: per-channel
    normalization applied on the board before the backbone (a fitted ``Standardizer``'s
    ``mean_`` / ``std_``); class_names: names of the head's classes (<= 15 bytes each);
    max_classes: head rows available for classes added on the board.
    """
    text = model_header_text(backbone, head_or_None, input_mean, input_std, class_names, max_classes)
    path = Path(path)
    if path.suffix != ".h":
        raise ValueError(f"path {path} should be a .h file (e.g. arduino_sketches/lab1_motion/odl_model_data.h)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


