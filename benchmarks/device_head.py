"""Cost of the on-device head on a Cortex-M4F: instructions per training step and per
inference, counted under qemu, next to the MAC count, and the memory training adds.

    .venv/bin/python benchmarks/device_head.py          # prints a table, writes JSON

Method: the library's head code (arduino_sketches/ODLEngine/src/odl_head.cpp) is compiled with
arm-none-eabi-g++ twice: with the Nano 33 BLE's own flags (``board``: -Os, softfp ABI, GCC's
default contraction, odlkit/board/cxxflags.py BOARD: what the Arduino IDE flashes) and with the
-O2 hard-float build these figures used before (``o2-hard``), into tests/engine/qemu/bench_head.cpp and run
on qemu-system-arm -M mps2-an386 with ``-icount shift=0``: every guest instruction advances
virtual time by 1 ns, and the board's 25 MHz CMSDK timer (driven by virtual time) is read
before and after. A calibration loop of exactly 2,000,000 instructions converts ticks to
instructions (resolution: one tick = 40 instructions; each measurement spans >= 10^4 ticks).
Instructions are not cycles: benchmarks/m4_cycles.py turns the dynamic instruction mix of the
board build (qemu's block trace) into Cortex-M4 cycles with the TRM's timing table (an upper
estimate: in order, no overlap) and with llvm-mca-14's Cortex-M4 model (a lower estimate), for
the lab's head (64 features x 8 classes: one inference, one training step of a batch of 8) and
one backbone forward; each phase is the difference of two runs that differ only in how often it
runs. At 64 MHz that gives milliseconds, and with the nRF52840's run current (Product
Specification v1.7, section 5.2.1 "CPU running CoreMark from flash, cache enabled": 3.3 mA with
the DC/DC regulator, 6.3 mA with the LDO, at VDD = 3 V) the energy of the CPU alone (the board's
LEDs, sensors and USB are not included). Not modelled: flash wait states on cache misses, bus
contention, interrupts; expect the real time between the two estimates, within about +-30 %
outside them.

MACs per training step of a batch of N for F features and C classes:
forward N*F*C + weight gradient N*F*C + update F*C (one multiply-add per weight for the
momentum update). Per inference: F*C. The goal is <= 4 instructions per MAC.
Memory: two builds of the same program, with and without the training buffers
(momentum, gradient, a store of N*K feature vectors with labels); the difference of
arm-none-eabi-size bss is the SRAM training adds.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "engine"))
sys.path.insert(0, str(ROOT / "benchmarks"))
import m4_cycles  # noqa: E402
from _common import write_json  # noqa: E402
from enginebuild import (  # noqa: E402
    HERE,
    arm_build,
    arm_size,
    library_sources,
    missing_arm_tools_message,
    qemu_finished,
    qemu_run,
)

SIZES = [(64, 4), (64, 8), (128, 8), (256, 16)]
BATCH, STEPS = 8, 8
CALIBRATION_INSTRUCTIONS = 2_000_000
FLASH_BYTES, SRAM_BYTES = 1024 * 1024, 256 * 1024
OUT = ROOT / "benchmarks" / "results" / "device_head.json"
CLOCK_HZ = 64_000_000  # nRF52840
RUN_MA = {"dcdc": 3.3, "ldo": 6.3}  # nRF52840 PS v1.7 sec. 5.2.1, CoreMark from flash, cache on
VDD = 3.0  # V, the datasheet's condition
LAB_HEAD = (64, 8)


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
    res = qemu_finished(elf_train, what=f"qemu run for {fd}x{nc}")
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
    res = qemu_finished(elf, what="qemu backbone run")
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


def _phase(run_more: dict, run_less: dict, times: int) -> dict:
    d = m4_cycles.difference(run_more, run_less)
    out = {"instructions": round(d["instructions"] / times), "cycles_table": round(d["table_cycles"] / times)}
    if "mca_cycles" in d:
        out["cycles_mca"] = round(d["mca_cycles"] / times)
        out["mca_coverage"] = round(d["mca_coverage"], 3)
    for k in ("table", "mca"):
        c = out.get(f"cycles_{k}")
        if c is None:
            continue
        ms = c / CLOCK_HZ * 1e3
        out[f"ms_{k}"] = round(ms, 4)
        out[f"uJ_{k}_dcdc"] = round(ms * RUN_MA["dcdc"] * VDD, 3)  # mA x V x ms = uJ
        out[f"uJ_{k}_ldo"] = round(ms * RUN_MA["ldo"] * VDD, 3)
    return out


def cycle_estimate(build: Path) -> dict:
    """Cycles, ms at 64 MHz and CPU energy of the board build: inference and one training step of
    the lab's head, and one backbone forward (each the difference of two traced runs)."""
    fd, nc = LAB_HEAD
    srcs = [HERE / "qemu" / "bench_head.cpp", *library_sources()]
    base = [f"-DFD={fd}", f"-DNC={nc}", f"-DBATCH={BATCH}", f"-DSTEPS={STEPS}", "-DTRAIN=1", "-DCALIBRATE=0"]
    runs = {}
    for name, extra in [("one", ["-DINFER_REPS=1", "-DTRAIN_EPOCHS=1"]), ("infer2", ["-DINFER_REPS=2", "-DTRAIN_EPOCHS=1"]),
                        ("train2", ["-DINFER_REPS=1", "-DTRAIN_EPOCHS=2"])]:  # fmt: skip
        elf = arm_build(srcs, build / f"trace_{name}.elf", flags=[*base, *extra], build="board")
        runs[name] = m4_cycles.mix(elf, build / f"trace_{name}.log")
    example = ROOT / "arduino_sketches" / "ODLEngine" / "examples" / "TrainHead"
    for reps in (1, 2):
        elf = arm_build([HERE / "qemu" / "bench_backbone.cpp", *library_sources()], build / f"trace_bb{reps}.elf",
                        includes=[example], flags=[f"-DREPS={reps}"], build="board")  # fmt: skip
        runs[f"bb{reps}"] = m4_cycles.mix(elf, build / f"trace_bb{reps}.log")
    return {"head": f"{fd}x{nc}", "batch": BATCH,
            "inference": _phase(runs["infer2"], runs["one"], 1),
            "train_step": _phase(runs["train2"], runs["one"], STEPS),  # one more epoch = STEPS steps
            "backbone_forward": _phase(runs["bb2"], runs["bb1"], 1)}  # fmt: skip


def main() -> int:
    if message := missing_arm_tools_message():
        print(message)
        return 2
    from tqdm import tqdm

    rows, board_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for fd, nc in tqdm(SIZES, desc="head sizes"):
            rows.append(measure(fd, nc, Path(tmp)))
            board_rows.append(measure(fd, nc, Path(tmp), flags_set="board"))
        backbone = measure_backbone(Path(tmp))
        backbone_board = measure_backbone(Path(tmp), flags_set="board")
        cycles = cycle_estimate(Path(tmp))
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
    print("\nthe board's own build (-Os, softfp, GCC default contraction) beside the -O2 hard-float one:")
    print(f"{'head':>8} {'infer o2-hard':>13} {'infer board':>11} {'step o2-hard':>12} {'step board':>10} "
          f"{'instr/MAC board':>15}")
    for r, q in zip(rows, board_rows, strict=True):
        print(f"{r['features']:>4}x{r['classes']:<3} {r['inference_instructions']:>13} {q['inference_instructions']:>11} "
              f"{r['train_step_instructions']:>12} {q['train_step_instructions']:>10} "
              f"{q['train_step_instructions_per_mac']:>15}")
    print(f"backbone forward: {backbone['backbone_instructions']} instructions (o2-hard), "
          f"{backbone_board['backbone_instructions']} (board)")
    print(f"\nCortex-M4 cycle estimate of the board build at {CLOCK_HZ / 1e6:g} MHz (table = TRM timings, upper; "
          f"mca = llvm-mca-14 -mcpu=cortex-m4, lower); CPU energy at {VDD:g} V with "
          f"{RUN_MA['dcdc']} mA (DC/DC) / {RUN_MA['ldo']} mA (LDO), nRF52840 PS v1.7 sec. 5.2.1:")
    print(f"{'phase':>22} {'instr':>8} {'cyc table':>9} {'cyc mca':>8} {'ms table':>8} {'ms mca':>7} "
          f"{'uJ dcdc':>13} {'uJ ldo':>13}")
    for name in ("inference", "train_step", "backbone_forward"):
        c = cycles[name]
        label = {"inference": f"inference {cycles['head']}", "train_step": f"train step {cycles['head']} b{BATCH}",
                 "backbone_forward": "backbone forward"}[name]  # fmt: skip
        print(f"{label:>22} {c['instructions']:>8} {c['cycles_table']:>9} {c.get('cycles_mca', '-'):>8} "
              f"{c['ms_table']:>8.3f} {c.get('ms_mca', float('nan')):>7.3f} "
              f"{c.get('uJ_mca_dcdc', float('nan')):>6.2f}-{c['uJ_table_dcdc']:<6.2f} "
              f"{c.get('uJ_mca_ldo', float('nan')):>6.2f}-{c['uJ_table_ldo']:<6.2f}")
    # the traced mix and the timer count measure the same instructions (independent methods)
    lab = next(q for q in board_rows if (q["features"], q["classes"]) == LAB_HEAD)
    agree = abs(cycles["train_step"]["instructions"] / lab["train_step_instructions"] - 1)
    print(f"trace vs timer instruction count of the training step: {agree:.2%} apart")
    goal = all(r["train_step_instructions_per_mac"] <= 4 for r in rows)
    print(f"goal (training step <= 4 instructions per MAC): {'met' if goal else 'NOT met'}")
    write_json(OUT, {"method": "qemu-system-arm mps2-an386 -icount shift=0, CMSDK timer, calibrated",
                     "batch": BATCH, "steps_measured": STEPS, "goal_met": goal, "rows": rows,
                     "backbone": backbone, "rows_board_flags": board_rows, "backbone_board_flags": backbone_board,
                     "cycle_estimate_board_flags": {**cycles, "clock_hz": CLOCK_HZ, "run_current_ma": RUN_MA,
                                                    "vdd": VDD, "method": m4_cycles.__doc__.split("\n\n")[0]}}, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
