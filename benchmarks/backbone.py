"""The backbone in numbers: parameters, MACs, float/int8 size and accuracy, inference time.

    .venv/bin/python benchmarks/backbone.py        (full mode; ODL_QUICK=1 for a smoke run)

Accuracy: the committed backbone (pretrained on `watch`) with a head trained on
`basic_motions`, tested on held-out recordings. Time: per-window inference with LiteRT in
one run, float vs int8, with the built-in kernels (no delegate; bit-exact with TFLite Micro) and with XNNPACK
(the laptop's fast path); report the ratio, since this machine is shared and noisy.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_results  # noqa: E402

from odlkit import data, export, models, pretrain  # noqa: E402
from odlkit.config import SEED, quick, seed_everything  # noqa: E402


def time_per_window(tflite_bytes: bytes, X: np.ndarray, xnnpack: bool, repeats: int) -> float:
    from odlkit.export.tflite import _litert_interpreter, quantize_input

    interp = _litert_interpreter(tflite_bytes, xnnpack=xnnpack)
    inp = interp.get_input_details()[0]
    xs = [quantize_input(x[None], *inp["quantization"]) if inp["dtype"] == np.int8 else x[None] for x in X]
    best = np.inf
    for _ in range(repeats):  # best of several passes: the least disturbed by other load
        t0 = time.perf_counter()
        for x in xs:
            interp.set_tensor(inp["index"], x)
            interp.invoke()
        best = min(best, (time.perf_counter() - t0) / len(xs))
    return best


def main() -> None:
    seed_everything(SEED)
    backbone, meta = pretrain.load_backbone()
    target = data.imu_windows("basic_motions")
    train, test = data.train_test_split(target, by_group=True, seed=SEED)
    scaler = data.Standardizer().fit(train.X)
    Xtr, Xte = scaler.transform(train.X), scaler.transform(test.X)
    clf = models.compile_classifier(models.build_classifier(backbone, models.build_head(64, 4, seed=SEED)), 1e-2)
    clf.fit(Xtr, train.y, epochs=quick(30, 5), batch_size=32, verbose=0)
    keras_acc = float(np.mean(clf.predict(Xte, verbose=0).argmax(1) == test.y))
    f32 = export.to_tflite(clf)
    i8 = export.to_tflite(clf, Xtr, int8=True)
    repeats = quick(5, 1)
    rows = []
    for name, model in [("float32", f32), ("int8", i8)]:
        acc = float(np.mean(export.tflite_predict(model, Xte).argmax(1) == test.y))
        rows.append({
            "model": name,
            "tflite_KB": round(len(model) / 1024, 1),
            "accuracy": round(acc, 4),
            "us_per_window_builtin": round(time_per_window(model, Xte, False, repeats) * 1e6, 1),
            "us_per_window_xnnpack": round(time_per_window(model, Xte, True, repeats) * 1e6, 1),
        })
    summary = {
        "parameters": int(backbone.count_params()),
        "macs_per_window": models.count_macs(backbone),
        "source_test_accuracy": meta["test_accuracy"],
        "keras_target_accuracy": round(keras_acc, 4),
        "int8_minus_float_accuracy": round(rows[1]["accuracy"] - rows[0]["accuracy"], 4),
        "int8_over_float_size": round(rows[1]["tflite_KB"] / rows[0]["tflite_KB"], 3),
        "int8_over_float_time_builtin": round(rows[1]["us_per_window_builtin"] / rows[0]["us_per_window_builtin"], 3),
        "int8_over_float_time_xnnpack": round(rows[1]["us_per_window_xnnpack"] / rows[0]["us_per_window_xnnpack"], 3),
    }
    print_table([summary], "backbone (pretrained on watch, head on basic_motions)")
    print_table(rows, "float32 vs int8 (LiteRT, batch 1, best of repeats)")
    write_results("backbone", {"summary": summary, "rows": rows, "test_windows": len(test)})


if __name__ == "__main__":
    main()
