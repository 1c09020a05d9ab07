"""Resource limits for the grading kernel.

nbgrader runs every student's code in a Jupyter kernel that it starts itself. Its own
protection is a per-cell timeout (``Execute.timeout``). This module adds what it lacks:

* a memory ceiling (``RLIMIT_AS``) so a huge allocation raises ``MemoryError`` in the
  student's cell instead of pushing the grading machine into swap or the OOM killer;
* a CPU-seconds ceiling per kernel (``RLIMIT_CPU``) as a backstop for code that a
  keyboard interrupt cannot stop (a long C loop).

``LimitedExecute`` is a drop-in replacement for nbgrader's ``Execute`` preprocessor
(``autograder/nbgrader_config.py`` puts it in ``Autograde.autograde_preprocessors``). It
starts each kernel through ``python -m odlkit.grading.limits``, which sets the limits and
then ``exec``s the normal kernel command, so the kernel itself is unchanged.

Limits come from the environment of the grading process (defaults in brackets):
``ODL_GRADER_MEM_MB`` [4096] and ``ODL_GRADER_CPU_S`` [3600]; 0 disables a limit.
These limits are not a sandbox: see the instructor guide (autograder/README.md).
"""

from __future__ import annotations

import os
import sys

from jupyter_client.manager import AsyncKernelManager
from nbgrader.preprocessors import Execute

DEFAULT_MEM_MB = 4096
DEFAULT_CPU_S = 3600


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer; set it to a number (0 disables the limit)") from None
    if value < 0:
        raise ValueError(f"{name}={value} is negative; use 0 to disable the limit")
    return value


def limits_from_env() -> tuple[int, int]:
    """(memory MiB, CPU seconds) for grading kernels, from the environment."""
    return _env_int("ODL_GRADER_MEM_MB", DEFAULT_MEM_MB), _env_int("ODL_GRADER_CPU_S", DEFAULT_CPU_S)


def wrap_command(cmd: list[str], mem_mb: int, cpu_s: int) -> list[str]:
    """The kernel command ``cmd`` started under the given limits."""
    return [sys.executable, "-m", "odlkit.grading.limits", str(mem_mb), str(cpu_s), "--", *cmd]


class LimitedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernels start under memory and CPU limits."""

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        cmd = super().format_kernel_cmd(extra_arguments)
        mem_mb, cpu_s = limits_from_env()
        return wrap_command(cmd, mem_mb, cpu_s)


class LimitedExecute(Execute):
    """nbgrader's ``Execute`` with kernels started by :class:`LimitedKernelManager`.

    Configured under the ``Execute`` section like the original (``Execute.timeout``...).
    """

    def __init__(self, *args, **kwargs):
        kwargs["kernel_manager_class"] = LimitedKernelManager
        super().__init__(*args, **kwargs)


def _apply_limits(mem_mb: int, cpu_s: int) -> None:
    import resource

    if mem_mb > 0:
        nbytes = mem_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (nbytes, nbytes))
    if cpu_s > 0:
        # soft limit sends SIGXCPU (kills the kernel), hard limit a little later SIGKILL
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: python -m odlkit.grading.limits MEM_MB CPU_S -- KERNEL_COMMAND..."
    if len(argv) < 4 or argv[2] != "--":
        raise SystemExit(usage)
    try:
        mem_mb, cpu_s = int(argv[0]), int(argv[1])
    except ValueError:
        raise SystemExit(f"MEM_MB and CPU_S must be integers, got {argv[0]!r} {argv[1]!r}\n{usage}") from None
    _apply_limits(mem_mb, cpu_s)
    cmd = argv[3:]
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main()
