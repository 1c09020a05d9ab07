"""Cost of Lab 2 on a Cortex-M4F: one training step of the two-layer network (both layers, and
head only) and one LPC frame of the audio front end, counted under qemu, with the RAM each needs.

    .venv/bin/python benchmarks/device_lab2.py          # prints a table, writes JSON

Method (as benchmarks/device_head.py): the library sources (odl_mlp.cpp, odl_lpc.cpp, the
AudioEngine of odl_audio_engine.h) are compiled into tests/engine/qemu/bench_lab2.cpp with the
Nano 33 BLE's own flags (odlkit/board/cxxflags.py BOARD: -std=gnu++14 -Os, softfp ABI, GCC's
default contraction) and run on ``qemu-system-arm -M mps2-an386 -icount shift=0``. Each phase is
the difference of two builds that differ only in how often it runs: training 3 epochs vs 1 epoch
of one mini-batch of 8 utterances (so a "step" includes its epoch's shuffle and loss
bookkeeping), LPC 3 chunks vs 1 chunk of 512 samples at 16 kHz (5 frames each: resampling 512
samples to 320 and analysing 5 frames). benchmarks/m4_cycles.py turns the dynamic instruction
mix into Cortex-M4 cycles (``table``: the TRM's timings, in order, an upper estimate; ``mca``:
llvm-mca-14's Cortex-M4 model, a lower estimate); at 64 MHz that gives the time. RAM: the
engine's own accounting (INFO's net_ram, norm_ram, lpc_ram: sizeof of the buffers) and
``sizeof(AudioEngine)`` with the sketch's sizes (hidden 32, 12 classes, 32 frames; store of 64
here, the sketch keeps 512). Real-time budget: one frame every 6.4 ms.
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
from enginebuild import HERE, LIB_SRC, arm_build, arm_size, missing_arm_tools_message, qemu_finished  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "device_lab2.json"
CLOCK_HZ = 64_000_000
SOURCES = [HERE / "qemu" / "bench_lab2.cpp", *(LIB_SRC / n for n in ("odl_kernels.cpp", "odl_head.cpp", "odl_blob.cpp",
                                                                      "odl_storage.cpp", "odl_lpc.cpp", "odl_mlp.cpp"))]
FRAME_PERIOD_MS = 6.4


def _values(stdout: str) -> dict:
    out = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def _build(build: Path, name: str, flags: list[str]) -> Path:
    return arm_build(SOURCES, build / f"{name}.elf", flags=flags, build="board")


def phase(build: Path, name: str, more: list[str], less: list[str], units: int) -> dict:
    a, b = _build(build, name + "_more", more), _build(build, name + "_less", less)
    d = m4_cycles.difference(m4_cycles.mix(a, build / f"{name}_a.log"), m4_cycles.mix(b, build / f"{name}_b.log"))
    run = qemu_finished(a, what=f"qemu run of {name}")
    vals = _values(run.stdout)
    row = {"phase": name, "units": units, "instructions": d["instructions"] / units,
           "cycles_table": d["table_cycles"] / units}
    if "mca_cycles" in d:
        row["cycles_mca"] = d["mca_cycles"] / units
    row["ms_at_64MHz"] = [row.get("cycles_mca", row["cycles_table"]) / CLOCK_HZ * 1e3, row["cycles_table"] / CLOCK_HZ * 1e3]
    return row, vals, arm_size(a)


def main() -> int:
    if message := missing_arm_tools_message():
        print(message)
        return 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        build = Path(tmp)
        r_all, vals, size = phase(build, "train_step_all_layers", ["-DEPOCHS=3", "-DPLAN=3"],
                                  ["-DEPOCHS=1", "-DPLAN=3"], 2)
        r_head, _, _ = phase(build, "train_step_head_only", ["-DEPOCHS=3", "-DPLAN=0"],
                             ["-DEPOCHS=1", "-DPLAN=0"], 2)
        r_lpc, _, _ = phase(build, "lpc_frame_16k", ["-DLPC_CHUNKS=3"], ["-DLPC_CHUNKS=1"], 10)
        rows = [r_all, r_head, r_lpc]
    D, H, C, B = 24, 32, 9, 8
    macs = {"train_step_all_layers": B * (D * H + H * C) * 2 + B * H * C + D * H + H * C,
            "train_step_head_only": B * (D * H + H * C) + B * H * C + H * C,
            "lpc_frame_16k": 64 * 24 + 256 + 13 * 256}
    for r in rows:
        r["macs"] = macs[r["phase"]]
        r["instructions_per_mac"] = r["instructions"] / r["macs"]
    ram = {k: vals[k] for k in ("engine_bytes", "net_bytes", "norm_bytes", "lpc_bytes", "store_bytes")}
    result = {"rows": rows, "ram_bytes": ram, "elf_size": {k: size[k] for k in ("text", "data", "bss")},
              "frame_period_ms": FRAME_PERIOD_MS, "clock_hz": CLOCK_HZ,
              "network": {"input": D, "hidden": H, "classes": C, "batch": B},
              "method": __doc__.split("\n\n")[1].replace("\n", " ")}
    print(f"{'phase':<24} {'instr':>9} {'MACs':>7} {'instr/MAC':>9} {'cycles lo..hi':>17} {'ms @64MHz':>13}")
    for r in rows:
        lo = r.get("cycles_mca", r["cycles_table"])
        print(f"{r['phase']:<24} {r['instructions']:>9.0f} {r['macs']:>7} {r['instructions_per_mac']:>9.2f} "
              f"{lo:>8.0f}..{r['cycles_table']:<8.0f} {r['ms_at_64MHz'][0]:>6.3f}..{r['ms_at_64MHz'][1]:.3f}")
    print("RAM (bytes): " + ", ".join(f"{k}={v}" for k, v in ram.items()))
    print(f"LPC real-time budget: one frame every {FRAME_PERIOD_MS} ms")
    write_json(OUT, result, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
