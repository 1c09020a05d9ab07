"""Cost of the on-device head on a Cortex-M4F: instructions per training step and per
inference, counted under qemu, next to the MAC count, and the memory training adds.

    .venv/bin/python benchmarks/device_head.py          # prints a table, writes JSON

Method: the library's head code (arduino_sketches/ODLEngine/src/odl_head.cpp) is compiled with
arm-none-eabi-g++ (-O2, Cortex-M4F hard float) into tests/engine/qemu/bench_head.cpp and run
on qemu-system-arm -M mps2-an386 with ``-icount shift=0``: every guest instruction advances
virtual time by 1 ns, and the board's 25 MHz CMSDK timer (driven by virtual time) is read
before and after. A calibration loop of exactly 2,000,000 instructions converts ticks to
instructions (resolution: one tick = 40 instructions; each measurement spans >= 10^4 ticks).
These are instruction counts, not Cortex-M4 cycles (a float MAC is ~1-3 cycles on the real
core; loads/stores and branches differ).

MACs per training step of a batch of N for F features and C classes:
forward N*F*C + weight gradient N*F*C + update F*C (one multiply-add per weight for the
momentum update). Per inference: F*C. The goal is <= 4 instructions per MAC.
Memory: two builds of the same program, with and without the training buffers
(momentum, gradient, a store of N*K feature vectors with labels); the difference of
arm-none-eabi-size bss is the SRAM training adds.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "engine"))
from enginebuild import HERE, arm_build, arm_size, library_sources, missing_arm_tools, qemu_run  # noqa: E402

SIZES = [(64, 4), (64, 8), (128, 8), (256, 16)]
BATCH, STEPS = 8, 8
CALIBRATION_INSTRUCTIONS = 2_000_000
FLASH_BYTES, SRAM_BYTES = 1024 * 1024, 256 * 1024
OUT = ROOT / "benchmarks" / "results" / "device_head.json"


def _values(stdout: str) -> dict:
    vals = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].endswith("_ticks"):
            vals[parts[0]] = int(parts[1])
    return vals


def measure(fd: int, nc: int, build: Path, flags_set: str = "o2-hard") -> dict:
    flags = [f"-DFD={fd}", f"-DNC={nc}", f"-DBATCH={BATCH}", f"-DSTEPS={STEPS}"]
    srcs = [HERE / "qemu" / "bench_head.cpp", *library_sources()]
    elf_train = arm_build(srcs, build / f"head_{fd}x{nc}_{flags_set}_train.elf", flags=[*flags, "-DTRAIN=1"],
                          build=flags_set)
    elf_infer = arm_build(srcs, build / f"head_{fd}x{nc}_{flags_set}_infer.elf", flags=[*flags, "-DTRAIN=0"],
                          build=flags_set)
    res = qemu_run(elf_train)
    if res.returncode != 0 or "done" not in res.stdout:
        raise RuntimeError(f"qemu run failed for {fd}x{nc}:\n{res.stdout}\n{res.stderr}")
    v = _values(res.stdout)
    ipt = CALIBRATION_INSTRUCTIONS / v["calibration_ticks"]
    infer_instr = v["inference_ticks"] * ipt / 20
    step_instr = v["train_ticks"] * ipt / STEPS
    bias_instr = v["train_bias_ticks"] * ipt / STEPS
    macs_step = 2 * BATCH * fd * nc + fd * nc
    s_train, s_infer = arm_size(elf_train), arm_size(elf_infer)
    return {
        "features": fd, "classes": nc, "batch": BATCH,
        "instructions_per_tick": round(ipt, 3),
        "inference_instructions": round(infer_instr), "inference_macs": fd * nc,
        "train_step_instructions": round(step_instr), "train_step_macs": macs_step,
        "train_step_instructions_per_mac": round(step_instr / macs_step, 3),
        "bias_only_step_instructions": round(bias_instr),
        "inference_instructions_per_mac": round(infer_instr / (fd * nc), 3),
        "sram_training_extra_bytes": (s_train["data"] + s_train["bss"]) - (s_infer["data"] + s_infer["bss"]),
        "sram_training_extra_formula_bytes": 4 * (2 * nc * fd + 2 * nc) + BATCH * STEPS * (4 * fd + 6),
        "sram_inference_head_bytes": 4 * (nc * fd + nc) + 4 * nc + 16 * nc,
        "flash_train_elf_bytes": s_train["text"] + s_train["data"],
        "flash_training_code_extra_bytes": s_train["text"] - s_infer["text"],
    }


def measure_backbone(build: Path, flags_set: str = "o2-hard") -> dict:
    """Instructions per backbone forward (the TrainHead example's committed header and real windows)."""
    example = ROOT / "arduino_sketches" / "ODLEngine" / "examples" / "TrainHead"
    elf = arm_build([HERE / "qemu" / "bench_backbone.cpp", *library_sources()], build / f"backbone_{flags_set}.elf",
                    includes=[example], build=flags_set)
    res = qemu_run(elf)
    if res.returncode != 0 or "done" not in res.stdout:
        raise RuntimeError(f"qemu backbone run failed:\n{res.stdout}\n{res.stderr}")
    line = next(x for x in res.stdout.splitlines() if x.startswith("backbone_ticks")).split()
    ticks, reps, macs = int(line[1]), int(line[3]), int(line[5])
    engine_bytes = int(next(x for x in res.stdout.splitlines() if x.startswith("engine_bytes")).split()[1])
    calib = qemu_run(arm_build([HERE / "qemu" / "bench_head.cpp", *library_sources()], build / f"calib_{flags_set}.elf",
                               flags=["-DFD=4", "-DNC=2", "-DBATCH=1", "-DSTEPS=1", "-DTRAIN=0"], build=flags_set))
    ipt = CALIBRATION_INSTRUCTIONS / _values(calib.stdout)["calibration_ticks"]
    size = arm_size(elf)
    instr = ticks * ipt / reps
    return {"backbone_instructions": round(instr), "backbone_macs": macs,
            "backbone_instructions_per_mac": round(instr / macs, 3),
            "engine_sram_bytes_replay16": engine_bytes,
            "elf_flash_bytes": size["text"] + size["data"], "elf_sram_static_bytes": size["data"] + size["bss"]}


def main() -> int:
    missing = missing_arm_tools()
    if missing:
        print(f"missing tools: {', '.join(missing)} (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
              "libstdc++-arm-none-eabi-newlib qemu-system-arm)")
        return 2
    from tqdm import tqdm

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fd, nc in tqdm(SIZES, desc="head sizes"):
            rows.append(measure(fd, nc, Path(tmp)))
        backbone = measure_backbone(Path(tmp))
    hdr = (f"{'head':>8} {'infer instr':>11} {'MACs':>6} {'step instr':>10} {'step MACs':>9} {'instr/MAC':>9} "
           f"{'bias step':>9} {'SRAM +train':>11} {'flash ELF':>9}")
    print(f"Cortex-M4F (qemu -icount), batch {BATCH}; SRAM of the nRF52840 {SRAM_BYTES}, flash {FLASH_BYTES}")
    print(hdr)
    for r in rows:
        print(f"{r['features']:>4}x{r['classes']:<3} {r['inference_instructions']:>11} {r['inference_macs']:>6} "
              f"{r['train_step_instructions']:>10} {r['train_step_macs']:>9} {r['train_step_instructions_per_mac']:>9} "
              f"{r['bias_only_step_instructions']:>9} {r['sram_training_extra_bytes']:>11} {r['flash_train_elf_bytes']:>9}")
    print(f"backbone forward: {backbone['backbone_instructions']} instructions for {backbone['backbone_macs']} MACs "
          f"({backbone['backbone_instructions_per_mac']} per MAC); ELF with backbone weights: flash "
          f"{backbone['elf_flash_bytes']} B, static SRAM {backbone['elf_sram_static_bytes']} B")
    goal = all(r["train_step_instructions_per_mac"] <= 4 for r in rows)
    print(f"goal (training step <= 4 instructions per MAC): {'met' if goal else 'NOT met'}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"method": "qemu-system-arm mps2-an386 -icount shift=0, CMSDK timer, calibrated",
                               "batch": BATCH, "steps_measured": STEPS, "goal_met": goal, "rows": rows,
                               "backbone": backbone}, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
