"""The int8 backbone forward on a Cortex-M4F: the optimized kernels (odl_int8.cpp, CMSIS-NN
style: SMLAD / SXTB16 / SXTAB16 through ACLE) against the reference kernels (TensorFlow Lite
Micro's plain loops, kept beside them) and against the float backbone forward, side by side.

Method: tests/engine/int8_kernels_cli.cpp (the int8 backbone that odlkit.export.int8 reads from
the .tflite of ``to_tflite(backbone, X, int8=True)``, the float backbone header, 12 real
basic_motions windows) built with the Nano 33 BLE's own flags (``cxxflags.BOARD``) and run under
``qemu-system-arm -M mps2-an386 -icount shift=0``; the CMSDK timer counts instructions (40 per
tick, calibrated). Per window: the float forward (``run_backbone``: normalization + the float
kernels), the int8 forward through the reference kernels layer by layer, and ``qrun_backbone``
(the optimized kernels); per layer both int8 versions. The same run checks the two int8 versions
bit for bit (random layers, requantization edge cases, every layer on the real windows) and the
host build (portable C lanes) prints the same output hash. The float forward is also measured
with the float kernels of device_plans.BASELINE_COMMIT (before this issue's register blocking).

    python benchmarks/device_int8_forward.py   # ~1.5 min; writes benchmarks/results/device_int8_forward.json

Goal (issue 17): the int8 forward cheaper than the float forward in instructions. Not measured:
cycles on the real board (SMLAD is one cycle on the M4, VMLA.F32 three; flash wait states).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "engine"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))
from _common import write_json  # noqa: E402
from device_plans import BASELINE_COMMIT, with_baseline_kernels  # noqa: E402
from enginebuild import HERE, arm_build, gxx, missing_arm_tools_message, qemu_finished, run  # noqa: E402
from test_int8_kernels import SOURCES, parse, write_headers  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "device_int8_forward.json"
CALIBRATION_INSTRUCTIONS = 2_000_000
LAYER_NAMES = {1: "conv1d", 2: "depthwise_conv1d", 3: "dense", 5: "maxpool1d", 6: "mean (global_avg_pool1d)"}


def main() -> int:
    if message := missing_arm_tools_message():
        print(message)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        d = write_headers(Path(tmp))
        host = run([gxx(SOURCES, d / "host", includes=[d, HERE])]).stdout
        res = qemu_finished(arm_build(SOURCES, d / "k.elf", includes=[d], build="board"), timeout=900)
        base = qemu_finished(arm_build(with_baseline_kernels(SOURCES, d / "baseline"), d / "kb.elf", includes=[d],
                                       build="board"), timeout=900, what="qemu run of the baseline kernels")
    lines = res.stdout.splitlines()
    ipt = CALIBRATION_INSTRUCTIONS / int(next(x for x in lines if x.startswith("calibration_ticks")).split()[1])
    if abs(ipt - 40) > 0.5:
        raise RuntimeError(f"icount calibration off: {ipt} instructions per tick (the CLI counts 40)")
    q, h = parse(res.stdout), parse(host)
    p = next(x for x in lines if x.startswith("per_window")).split()
    per_window = {p[i]: int(p[i + 1]) for i in range(1, len(p), 2)}
    b = next(x for x in base.stdout.splitlines() if x.startswith("per_window")).split()
    float_before = int(b[b.index("float_forward") + 1])
    layers = []
    for line in lines:
        if line.startswith("layer "):
            f = line.split()
            layers.append({"layer": int(f[1]), "type": LAYER_NAMES.get(int(f[3]), f[3]), "reference": int(f[5]),
                           "optimized": int(f[7])})
    out = {"method": __doc__.split("Method: ")[1].split("\n\n")[0].replace("\n", " "),
           "instructions_per_tick": round(ipt, 3), "windows": q["real windows"][0],
           "float_forward_instructions_per_window": per_window["float_forward"],
           "int8_reference_instructions_per_window": per_window["int8_reference"],
           "int8_optimized_instructions_per_window": per_window["int8_optimized"],
           "optimized_speedup_vs_reference": round(per_window["int8_reference"] / per_window["int8_optimized"], 2),
           "int8_optimized_over_float": round(per_window["int8_optimized"] / per_window["float_forward"], 3),
           "float_forward_instructions_per_window_baseline_kernels": float_before,
           "baseline_commit": BASELINE_COMMIT,
           "goal": "int8 optimized forward < float forward (instructions)",
           "goal_met": per_window["int8_optimized"] < per_window["float_forward"],
           "bit_exact": {"random_layer_mismatches": q["random layers"][2],
                         "requantize_mismatches": q["requantize cases"][2],
                         "real_window_mismatches": q["real windows"][2], "host_hash_equals_qemu": q["hash"] == h["hash"]},
           "per_layer_per_window": layers}
    print(f"Cortex-M4F (qemu -icount, board flags), {out['windows']} real windows, instructions per window:")
    print(f"  float forward   {out['float_forward_instructions_per_window']:>9}")
    print(f"  float forward   {float_before:>9}  (the float kernels of {BASELINE_COMMIT[:7]})")
    print(f"  int8 reference  {out['int8_reference_instructions_per_window']:>9}")
    print(f"  int8 optimized  {out['int8_optimized_instructions_per_window']:>9}  "
          f"({out['optimized_speedup_vs_reference']}x faster than the reference, "
          f"{out['int8_optimized_over_float']}x the float forward)")
    for r in layers:
        print(f"  layer {r['layer']} {r['type']:>24} {r['reference']:>8} -> {r['optimized']:>8}")
    print(f"goal ({out['goal']}): {'met' if out['goal_met'] else 'NOT met'}; bit-exact: {out['bit_exact']}")
    write_json(OUT, out, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
