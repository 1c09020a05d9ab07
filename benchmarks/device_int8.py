"""ODLEngine's int8 path on a Cortex-M4F: instructions per step, RAM, and held-out accuracy of
float / int8 + QAS / naive int8 head training on Lab 1's user data.

Method.
* Accuracy (host build of the same C++, tests/engine/int8_cli.cpp): Lab 1's user data is the
  virtual board's split of basic_motions (``odlkit.data.train_test_split(test_size=0.25,
  seed=0)``, by subject, as ``odlkit.board.virtual.dataset_replay``), in full mode: every training
  window, every held-out window. The head starts at zero, as Lab 1's sketch ships it (the int8
  head's scale: Glorot's bound / 127), and trains with Lab 1's settings (lr 2e-4, momentum 0.9, batch 8,
  30 epochs, the engine's xorshift32 order), the same hyperparameters for every method. Each
  method trains once per shuffle seed of ``SEEDS`` (the same seeds for all): mean, sample std,
  min, max and per-seed values (180 held-out windows: one window is 0.56 points). Float:
  ``odlkit.head.Head`` (the engine's float head twin) on the float backbone's features. Int8: the
  firmware's int8 backbone (``odlkit.export.int8.sketch_int8_model``: calibrated on the source
  task's training windows, not on the Lab's data; its features bit-identical to TFLite's
  reference kernels) and ``qhead_train`` with QAS or naive; held-out accuracy from the trained
  int8 weights (integer logits, argmax). QAS as in Lin et al. 2022 (sec. 2.1): the gradient of
  the int8 kernel W/s_W is s_W dL/dW, scaled by 1/s_W^2; of the int32 bias b/(s_W s_x) it is
  s_W s_x dL/db, scaled by 1/(s_W s_x)^2; so one QAS step moves the real weights as far as a
  float step with the same lr (naive applies s_W dL/dW as it is: s_W^2 ~ 5e-6 as far).
  Decomposition rows: a float head trained on the dequantized int8 features (what quantizing the
  backbone alone does) and QAS on a backbone calibrated on the Lab's own training windows
  (``Xtr[::2]``, what this benchmark used before the firmware shipped its int8 header).
* Instructions (tests/engine/qemu/bench_int8.cpp built with the Nano 33 BLE's flags,
  ``cxxflags.BOARD``, under ``qemu-system-arm -M mps2-an386 -icount shift=0``, calibrated): the
  int8 backbone forward per window, and one epoch (48 samples, 6 steps of batch 8) of int8 head
  training (QAS / naive) and of the float head, as a 2-epoch minus a 1-epoch run. The same
  program built for the host must print the same feature and weight hashes (board flags vs host).

    python benchmarks/device_int8.py     # ~8 min loaded; writes benchmarks/results/device_int8.json

The protocol path (``TRAIN q=int8``) runs the same ``qhead_train`` on the same features
(tests/test_int8_training.py checks the virtual board against int8_cli bit for bit). Not
measured: cycles on a real board (flash wait states), the int8 backbone's own training (only the
head is updated).
"""

from __future__ import annotations

import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "engine"))
from enginebuild import HERE, LIB_SRC, arm_build, c_array, gxx, missing_arm_tools, qemu_finished  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import write_json  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "device_int8.json"
CALIBRATION_INSTRUCTIONS = 2_000_000
CLOCK_HZ = 64_000_000
EPOCHS, BATCH, LR, MU = 30, 8, 2e-4, 0.9
SEEDS = (1, 2, 3, 4, 5)  # the engine's shuffle seeds: every method trains with each, on the same data
N_BENCH = 48
INT8_SRC = [LIB_SRC / "odl_int8.cpp", LIB_SRC / "odl_head.cpp", LIB_SRC / "odl_kernels.cpp"]


def _data():
    from odlkit import data
    from odlkit.pretrain import load_backbone

    backbone, meta = load_backbone()
    ds = data.imu_windows("basic_motions")
    by_group = ds.groups is not None and len(np.unique(ds.groups)) > 1
    train, test = data.train_test_split(ds, test_size=0.25, seed=0, by_group=by_group)
    mean, std = np.asarray(meta["input_mean"], np.float32), np.asarray(meta["input_std"], np.float32)
    norm = lambda X: ((np.asarray(X, np.float32) - mean) / std).astype(np.float32)  # noqa: E731
    return backbone, meta, norm(train.X), np.asarray(train.y), norm(test.X), np.asarray(test.y)


def _qtrain(exe, F, y, W, b, qm, qas, seed):
    n, fd = F.shape
    stdin = (struct.pack("<IHHfi", n, W.shape[0], fd, qm.feature_scale, qm.feature_zero)
             + np.ascontiguousarray(F, np.int8).tobytes() + np.asarray(y, "<u2").tobytes()
             + np.asarray(W, "<f4").tobytes() + np.asarray(b, "<f4").tobytes())
    p = subprocess.run([str(exe), "train", str(EPOCHS), str(BATCH), repr(LR), repr(MU), str(int(qas)), str(seed)],
                       input=stdin, capture_output=True, timeout=1800, check=True)
    nc, at = W.shape[0], 8 * EPOCHS + 4
    Wq = np.frombuffer(p.stdout[at : at + nc * fd], np.int8).reshape(nc, fd).astype(np.int64)
    bq = np.frombuffer(p.stdout[at + nc * fd : at + nc * fd + 4 * nc], "<i4").astype(np.int64)
    s_w = float(np.frombuffer(p.stdout[at - 4 : at], "<f4")[0])
    return Wq, bq, s_w


def _spread(values) -> dict:
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "per_seed": [float(x) for x in v]}


def accuracy(build: Path) -> dict:
    from odlkit.export.int8 import int8_backbone, quantize_head, sketch_int8_model, write_int8_header
    from odlkit.export.tflite import tflite_predict, to_tflite
    from odlkit.head import Head
    from odlkit.transfer import extract_features

    backbone, meta, Xtr, ytr, Xte, yte = _data()
    qm, tfl = sketch_int8_model()  # the firmware's int8 backbone (calibrated on the source task)
    assert int8_backbone(backbone, tfl).feature_scale == qm.feature_scale
    write_int8_header(qm, build / "odl_int8_model_data.h")
    exe = gxx([HERE / "int8_cli.cpp", *INT8_SRC], build / "int8_cli", includes=[build])
    n_classes = int(max(ytr.max(), yte.max())) + 1
    W0 = np.zeros((qm.feature_dim, n_classes), np.float32)  # Lab 1's initial head: zero (learned on the board)
    b0 = np.zeros(n_classes, np.float32)
    res = {"n_train": len(Xtr), "n_heldout": len(Xte), "n_classes": n_classes, "epochs": EPOCHS,
           "lr": LR, "batch": BATCH, "momentum": MU, "seeds": list(SEEDS)}
    Ftr, Fte = extract_features(backbone, Xtr), extract_features(backbone, Xte)  # Xtr, Xte: normalized
    res["float_initial"] = float(np.mean(np.argmax(Fte @ W0 + b0, 1) == yte))
    Qtr = tflite_predict(tfl, qm.quantize_input(Xtr), raw=True)  # int8 in, the backbone's int8 features out
    Qte = tflite_predict(tfl, qm.quantize_input(Xte), raw=True)
    # the int8 features in real units, for a float head: what quantizing the backbone alone costs
    deq = lambda Q: (np.float32(qm.feature_scale) * (Q.astype(np.float32) - qm.feature_zero)).astype(np.float32)  # noqa: E731
    runs: dict[str, list[float]] = {"float": [], "float_on_int8_features": [], "int8_qas": [], "int8_naive": []}
    clamped, float_range = [], []
    for seed in SEEDS:
        head = Head(W0.copy(), b0.copy(), [str(c) for c in range(n_classes)])
        head.fit(Ftr, ytr, epochs=EPOCHS, lr=LR, batch_size=BATCH, momentum=MU, order="shuffle", seed=seed)
        runs["float"].append(float(np.mean(head.predict(Fte) == yte)))
        float_range.append(float(np.abs(head.W).max()))
        head = Head(W0.copy(), b0.copy(), [str(c) for c in range(n_classes)])
        head.fit(deq(Qtr), ytr, epochs=EPOCHS, lr=LR, batch_size=BATCH, momentum=MU, order="shuffle", seed=seed)
        runs["float_on_int8_features"].append(float(np.mean(head.predict(deq(Qte)) == yte)))
        for name, qas in (("int8_qas", True), ("int8_naive", False)):
            Wq, bq, s_w = _qtrain(exe, Qtr, ytr, W0.T.copy(), b0, qm, qas, seed)
            logits = (Qte.astype(np.int64) - qm.feature_zero) @ Wq.T + bq
            runs[name].append(float(np.mean(np.argmax(logits, 1) == yte)))
            if qas:
                clamped.append(float(np.mean(np.abs(Wq) == 127)))
    for name, v in runs.items():
        res[name] = _spread(v)
    res["qas_minus_float_points"] = _spread(100 * (np.array(runs["int8_qas"]) - np.array(runs["float"])))
    res["int8_weight_scale"] = s_w  # fixed from the zero head: Glorot's bound / 127
    res["int8_range"] = 127 * s_w
    res["float_head_max_abs_w"] = _spread(float_range)
    res["int8_qas_fraction_clamped_at_127"] = _spread(clamped)
    # the same QAS training on a backbone calibrated on the Lab's own training windows instead (what
    # this benchmark did before the firmware shipped its int8 header): the calibration set's effect
    tfl_user = to_tflite(backbone, Xtr[::2], int8=True)
    qm_user = int8_backbone(backbone, tfl_user)
    Utr = tflite_predict(tfl_user, qm_user.quantize_input(Xtr), raw=True)
    Ute = tflite_predict(tfl_user, qm_user.quantize_input(Xte), raw=True)
    user = []
    for seed in SEEDS:
        Wq, bq, _ = _qtrain(exe, Utr, ytr, W0.T.copy(), b0, qm_user, True, seed)
        user.append(float(np.mean(np.argmax((Ute.astype(np.int64) - qm_user.feature_zero) @ Wq.T + bq, 1) == yte)))
    res["int8_qas_calibrated_on_user_training_data"] = _spread(user)
    wq0, bq0, _ = quantize_head(W0, b0, qm.feature_scale)
    res["int8_initial"] = float(np.mean(np.argmax((Qte.astype(np.int64) - qm.feature_zero) @ wq0.astype(np.int64).T
                                                  + bq0, 1) == yte))
    return res, tfl, qm, Qtr, ytr, W0, b0


def instructions(build: Path, qm, Xq_bench, y_bench, W0, b0) -> dict:
    nc = W0.shape[1]
    text = ["#pragma once", "#include <stdint.h>", f"static const uint32_t kScenarioCount = {len(Xq_bench)};",
            f"static const uint16_t kScenarioClasses = {nc};",
            f"static const int8_t kScenarioWindows[{len(Xq_bench)}][{Xq_bench[0].size}] = "
            f"{c_array('w', Xq_bench.reshape(len(Xq_bench), -1), 'int')};",
            f"static const uint16_t kScenarioLabels[{len(y_bench)}] = {c_array('y', y_bench, 'int')};",
            f"static const float kScenarioHeadW[{W0.size}] = {c_array('W', W0.T)};",
            f"static const float kScenarioHeadB[{nc}] = {c_array('b', b0)};", ""]
    (build / "int8_scenario.h").write_text("\n".join(text))
    src = [HERE / "qemu" / "bench_int8.cpp", *INT8_SRC]
    host = gxx(src, build / "bench_int8_host", includes=[build, HERE])
    host_out = subprocess.run([str(host)], capture_output=True, text=True, check=True).stdout
    elf = arm_build(src, build / "bench_int8.elf", includes=[build])
    res = qemu_finished(elf, timeout=1800)
    lines = res.stdout.splitlines()
    ipt = CALIBRATION_INSTRUCTIONS / int(next(x for x in lines if x.startswith("calibration_ticks")).split()[1])

    def hashes(out):
        return [tok for line in out.splitlines() for i, tok in enumerate(line.split())
                if i > 0 and line.split()[i - 1] in ("features_hash", "weights_hash")]

    steps = -(-len(Xq_bench) // BATCH)
    out = {"instructions_per_tick": ipt, "steps_per_epoch": steps, "host_equals_qemu": hashes(host_out) == hashes(res.stdout)}
    for line in lines:
        p = line.split()
        if p[0] == "forward_ticks_per_window":
            out["int8_forward_instructions_per_window"] = round(int(p[1]) * ipt)
        elif p[0] == "int8":
            key = "int8_qas" if p[2] == "1" else "int8_naive"
            out[f"{key}_instructions_per_step"] = round((int(p[6]) - int(p[4])) * ipt / steps)
        elif p[0] == "float":
            out["float_instructions_per_step"] = round((int(p[4]) - int(p[2])) * ipt / steps)
        elif p[0] == "qhead_bytes":
            out["int8_head_training_bytes"], out["float_head_training_bytes"] = int(p[1]), int(p[3])
    out["int8_arena_bytes"] = qm.arena_bytes()
    for k in list(out):
        if k.endswith("_per_step") or k.endswith("_per_window"):
            out[k.replace("instructions", "us_at_64MHz_cpi1")] = round(out[k] / CLOCK_HZ * 1e6, 1)
    return out


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        build = Path(tmp)
        acc, tfl, qm, Qtr, ytr, W0, b0 = accuracy(build)
        result = {"accuracy_heldout": acc}
        if not missing_arm_tools():
            _, _, Xtr, ytr_all, _, _ = _data()
            idx = np.random.default_rng(0).choice(len(Xtr), N_BENCH, replace=False)
            result["cortex_m4f"] = instructions(build, qm, qm.quantize_input(Xtr[idx]), ytr_all[idx], W0, b0)
    for k, v in result["accuracy_heldout"].items():
        if isinstance(v, dict):
            v = f"mean {v['mean']:.4f}  std {v['std']:.4f}  min {v['min']:.4f}  max {v['max']:.4f}  {v['per_seed']}"
        print(f"{k:34s} {v}")
    for k, v in result.get("cortex_m4f", {}).items():
        print(f"{k:44s} {v}")
    result["method"] = __doc__.split("Method.")[1].split("    python")[0].strip()
    write_json(OUT, result, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
