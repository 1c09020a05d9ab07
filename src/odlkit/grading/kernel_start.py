"""Start a grading kernel under memory and CPU limits: the command nbgrader runs for every student.

Kept to the standard library on purpose: this module runs once per student before the kernel,
and importing nbgrader or nbformat here cost 25-30 s per student on a loaded 2-core machine
(``python -X importtime -m odlkit.grading.limits`` before this module existed). See
:mod:`odlkit.grading.limits` for the limits and :mod:`odlkit.grading.warm` for warm kernels.

    python -m odlkit.grading.kernel_start MEM_MB CPU_S -- KERNEL_COMMAND...

**The memory reserve.** The memory limit is ``RLIMIT_AS``'s *soft* limit; the hard limit is
``ODL_GRADER_MEM_RESERVE_MB`` [1536] above it. A student's cell that allocates until
``MemoryError`` and keeps the memory in a global (``blocks.append(...)`` in a loop) leaves the
kernel at its limit, and then everything the later cells need fails with it: the test that loads a
native library, the thread pools of TensorFlow's first ``fit`` (``pthread_create() failed``, which
aborts the kernel: a dead kernel, 0 for every exercise). This module is also an IPython extension
(``--IPKernelApp.extensions``, added to every grading kernel's command by
:class:`odlkit.grading.limits.LimitedKernelManager`, cold or forked warm, never by the notebook):
the first ``MemoryError`` that ends a cell raises the soft limit to the hard one, before its
traceback is shown, so the rest of the notebook runs with the reserve and the memory hog costs
only its own exercise. Measured (``VmPeak`` of ``/proc/self/status``, 2-core machine): TensorFlow
imported 1.3 GB of address space; its first small ``Sequential.fit`` adds 1.1 GB (glibc's malloc
arena of 64 MB reserved per new thread), loading ``aeon``'s numba/llvmlite 0.16 GB more; so a
1.5 GB reserve covers a test that trains a small model after the student's memory is gone.
"""

from __future__ import annotations

import os
import sys

RESERVE_ENV = "ODL_GRADER_MEM_RESERVE_MB"
DEFAULT_RESERVE_MB = 1536
EXTENSION_ARG = "--IPKernelApp.extensions=odlkit.grading.kernel_start"   # load_ipython_extension below


def reserve_mb() -> int:
    """The memory reserve (MiB) above the memory limit, from ``ODL_GRADER_MEM_RESERVE_MB``
    (validated in the grading process by :func:`odlkit.grading.limits.limits_from_env`)."""
    raw = os.environ.get(RESERVE_ENV, "").strip()
    return DEFAULT_RESERVE_MB if raw == "" else max(0, int(raw))


def apply_limits(mem_mb: int, cpu_s: int, reserve: int | None = None) -> None:
    """``RLIMIT_AS`` of ``mem_mb`` MiB (soft; the hard limit ``reserve`` MiB higher, default
    :func:`reserve_mb`) and ``RLIMIT_CPU`` of ``cpu_s`` s on this process (0: none)."""
    import resource

    if mem_mb > 0:
        nbytes = mem_mb * 1024 * 1024
        extra = (reserve_mb() if reserve is None else reserve) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (nbytes, nbytes + extra))
    if cpu_s > 0:
        # soft limit sends SIGXCPU (kills the kernel), hard limit a little later SIGKILL
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))


def release_reserve() -> bool:
    """Raise this process's soft ``RLIMIT_AS`` to its hard limit (the reserve); True if it did."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return False
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
    return True


def _on_memory_error(shell, etype, value, tb, tb_offset=None):
    release_reserve()   # first, so that the traceback itself and every later cell have the reserve
    shell.showtraceback((etype, value, tb), tb_offset=tb_offset)


def load_ipython_extension(ipython) -> None:
    """In a grading kernel: a cell that ends in ``MemoryError`` releases the memory reserve (the
    error is shown and reported as usual: nbgrader sees the same ``MemoryError``)."""
    ipython.set_custom_exc((MemoryError,), _on_memory_error)


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
