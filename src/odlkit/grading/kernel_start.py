"""Start a grading kernel under memory and CPU limits: the command nbgrader runs for every student.

Kept to the standard library on purpose: this module runs once per student before the kernel,
and importing nbgrader or nbformat here cost 25-30 s per student on a loaded 2-core machine
(``python -X importtime -m odlkit.grading.limits`` before this module existed). See
:mod:`odlkit.grading.limits` for the limits and :mod:`odlkit.grading.warm` for warm kernels.

    python -m odlkit.grading.kernel_start MEM_MB CPU_S -- KERNEL_COMMAND...
"""

from __future__ import annotations

import os
import sys


def apply_limits(mem_mb: int, cpu_s: int) -> None:
    """``RLIMIT_AS`` of ``mem_mb`` MiB and ``RLIMIT_CPU`` of ``cpu_s`` s on this process (0: none)."""
    import resource

    if mem_mb > 0:
        nbytes = mem_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (nbytes, nbytes))
    if cpu_s > 0:
        # soft limit sends SIGXCPU (kills the kernel), hard limit a little later SIGKILL
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: python -m odlkit.grading.kernel_start MEM_MB CPU_S -- KERNEL_COMMAND..."
    if len(argv) < 4 or argv[2] != "--":
        raise SystemExit(usage)
    try:
        mem_mb, cpu_s = int(argv[0]), int(argv[1])
    except ValueError:
        raise SystemExit(f"MEM_MB and CPU_S must be integers, got {argv[0]!r} {argv[1]!r}\n{usage}") from None
    apply_limits(mem_mb, cpu_s)
    cmd = argv[3:]
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main()
