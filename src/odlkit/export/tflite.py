"""Keras -> TensorFlow Lite (float32 and full-integer int8), and running ``.tflite`` models.

Interpreters, in order of preference (see ``../shared/platform-notes.md``):

* LiteRT (``ai_edge_litert``), the maintained TFLite runtime; ``tflite_runtime`` only where
  it imports and runs (it crashes under NumPy 2);
* the TensorFlow Lite Micro interpreter for Python (``tflite_micro``), the same kernels the
  board runs: the reference for bit-exact int8 parity.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterable

import numpy as np

from odlkit._quiet import quiet_call


class ExportError(RuntimeError):
    """A model could not be converted or run; the message says why and what to do."""


@quiet_call(native=True)  # the converter's C++ page (temp paths, "fully_quantize: 0, ...") and its UserWarning
def to_tflite(model, representative: np.ndarray | None = None, int8: bool = False, max_samples: int = 200) -> bytes:
    """Convert a Keras model to ``.tflite`` bytes.

    ``int8=True`` makes a full-integer model (int8 weights, activations, input and output) and
    needs ``representative`` inputs (a few hundred real training windows) to calibrate the
    activation ranges.
    """
    import tensorflow as tf

    if int8 and representative is None:
        raise ExportError("int8 conversion needs representative inputs, e.g. to_tflite(model, X_train[:200], int8=True)")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        rep = np.asarray(representative, dtype=np.float32)[:max_samples]

        def gen() -> Iterable[list[np.ndarray]]:
            for x in rep:
                yield [x[None]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = gen
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    try:
        # The converter prints a page about the SavedModel it writes on the way: keep it quiet.
        logger, level = tf.get_logger(), tf.get_logger().level
        logger.setLevel("ERROR")
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                return bytes(converter.convert())
        finally:
            logger.setLevel(level)
    except Exception as e:  # the converter raises many types; say which model failed
        raise ExportError(f"TFLite conversion of {model.name!r} failed: {e}") from e


def _litert_interpreter(tflite_bytes: bytes, xnnpack: bool = False):
    """A LiteRT interpreter; without XNNPACK by default, because its int8 kernels round
    differently from the reference kernels that TensorFlow Lite Micro (and the board) run."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:  # pragma: no cover - only where LiteRT is missing
        try:
            from tflite_runtime.interpreter import Interpreter, OpResolverType
        except ImportError as e:
            raise ExportError("no TFLite interpreter: install ai-edge-litert (`make lab` does)") from e
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interp = Interpreter(model_content=tflite_bytes, experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    return interp


def quantize_input(X: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Float inputs -> int8 with the model's input quantization (round half away, clamp)."""
    q = np.round(np.asarray(X, dtype=np.float32) / scale) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def _io_details(tflite_bytes: bytes):
    interp = _litert_interpreter(tflite_bytes)
    return interp.get_input_details()[0], interp.get_output_details()[0]


def tflite_predict(tflite_bytes: bytes, X: np.ndarray, raw: bool = False, xnnpack: bool = False) -> np.ndarray:
    """Run a ``.tflite`` model with LiteRT on every sample of ``X`` (batch of 1 each).

    Int8 models get their inputs quantized and outputs dequantized, unless ``raw=True``
    (then int8 in and int8 out, for bit-exact comparisons). ``xnnpack=True`` uses LiteRT's
    fast CPU delegate (what a phone would run; int8 results may differ by a few steps).
    """
    interp = _litert_interpreter(tflite_bytes, xnnpack)
    return _run(interp.get_input_details()[0], interp.get_output_details()[0], interp.set_tensor,
                interp.invoke, interp.get_tensor, X, raw)


def tflm_predict(tflite_bytes: bytes, X: np.ndarray, raw: bool = False, arena_size: int = 64 * 1024) -> np.ndarray:
    """Run a ``.tflite`` model with the TensorFlow Lite Micro interpreter (the board's kernels)."""
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as e:
        raise ExportError("tflite-micro is not installed: `make lab` installs it") from e
    interp = runtime.Interpreter.from_bytes(tflite_bytes, arena_size=arena_size)
    inp, out = _io_details(tflite_bytes)

    def set_tensor(_, x):
        interp.set_input(x, 0)

    def get_tensor(_):
        return interp.get_output(0)

    return _run(inp, out, set_tensor, interp.invoke, get_tensor, X, raw)


def _run(inp, out, set_tensor: Callable, invoke: Callable, get_tensor: Callable, X, raw: bool) -> np.ndarray:
    X = np.asarray(X)
    if not (raw and X.dtype == np.int8):  # raw int8 inputs go in as they are (not quantized again)
        X = X.astype(np.float32)
    expected = tuple(inp["shape"][1:])
    if X.shape[1:] != expected:
        raise ExportError(f"inputs have shape {X.shape[1:]} per sample, the model expects {expected}")
    int8_in = inp["dtype"] == np.int8
    results = []
    for x in X:
        xi = x[None]
        if int8_in and xi.dtype != np.int8:
            xi = quantize_input(xi, *inp["quantization"])
        set_tensor(inp["index"], xi.astype(inp["dtype"]))
        invoke()
        results.append(np.array(get_tensor(out["index"]))[0])
    y = np.stack(results)
    if out["dtype"] == np.int8 and not raw:
        scale, zero = out["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return y


def tflite_to_c_array(tflite_bytes: bytes, name: str = "g_model", align: int = 16) -> str:
    """The ``.tflite`` bytes as a C/C++ source fragment for TensorFlow Lite Micro users."""
    if not name.isidentifier():
        raise ExportError(f"{name!r} is not a valid C identifier")
    lines = [
        "// Generated by odlkit.export.tflite_to_c_array: a .tflite flatbuffer for TensorFlow Lite Micro.",
        "#include <stdint.h>",
        f"alignas({align}) const unsigned char {name}[] = {{",
    ]
    for i in range(0, len(tflite_bytes), 12):
        lines.append("  " + ", ".join(f"0x{b:02x}" for b in tflite_bytes[i : i + 12]) + ",")
    lines += ["};", f"const unsigned int {name}_len = {len(tflite_bytes)};", ""]
    return "\n".join(lines)
