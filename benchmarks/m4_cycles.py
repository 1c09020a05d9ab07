"""Cortex-M4F cycle estimate of a program run under qemu (used by benchmarks/device_head.py).

qemu counts instructions, not cycles. This module gets the *dynamic instruction mix* of a run
(``qemu-system-arm -d in_asm,exec,nochain``: the instructions of every translated block, and
every block executed) and turns it into cycles two ways:

* ``table``: the Cortex-M4 Technical Reference Manual's timings (r0p1, Table 3-1 "Cortex-M4
  instruction set summary" and Table 7-1 "FPU instruction set"): data processing 1, MUL 1,
  MLA/MLS 2, SDIV/UDIV 2-12 (7 used), LDR/STR 2 with neighbouring single loads/stores
  pipelining to 1 each, LDM/STM/PUSH/POP and VLDM/VSTM/VPUSH/VPOP 1+N, VLDR/VSTR 2,
  VADD/VSUB/VMUL/VCVT/VMOV/VCMP 1, VMLA/VMLS/VFMA/VFMS/VNMLA 3, VDIV/VSQRT 14, a taken
  branch 1+P with P = 2 (the TRM gives 1..3), a branch not taken 1, IT folded (0). In order,
  no overlap: an upper estimate.
* ``mca``: LLVM's Cortex-M4 scheduling model (``llvm-mca-14 -mcpu=cortex-m4``) per executed
  block, weighted by how often it ran (branches and instructions llvm-mca cannot parse take the
  table's cycles). It lets independent FPU operations overlap load/store latency: a lower
  estimate.

Not modelled (why the truth may differ from both): flash wait states (the nRF52840 runs code
from flash through a cache; 0 wait states on a hit), bus contention, interrupts (USB, timers)
and the exact refill penalty. The two estimates bracket the real inner loops; the report prints
both.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

_INSN = re.compile(r"^0x([0-9a-f]+):\s+((?:[0-9a-f]{4}\s?){1,2})\s+(\S+)\s*(.*)$")
_TRACE = re.compile(r"^Trace \d+: 0x[0-9a-f]+ \[[0-9a-f]+/([0-9a-f]+)/")
_CONDS = "eq|ne|cs|cc|hs|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al"
_BRANCH = re.compile(rf"^(b|bl|blx|bx|cbz|cbnz|b(?:{_CONDS})|tbb|tbh)(\.w|\.n)?$")
_LDST_SINGLE = re.compile(r"^(ldr|str)(b|h|sb|sh|ex|exb|exh)?(" + _CONDS + r")?(\.w|\.n)?$|^v(ldr|str)(\.\d+)?$")
FLOAT_MAC = {"vmla", "vmls", "vnmla", "vnmls", "vfma", "vfms", "vfnma", "vfnms"}


def _reg_count(ops: str) -> int:
    m = re.search(r"\{([^}]*)\}", ops)
    if not m:
        return 1
    n = 0
    for part in m.group(1).split(","):
        part = part.strip()
        r = re.match(r"([rsd])(\d+)\s*-\s*[rsd](\d+)", part)
        n += int(r.group(3)) - int(r.group(2)) + 1 if r else 1
    return n


def table_cycles(mnemonic: str, ops: str) -> int:
    """Cycles of one instruction (branches and load/store pipelining handled by the caller)."""
    m = mnemonic.lower()
    base = m.split(".")[0]
    if base.startswith(("vldm", "vstm", "vpush", "vpop")):
        return 1 + _reg_count(ops)
    if base in ("vldr", "vstr"):
        return 2
    if base in FLOAT_MAC:
        return 3
    if base in ("vdiv", "vsqrt"):
        return 14
    if base.startswith("v"):
        return 1
    if base.startswith(("ldm", "stm", "push", "pop")):
        return 1 + _reg_count(ops)
    if base in ("ldrd", "strd"):
        return 3
    if base.startswith(("ldr", "str")):
        return 2
    if base in ("mla", "mls"):
        return 2
    if base in ("sdiv", "udiv"):
        return 7
    if re.fullmatch(r"it[te]{0,3}", base):
        return 0
    return 1


class Block:
    def __init__(self, pc: int):
        self.pc = pc
        self.insns: list[tuple[int, int, str, str]] = []  # (address, size, mnemonic, operands)

    @property
    def end(self) -> int:
        a, size, _, _ = self.insns[-1]
        return a + size


def _parse(log: Path) -> tuple[dict[int, Block], list[int]]:
    blocks: dict[int, Block] = {}
    order: list[int] = []
    cur: Block | None = None
    with open(log, errors="replace") as fh:
        for line in fh:
            if line.startswith("IN:"):
                cur = None
                continue
            m = _INSN.match(line)
            if m:
                addr = int(m.group(1), 16)
                size = len(m.group(2).replace(" ", "")) // 2
                if cur is None:
                    cur = Block(addr)
                    blocks[addr] = cur
                cur.insns.append((addr, size, m.group(3), m.group(4).strip()))
                continue
            t = _TRACE.match(line)
            if t:
                cur = None
                order.append(int(t.group(1), 16))
    return blocks, order


def trace(elf: Path, log: Path, timeout: float = 900) -> tuple[dict[int, Block], list[int]]:
    """Run the ELF under qemu logging every translated and executed block."""
    cmd = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-semihosting", "-kernel", str(elf),
           "-d", "in_asm,exec,nochain", "-D", str(log)]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0 or "done" not in res.stdout:
        raise RuntimeError(f"qemu trace of {elf.name} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    try:
        return _parse(log)
    finally:
        log.unlink(missing_ok=True)


def _block_cycles(b: Block, taken: bool) -> int:
    total, run = 0, 0
    for _, _, mn, ops in b.insns:
        base = mn.lower()
        if _BRANCH.match(base) or (base.startswith("pop") and "pc" in ops):
            continue  # the block's final branch: added below
        if _LDST_SINGLE.match(base):
            total += 2 if run == 0 else 1  # neighbouring single loads/stores pipeline
            run += 1
            continue
        run = 0
        total += table_cycles(mn, ops)
    last_mn, last_ops = b.insns[-1][2].lower(), b.insns[-1][3]
    if last_mn.startswith("pop") and "pc" in last_ops:
        total += 1 + _reg_count(last_ops) + 2
    elif _BRANCH.match(last_mn):
        conditional = not re.fullmatch(r"(b|bl|blx|bx)(\.w|\.n)?", last_mn)
        total += 3 if (taken or not conditional) else 1
    return total


def mix(elf: Path, log: Path) -> dict:
    """Instructions, table cycles, per-mnemonic counts and per-block execution counts of a run."""
    blocks, order = trace(elf, log)
    execs: Counter = Counter()
    taken: Counter = Counter()
    for i, pc in enumerate(order):
        execs[pc] += 1
        b = blocks.get(pc)
        if b is not None and i + 1 < len(order) and order[i + 1] != b.end:
            taken[pc] += 1
    mnemonics: Counter = Counter()
    instructions = cycles = 0
    for pc, n in execs.items():
        b = blocks.get(pc)
        if b is None:
            continue
        instructions += n * len(b.insns)
        t = taken[pc]
        cycles += t * _block_cycles(b, True) + (n - t) * _block_cycles(b, False)
        for _, _, mn, _ in b.insns:
            mnemonics[mn.split(".")[0].lower()] += n
    return {"instructions": instructions, "table_cycles": cycles, "mnemonics": mnemonics,
            "execs": execs, "taken": taken, "blocks": blocks}  # fmt: skip


def difference(a: dict, b: dict) -> dict:
    """What run a executed beyond run b (e.g. one more training epoch). The two runs are separate
    builds (code addresses differ), so only totals are subtracted, block by block never."""
    mnem = Counter(a["mnemonics"])
    mnem.subtract(b["mnemonics"])
    out = {"instructions": a["instructions"] - b["instructions"], "table_cycles": a["table_cycles"] - b["table_cycles"],
           "mnemonics": +mnem}  # fmt: skip
    ma, mb = mca_cycles(a), mca_cycles(b)
    if ma is not None and mb is not None:
        out["mca_cycles"] = ma[0] - mb[0]
        out["mca_coverage"] = min(ma[1], mb[1])
    return out


_MCA_CACHE: dict[tuple, float | None] = {}


def _mca_block(b: Block) -> float | None:
    """llvm-mca's steady-state cycles per execution of the block without its final branch."""
    body = [(mn, ops) for _, _, mn, ops in b.insns if not _BRANCH.match(mn.lower())
            and not (mn.lower().startswith("pop") and "pc" in ops)]  # fmt: skip
    key = tuple(body)
    if key in _MCA_CACHE:
        return _MCA_CACHE[key]
    if not body:
        _MCA_CACHE[key] = 0.0
        return 0.0
    asm = ".syntax unified\n.thumb\n" + "\n".join(f"{mn} {ops}" for mn, ops in body) + "\n"
    res = subprocess.run(["llvm-mca-14", "-mtriple=thumbv7em-none-eabi", "-mcpu=cortex-m4", "-mattr=+vfp4d16sp",
                          "-iterations=100", "-"], input=asm, capture_output=True, text=True)  # fmt: skip
    m = re.search(r"Total Cycles:\s+(\d+)", res.stdout)
    _MCA_CACHE[key] = int(m.group(1)) / 100 if (res.returncode == 0 and m) else None
    return _MCA_CACHE[key]


def mca_cycles(run: dict) -> tuple[float, float] | None:
    """(cycles, share of instructions llvm-mca modelled) of a mix or difference; None without llvm-mca."""
    if shutil.which("llvm-mca-14") is None:
        return None
    total = covered = instr = 0.0
    for pc, n in run["execs"].items():
        if n <= 0 or pc not in run["blocks"]:
            continue
        b = run["blocks"][pc]
        t = max(0, run["taken"].get(pc, 0))
        branch_cycles = (t * _block_cycles(b, True) + (n - t) * _block_cycles(b, False)) / n
        est = _mca_block(b)
        instr += n * len(b.insns)
        if est is None:
            total += t * _block_cycles(b, True) + (n - t) * _block_cycles(b, False)
            continue
        # the branch's own cycles from the table: block cycles minus the table's body cycles
        body_only = Block(b.pc)
        body_only.insns = [i for i in b.insns if not _BRANCH.match(i[2].lower())
                           and not (i[2].lower().startswith("pop") and "pc" in i[3])]  # fmt: skip
        table_body = _block_cycles(body_only, False) if body_only.insns else 0
        total += n * (est + branch_cycles - table_body)
        covered += n * len(b.insns)
    return total, (covered / instr if instr else 0.0)
