"""The full-integer (int8) backbone as the board's int8 layer list (``odl_int8.h``).

The int8 path of the engine runs the backbone that ``to_tflite(..., int8=True)`` produced, with
that model's own int8 weights, int32 biases, scales and zero points, and the integer arithmetic
of TensorFlow Lite Micro's reference kernels (its features equal TFLite Micro's bit for bit, and
every layer equals ``tf.lite.Interpreter(..., experimental_op_resolver_type=BUILTIN_REF)`` bit
for bit except the dense layer's rounding ties, which TensorFlow's reference rounds once and
TFLite Micro twice; ``tests/test_int8_training.py`` checks both). This module reads the converted model
(LiteRT's interpreter: tensor data, quantization parameters and the op list), pairs every
compute op with the Keras layer list of :func:`odlkit.export.c_header.export_layers` (for the
kernel sizes and fused ReLUs the op list does not expose), and computes each op's fixed-point
output multipliers exactly as TFLite's ``QuantizeMultiplier`` does (in float64, from the
float32 scales, round half away from zero).

The trainable head of the int8 path is quantized here too, the way ch02 quantizes a kernel for
int8 training (``odlkit.tiny.quant_scale``: symmetric per tensor, ``s_W = max|W| / 127``; the
bias in int32 at ``s_W * s_x``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .c_header import CONV1D, DENSE, DEPTHWISE, GAP, MAXPOOL, RELU, export_layers
from .tflite import ExportError, _litert_interpreter

# TFLite op name -> the board's layer type; the ops that only reshape are skipped.
_COMPUTE_OPS = {"CONV_2D": CONV1D, "DEPTHWISE_CONV_2D": DEPTHWISE, "FULLY_CONNECTED": DENSE,
                "MAX_POOL_2D": MAXPOOL, "MEAN": GAP}  # fmt: skip
_SHAPE_OPS = {"EXPAND_DIMS", "RESHAPE", "SQUEEZE"}
_TYPE_NAMES = {CONV1D: "odl::kConv1D", DEPTHWISE: "odl::kDepthwiseConv1D", DENSE: "odl::kDense",
               MAXPOOL: "odl::kMaxPool1D", GAP: "odl::kGlobalAvgPool1D"}  # fmt: skip


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: ``real ~= m * 2**(shift - 31)`` with ``m`` in [2**30, 2**31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(math.floor(q * (1 << 31) + 0.5))  # std::round of a positive value
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        return (1 << 31) - 1, 30
    return q_fixed, shift


@dataclass
class QLayer:
    """One int8 layer: the op, its tensors and its requantization (TFLite layouts)."""

    type: int
    name: str
    kernel: int
    in_channels: int
    out_channels: int
    in_zero: int
    out_zero: int
    out_scale: float
    act_min: int
    act_max: int
    weights: np.ndarray | None = None  # int8: conv (out, k, in), depthwise (k, C), dense (out, in)
    bias: np.ndarray | None = None  # int32 (out,)
    multiplier: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    shift: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    tensor: int = -1  # index of the op's output tensor in the .tflite (for layer-by-layer tests)


@dataclass
class QModel:
    """The int8 backbone: input quantization, layers, the features' quantization."""

    input_len: int
    input_channels: int
    input_scale: float
    input_zero: int
    layers: list[QLayer]
    feature_dim: int
    feature_scale: float
    feature_zero: int

    def arena_bytes(self) -> int:
        """Two halves, each holding the largest activation (int8)."""
        T, C, big = self.input_len, self.input_channels, self.input_len * self.input_channels
        for q in self.layers:
            if q.type in (CONV1D, DEPTHWISE):
                T = T - q.kernel + 1
            elif q.type == MAXPOOL:
                T = T // q.kernel
            elif q.type in (GAP, DENSE):
                T = 1
            C = q.out_channels
            big = max(big, T * C)
        return 2 * ((big + 3) // 4 * 4)

    def quantize_input(self, X: np.ndarray) -> np.ndarray:
        """Normalized float windows -> int8 as the engine quantizes them (round half away from zero)."""
        v = np.asarray(X, np.float32) / np.float32(self.input_scale)
        r = np.where(v >= 0, np.floor(v + 0.5), np.ceil(v - 0.5)) + self.input_zero
        return np.clip(r, -128, 127).astype(np.int8)


def _act_range(relu: bool, zero: int) -> tuple[int, int]:
    """TFLite's CalculateActivationRangeQuantized for int8: ReLU clamps at the output's real 0."""
    return (max(-128, zero) if relu else -128), 127


def int8_backbone(backbone, tflite_bytes: bytes) -> QModel:
    """Read the full-integer ``.tflite`` of ``backbone`` into the board's int8 layer list."""
    keras_ops = [op for op in export_layers(backbone) if op.type != RELU]
    if any(op.type == RELU for op in export_layers(backbone)):
        raise ExportError("a ReLU that follows no layer has no int8 kernel on the board: fuse it into the layer")
    interp = _litert_interpreter(tflite_bytes)
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    inp = interp.get_input_details()[0]
    if inp["dtype"] != np.int8:
        raise ExportError("the .tflite is not full-integer: convert with to_tflite(model, X, int8=True)")

    def quant(i):
        q = tensors[i]["quantization_parameters"]
        return np.asarray(q["scales"], np.float64), np.asarray(q["zero_points"], np.int64)

    layers: list[QLayer] = []
    k = 0
    for op in interp._get_ops_details():
        name = op["op_name"]
        if name in _SHAPE_OPS:
            continue
        if name not in _COMPUTE_OPS:
            raise ExportError(f"op {name} has no int8 kernel on the board")
        if k >= len(keras_ops) or keras_ops[k].type != _COMPUTE_OPS[name]:
            raise ExportError(f"op {op['index']} ({name}) does not match the Keras layer list at layer {k}")
        kop = keras_ops[k]
        k += 1
        s_in, z_in = quant(op["inputs"][0])
        s_out, z_out = quant(op["outputs"][0])
        lo, hi = _act_range(kop.relu, int(z_out[0]))
        q = QLayer(kop.type, kop.name, kop.kernel, kop.in_channels, kop.out_channels, int(z_in[0]), int(z_out[0]),
                   float(s_out[0]), lo, hi, tensor=int(op["outputs"][0]))
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w = np.asarray(interp.get_tensor(op["inputs"][1]))
            s_w, z_w = quant(op["inputs"][1])
            if np.any(z_w != 0):
                raise ExportError(f"op {op['index']}: int8 weights must be symmetric (zero point 0)")
            if name == "CONV_2D":  # (out, 1, k, in)
                q.weights = w.reshape(w.shape[0], w.shape[2], w.shape[3]).astype(np.int8)
            elif name == "DEPTHWISE_CONV_2D":  # (1, 1, k, C)
                q.weights = w.reshape(w.shape[2], w.shape[3]).astype(np.int8)
            else:  # (out, in)
                q.weights = w.astype(np.int8)
            q.bias = np.asarray(interp.get_tensor(op["inputs"][2]), np.int64)
            n = q.out_channels
            s_w = np.broadcast_to(s_w, (n,))
            mults = [quantize_multiplier(float(s_in[0]) * float(s_w[c]) / float(s_out[0])) for c in range(n)]
        elif name == "MEAN":
            mults = [quantize_multiplier(float(s_in[0]) / float(s_out[0]))]
        else:  # MAX_POOL_2D keeps the scale
            if s_in[0] != s_out[0] or z_in[0] != z_out[0]:
                raise ExportError(f"op {op['index']}: MAX_POOL_2D must keep its input's quantization")
            mults = []
        q.multiplier = np.array([m for m, _ in mults], np.int64)
        q.shift = np.array([s for _, s in mults], np.int64)
        layers.append(q)
    if k != len(keras_ops):
        raise ExportError(f"the .tflite has {k} compute ops, the Keras backbone {len(keras_ops)} layers")
    s_x, z_x = quant(inp["index"])
    out = interp.get_output_details()[0]
    s_f, z_f = quant(out["index"])
    T, C = (int(v) for v in backbone.input_shape[1:])
    return QModel(T, C, float(s_x[0]), int(z_x[0]), layers, int(layers[-1].out_channels), float(s_f[0]), int(z_f[0]))


CALIBRATION_WINDOWS = 200  # to_tflite's max_samples: the representative windows of the int8 conversion


def calibration_windows(meta) -> np.ndarray:
    """The int8 conversion's representative inputs: windows of the backbone's own training split
    (the source task, ``odlkit.pretrain.source_split``), evenly strided, normalized as the board
    normalizes. Not the Lab's user data: the firmware's quantization must not depend on it."""
    from odlkit.pretrain import source_split

    train, _ = source_split()
    X = np.asarray(train.X, np.float32)
    X = X[:: max(1, len(X) // CALIBRATION_WINDOWS)][:CALIBRATION_WINDOWS]
    mean, std = np.asarray(meta["input_mean"], np.float32), np.asarray(meta["input_std"], np.float32)
    return ((X - mean) / std).astype(np.float32)


def sketch_int8_model():
    """The int8 backbone the firmware ships (``odl_int8_model_data.h``): ``load_backbone()``
    converted with :func:`calibration_windows`. Returns ``(QModel, tflite bytes)``."""
    from odlkit.export.tflite import to_tflite
    from odlkit.pretrain import load_backbone

    backbone, meta = load_backbone()
    tfl = to_tflite(backbone, calibration_windows(meta), int8=True, max_samples=CALIBRATION_WINDOWS)
    return int8_backbone(backbone, tfl), tfl


def quantize_head(W: np.ndarray, b: np.ndarray, feature_scale: float) -> tuple[np.ndarray, np.ndarray, float]:
    """A float head (W (features, classes), b) as int8 weights and int32 bias, per-tensor symmetric.

    Returns ``(Wq (classes, features) int8, bq int32, s_W)``: ``W ~= s_W * Wq``, ``b ~= s_W * s_x * bq``
    (the scale ch02's int8 training uses: ``odlkit.tiny.quant_scale``; a zero head, which has no
    range, gets Glorot-uniform's bound ``sqrt(6 / (features + classes)) / 127``)."""
    W = np.asarray(W, np.float32)
    m = np.float32(np.max(np.abs(W)))
    if not m > 0:  # a zero head has no range: Glorot-uniform's bound, as odl_int8.cpp's qhead_quantize
        m = np.sqrt(np.float32(6.0) / np.float32(W.shape[0] + W.shape[1]))
    s = np.float32(m) / np.float32(127.0)
    wq = np.clip(np.round(W.T / s), -127, 127).astype(np.int8)
    bq = np.round(np.asarray(b, np.float64) / (float(s) * feature_scale)).astype(np.int64)
    return wq, bq, float(s)


def _f(v: float) -> str:
    s = f"{float(np.float32(v)):.9g}"
    return s + ("f" if any(c in s for c in ".e") else ".0f")


def _ints(name: str, ctype: str, values, per_line: int = 16) -> str:
    flat = [str(int(v)) for v in np.asarray(values).reshape(-1)]
    if ctype == "int32_t":
        flat = [f"{v}" if int(v) != -(1 << 31) else "(-2147483647 - 1)" for v in flat]
    lines = [", ".join(flat[i : i + per_line]) for i in range(0, len(flat), per_line)]
    return f"static const {ctype} {name}[{len(flat)}] = {{\n  " + ",\n  ".join(lines) + "\n};\n"


def int8_header_text(qm: QModel, prefix: str = "kOdlQ") -> str:
    """C++ source defining the int8 backbone as ``odl::QModelSpec {prefix}Model``."""
    out = ["// Generated by odlkit.export.int8: the full-integer backbone for odl_int8.h.",
           "#pragma once", '#include "odl_int8.h"', ""]  # fmt: skip
    specs = []
    for i, q in enumerate(qm.layers):
        w = b = m = s = "nullptr"
        if q.weights is not None:
            out.append(_ints(f"{prefix}W{i}", "int8_t", q.weights))
            out.append(_ints(f"{prefix}B{i}", "int32_t", q.bias))
            w, b = f"{prefix}W{i}", f"{prefix}B{i}"
        if len(q.multiplier):
            out.append(_ints(f"{prefix}M{i}", "int32_t", q.multiplier))
            out.append(_ints(f"{prefix}S{i}", "int8_t", q.shift))
            m, s = f"{prefix}M{i}", f"{prefix}S{i}"
        specs.append(f"  {{{_TYPE_NAMES[q.type]}, {q.kernel}, {q.in_channels}, {q.out_channels}, {q.in_zero}, "
                     f"{q.out_zero}, {q.act_min}, {q.act_max}, {w}, {b}, {m}, {s}}},  // {q.name}")
    out.append(f"static const odl::QLayerSpec {prefix}Layers[{len(specs)}] = {{\n" + "\n".join(specs) + "\n};\n")
    out.append(f"static const odl::QModelSpec {prefix}Model = {{{qm.input_len}, {qm.input_channels}, {qm.feature_dim}, "
               f"{_f(qm.input_scale)}, {qm.input_zero}, {_f(qm.feature_scale)}, {qm.feature_zero}, "
               f"{qm.arena_bytes()}u, {prefix}Layers, {len(specs)}}};\n")
    return "\n".join(out)


def write_int8_header(qm: QModel, path, prefix: str = "kOdlQ") -> Path:
    path = Path(path)
    path.write_text(int8_header_text(qm, prefix))
    return path
