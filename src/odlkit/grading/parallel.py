"""Autograding several students at once: on this machine (``--jobs N``) or on a Ray cluster.

nbgrader grades one student after another and keeps its gradebook in one SQLite file, which
concurrent writers would lock. So the work is split in two:

1. **Run** (parallel, the expensive part): each student's submission is graded by the real
   ``nbgrader autograde`` in a *sandbox course* of its own, a temporary folder holding the
   course's ``nbgrader_config.py`` (so the same limits: per-cell timeout, memory and CPU
   ceilings of :mod:`odlkit.grading.limits`), ``source/<assignment>/``, a snapshot of the
   gradebook and that one submission. A :class:`Job` carries all of that as bytes, so the same
   function runs in a local thread (which waits on its nbgrader process) or as a Ray task on
   another machine, without a shared file system.
2. **Record** (serial, on the driver, a second or two): the executed notebooks come back and
   one ``nbgrader autograde`` in the real course records them with ``ODL_GRADER_REPLAY=1``
   (``nbgrader_config.py`` then drops ``ClearOutput`` and ``Execute`` and adds
   :class:`~odlkit.grading.preprocessors.RequireExecuted`), so nbgrader's own code writes every
   grade, comment and late penalty into the gradebook, one writer at a time.

A student whose sandbox run failed as a whole (invalid notebook, dead kernel) is graded again
the sequential way in the real course, so its gradebook entry is what a sequential run makes.
"""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPLAY_ENV = "ODL_GRADER_REPLAY"


def nbgrader_env(extra: dict | None = None) -> dict:
    """The environment nbgrader runs in: this one, the interpreter's ``bin`` first on PATH
    (nbgrader runs ``alembic``), plus ``extra`` (the grading kernel inherits it, e.g. ``ODL_QUICK``)."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update(extra or {})
    return env


def default_jobs() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class Job:
    """One student's grading run, self-contained (picklable, no paths of the driver)."""

    assignment: str
    student: str
    course_zip: bytes            # nbgrader_config.py, source/<a>/, gradebook.db, submitted/<s>/<a>/
    env: dict = field(default_factory=dict)


@dataclass
class JobResult:
    student: str
    returncode: int
    output: str                  # nbgrader's log of this student's run
    autograded_zip: bytes        # autograded/<s>/<a>/ of the sandbox (empty if nothing was written)
    seconds: float
    host: str = ""

    def ok(self, assignment: str) -> bool:
        failed = f"error processing assignment '{assignment}' for student '{self.student}'" in self.output
        return self.returncode == 0 and not failed and bool(self.autograded_zip)


def snapshot_gradebook(db: Path) -> bytes:
    """A consistent copy of the SQLite gradebook (the backup API, safe while nbgrader has it open)."""
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp) / "gradebook.db"
        src_con, dst_con = sqlite3.connect(str(db)), sqlite3.connect(str(dst))
        try:
            src_con.backup(dst_con)
        finally:
            dst_con.close()
            src_con.close()
        return dst.read_bytes()


def _zip_dir(zf: zipfile.ZipFile, folder: Path, arc_root: str) -> None:
    for p in sorted(folder.rglob("*")):
        if p.is_file() and ".ipynb_checkpoints" not in p.parts and "__pycache__" not in p.parts:
            zf.write(p, f"{arc_root}/{p.relative_to(folder).as_posix()}")


def make_job(course_dir: Path, assignment: str, student: str, gradebook: bytes, env: dict | None) -> Job:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(course_dir / "nbgrader_config.py", "nbgrader_config.py")
        _zip_dir(zf, course_dir / "source" / assignment, f"source/{assignment}")
        _zip_dir(zf, course_dir / "submitted" / student / assignment, f"submitted/{student}/{assignment}")
        zf.writestr("gradebook.db", gradebook)
    return Job(assignment, student, buf.getvalue(), dict(env or {}))


def grade_job(job: Job) -> JobResult:
    """Grade one student in a sandbox course (runs wherever it is called: thread, Ray task)."""
    import socket

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="odl-grade-") as tmp:
        course = Path(tmp) / "course"
        with zipfile.ZipFile(io.BytesIO(job.course_zip)) as zf:
            zf.extractall(course)
        cmd = [sys.executable, "-m", "nbgrader", "autograde", job.assignment, "--student", job.student, "--force"]
        proc = subprocess.run(cmd, cwd=course, env=nbgrader_env(job.env), capture_output=True, text=True)
        out_dir = course / "autograded" / job.student / job.assignment
        buf = io.BytesIO()
        if out_dir.is_dir() and any(out_dir.glob("*.ipynb")):
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                _zip_dir(zf, out_dir, ".")
        output = (proc.stdout + proc.stderr).replace(str(course), "<sandbox>")
    return JobResult(job.student, proc.returncode, output, buf.getvalue(), time.perf_counter() - t0,
                     socket.gethostname())


def run_local(jobs: list[Job], workers: int, progress=None) -> list[JobResult]:
    """Grade ``jobs`` with ``workers`` nbgrader processes at a time on this machine."""
    results = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for res in pool.map(grade_job, jobs):
            results.append(res)
            if progress:
                progress(res)
    return results


def run_ray(jobs: list[Job], address: str, progress=None) -> list[JobResult]:
    """Grade ``jobs`` as Ray tasks (one CPU each) on the cluster at ``address`` ("auto": the
    cluster this machine belongs to). Every node needs this environment (odlkit, nbgrader, the
    notebooks' dependencies); nothing else is shared, the jobs carry their files."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, log_to_driver=False, include_dashboard=False)
    try:
        remote = ray.remote(num_cpus=1, max_retries=1)(grade_job)
        pending = {remote.remote(j): j.student for j in jobs}
        done: dict[str, JobResult] = {}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                res = ray.get(ref)
                done[pending.pop(ref)] = res
                if progress:
                    progress(res)
        return [done[j.student] for j in jobs]
    finally:
        if started_here:
            ray.shutdown()


def stage_results(results: list[JobResult], staged: Path, course_dir: Path, assignment: str) -> None:
    """Unpack each graded notebook set under ``staged/<student>/<assignment>/`` with the
    submission's own ``timestamp.txt`` (late penalties are computed from it again)."""
    for res in results:
        dest = staged / res.student / assignment
        dest.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(io.BytesIO(res.autograded_zip)) as zf:
            zf.extractall(dest)
        ts = course_dir / "submitted" / res.student / assignment / "timestamp.txt"
        if ts.is_file():
            (dest / "timestamp.txt").write_bytes(ts.read_bytes())
        elif (dest / "timestamp.txt").exists():
            (dest / "timestamp.txt").unlink()
