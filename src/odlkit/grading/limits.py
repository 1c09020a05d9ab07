"""Resource limits for the grading kernel.

nbgrader runs every student's code in a Jupyter kernel that it starts itself. Its own
protection is a per-cell timeout (``Execute.timeout``). This module adds what it lacks:

* a memory ceiling (``RLIMIT_AS``) so a huge allocation raises ``MemoryError`` in the
  student's cell instead of pushing the grading machine into swap or the OOM killer;
* a CPU-seconds ceiling per kernel (``RLIMIT_CPU``) as a backstop for code that a
  keyboard interrupt cannot stop (a long C loop).

``LimitedExecute`` is a drop-in replacement for nbgrader's ``Execute`` preprocessor
(``autograder/nbgrader_config.py`` puts it in ``Autograde.autograde_preprocessors``). It
starts each kernel through ``python -m odlkit.grading.kernel_start``, which sets the limits and
then ``exec``s the normal kernel command, so the kernel itself is unchanged.

Limits come from the environment of the grading process (defaults in brackets):
``ODL_GRADER_MEM_MB`` [4096], ``ODL_GRADER_MEM_RESERVE_MB`` [1536] (the memory the rest of the
notebook gets after a cell ran out of memory: :mod:`odlkit.grading.kernel_start`) and
``ODL_GRADER_CPU_S`` [3600]; 0 disables a limit (a reserve of 0: none).
These limits are not a sandbox: see the instructor guide (autograder/README.md).

``LimitedExecute`` also runs only the cells a graded cell can depend on (:mod:`odlkit.grading.prune`)
and grades a notebook again with every cell run when its pruned run exhausted a resource
(:func:`odlkit.grading.prune.exhausted`, a dead kernel), so such a student gets nbgrader's grades.
"""

from __future__ import annotations

import copy
import os
import sys

from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import DeadKernelError
from nbgrader.preprocessors import Execute

from . import kernel_start
from .kernel_start import apply_limits as _apply_limits  # noqa: F401 (the old name)

GRADING_ENV = "ODL_GRADING"   # odlkit.config.GRADING in the kernel; ODL_GRADING=0 keeps the quick/full sizes
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
    """(memory MiB, CPU seconds) for grading kernels, from the environment (the memory reserve
    checked too: the kernels read it, :func:`odlkit.grading.kernel_start.reserve_mb`)."""
    _env_int(kernel_start.RESERVE_ENV, kernel_start.DEFAULT_RESERVE_MB)
    return _env_int("ODL_GRADER_MEM_MB", DEFAULT_MEM_MB), _env_int("ODL_GRADER_CPU_S", DEFAULT_CPU_S)


def has_reserve() -> bool:
    """Whether grading kernels get a memory reserve after a ``MemoryError`` (:mod:`odlkit.grading.kernel_start`)."""
    return limits_from_env()[0] > 0 and _env_int(kernel_start.RESERVE_ENV, kernel_start.DEFAULT_RESERVE_MB) > 0


def wrap_command(cmd: list[str], mem_mb: int, cpu_s: int) -> list[str]:
    """The kernel command ``cmd`` started under the given limits."""
    return [sys.executable, "-m", "odlkit.grading.kernel_start", str(mem_mb), str(cpu_s), "--", *cmd]


# The zygote of this grading process (odlkit.grading.warm), set by LimitedExecute for the
# notebook it is about to run; None: cold kernels.
_warm_address: str | None = None


class LimitedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernels start under memory and CPU limits (forked warm from the
    grading run's zygote when there is one, see :mod:`odlkit.grading.warm`)."""

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        from . import warm

        cmd = super().format_kernel_cmd(extra_arguments)
        mem_mb, cpu_s = limits_from_env()
        if len(cmd) >= 3 and cmd[1:3] == ["-m", "ipykernel_launcher"] and mem_mb > 0:
            cmd = [*cmd, kernel_start.EXTENSION_ARG]   # a MemoryError releases the memory reserve
        if _warm_address and warm.can_fork(cmd):
            return warm.warm_command(cmd, _warm_address, mem_mb, cpu_s, warm.wait_seconds())
        return wrap_command(cmd, mem_mb, cpu_s)


class LimitedExecute(Execute):
    """nbgrader's ``Execute`` with kernels started by :class:`LimitedKernelManager`.

    Configured under the ``Execute`` section like the original (``Execute.timeout``...).
    """

    def __init__(self, *args, **kwargs):
        kwargs["kernel_manager_class"] = LimitedKernelManager
        super().__init__(*args, **kwargs)

    def preprocess(self, nb, resources=None, *args, **kwargs):
        global _warm_address
        from . import prune, warm

        os.environ.setdefault(GRADING_ENV, "1")   # the kernels inherit it: demo cells' grading sizes
        _warm_address = warm.zygote_for(nb, self._instructor_source(resources))
        self._skip: set[int] = set()
        if prune.enabled():
            self._skip, why = prune.cells_to_skip(nb)
            self.log.info("%s %d of %d code cells not run (no graded cell needs them)%s", prune.LOG_MARK,
                          len(self._skip), sum(c.cell_type == "code" for c in nb.cells), f"; {why}" if why else "")
        if not self._skip:
            return super().preprocess(nb, resources, *args, **kwargs)
        # A pruned run that exhausted a resource (memory, file descriptors, CPU: the kernel died,
        # a cell timed out) is graded again with every cell run, nbgrader's way: once a resource
        # is gone, what a later cell can still do depends on what the skipped cells did first
        # (a skipped demo cell that loaded a native library the tests load again, prune.py).
        original = copy.deepcopy(nb)
        try:
            out = super().preprocess(nb, resources, *args, **kwargs)
            exhausted = prune.exhausted(out[0], reserve=has_reserve())
        except DeadKernelError as e:
            exhausted = f"the kernel died ({e})"
        if not exhausted:
            return out
        self.log.warning("%s (%s): grading again with every cell run", prune.REGRADE_MARK, exhausted)
        self._skip = set()
        nb.cells = original.cells
        nb.metadata = original.metadata
        return super().preprocess(nb, resources, *args, **kwargs)

    def preprocess_cell(self, cell, resources, index):
        from . import prune

        if index in getattr(self, "_skip", ()):
            cell.outputs = [prune.skip_output()]
            cell.execution_count = None
            return cell, self.resources
        return super().preprocess_cell(cell, resources, index)

    def _instructor_source(self, resources) -> str | None:
        """The instructor's source notebook of the notebook being graded (course's
        ``source/<assignment>/<notebook>.ipynb``), if nbgrader says which and it exists."""
        info = (resources or {}).get("nbgrader") or {}
        root = self.config.get("CourseDirectory", {}).get("root") or os.getcwd()
        if not info.get("assignment") or not info.get("notebook"):
            return None
        path = os.path.join(str(root), "source", info["assignment"], f"{info['notebook']}.ipynb")
        return path if os.path.isfile(path) else None


def main(argv: list[str] | None = None) -> None:
    """``python -m odlkit.grading.limits MEM_MB CPU_S -- CMD...`` (kept for scripts; the grading
    kernels start through the lighter :mod:`odlkit.grading.kernel_start`)."""
    kernel_start.main(argv)


if __name__ == "__main__":
    main()
