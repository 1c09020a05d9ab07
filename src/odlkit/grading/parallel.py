"""Autograding several students at once: on this machine (``--jobs N``) or on a Ray cluster.

nbgrader grades one student after another and keeps its gradebook in one SQLite file, which
concurrent writers would lock. So the work is split in two:

1. **Run** (parallel, the expensive part): the students are dealt into groups (one per job or
   per Ray CPU) and each group is graded by the real ``nbgrader autograde`` in a *sandbox
   course* of its own, a temporary folder holding the course's ``nbgrader_config.py`` (so the
   same limits: per-cell timeout, memory and CPU ceilings of :mod:`odlkit.grading.limits`, a
   fresh kernel per student), ``source/<assignment>/``, a snapshot of the gradebook and that
   group's submissions. A :class:`Job` carries all of that as bytes, so the same function runs
   in a local thread (which waits on its nbgrader process) or as a Ray task on another
   machine, without a shared file system.
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
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import nbgrader_cli

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
    """A group of students graded in one sandbox course, self-contained (picklable, no paths of
    the driver). One nbgrader process grades the group one after another, each student in a
    fresh kernel; the group amortises nbgrader's start-up (tens of seconds on a loaded machine)."""

    assignment: str
    students: list[str]
    course_zip: bytes            # nbgrader_config.py, source/<a>/, gradebook.db, submitted/<s>/<a>/ per student
    env: dict = field(default_factory=dict)


@dataclass
class JobResult:
    students: list[str]
    returncode: int
    output: str                  # nbgrader's log of this group's run
    autograded: dict[str, bytes]  # student -> zip of autograded/<s>/<a>/ (only students nbgrader finished)
    seconds: float
    host: str = ""

    def graded(self, assignment: str) -> list[str]:
        """Students of this group whose notebooks nbgrader executed and scored."""
        failed = set(re.findall(rf"error processing assignment '{re.escape(assignment)}' for student '([^']+)'",
                                self.output))
        return [s for s in self.students if s in self.autograded and s not in failed]


def _zip_dir(zf: zipfile.ZipFile, folder: Path, arc_root: str) -> None:
    for p in sorted(folder.rglob("*")):
        if p.is_file() and ".ipynb_checkpoints" not in p.parts and "__pycache__" not in p.parts:
            zf.write(p, f"{arc_root}/{p.relative_to(folder).as_posix()}")


def make_job(course_dir: Path, assignment: str, students: list[str], gradebook: bytes, env: dict | None) -> Job:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(course_dir / "nbgrader_config.py", "nbgrader_config.py")
        _zip_dir(zf, course_dir / "source" / assignment, f"source/{assignment}")
        for s in students:
            _zip_dir(zf, course_dir / "submitted" / s / assignment, f"submitted/{s}/{assignment}")
        zf.writestr("gradebook.db", gradebook)
    return Job(assignment, list(students), buf.getvalue(), dict(env or {}))


def split(students: list[str], groups: int) -> list[list[str]]:
    """``students`` dealt round-robin into at most ``groups`` non-empty groups."""
    groups = max(1, min(groups, len(students)))
    return [students[i::groups] for i in range(groups)]


def grade_job(job: Job) -> JobResult:
    """Grade a group of students in a sandbox course (runs wherever it is called: a thread, a Ray task)."""
    import socket

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="odl-grade-") as tmp:
        course = Path(tmp) / "course"
        with zipfile.ZipFile(io.BytesIO(job.course_zip)) as zf:
            zf.extractall(course)
        # The sandbox grades into its own copy of the gradebook, never into the course's database
        # (the copied nbgrader_config.py may name a database server in CourseDirectory.db_url).
        cmd = nbgrader_cli.command(["autograde", job.assignment, "--force",
                                    f"--CourseDirectory.db_url=sqlite:///{course / 'gradebook.db'}"])
        proc = subprocess.run(cmd, cwd=course, env=nbgrader_env(job.env), capture_output=True, text=True)
        graded = {}
        for s in job.students:
            out_dir = course / "autograded" / s / job.assignment
            if out_dir.is_dir() and any(out_dir.glob("*.ipynb")):
                buf = io.BytesIO()
                with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                    _zip_dir(zf, out_dir, ".")
                graded[s] = buf.getvalue()
        output = (proc.stdout + proc.stderr).replace(str(course), "<sandbox>")
    host = socket.gethostname()
    if "ray" in sys.modules:  # a Ray task: name the node, several may share a host name
        import ray

        if ray.is_initialized():
            host += "/ray-node-" + ray.get_runtime_context().get_node_id()[:12]
    return JobResult(list(job.students), proc.returncode, output, graded, time.perf_counter() - t0, host)


def run_local(jobs: list[Job], workers: int) -> list[JobResult]:
    """Grade ``jobs`` with ``workers`` nbgrader processes at a time on this machine."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(grade_job, jobs))


def run_ray(jobs: list[Job], address: str) -> list[JobResult]:
    """Grade ``jobs`` as Ray tasks (one CPU each) on the cluster at ``address`` ("auto": the
    cluster this machine belongs to). Every node needs this environment (odlkit, nbgrader, the
    notebooks' dependencies); nothing else is shared, the jobs carry their files. The connection
    is retried and reported (:func:`odlkit.raystart.connect`)."""
    import ray

    from odlkit import raystart

    started_here = not ray.is_initialized()
    if started_here:
        raystart.connect(address)
    try:
        remote = ray.remote(num_cpus=1, max_retries=1)(grade_job)
        return ray.get([remote.remote(j) for j in jobs])
    finally:
        if started_here:
            ray.shutdown()


def ray_cpus(address: str) -> int:
    """CPUs of the Ray cluster at ``address`` (how many groups to make)."""
    import ray

    from odlkit import raystart

    started_here = not ray.is_initialized()
    if started_here:
        raystart.connect(address)
    try:
        return max(1, int(ray.cluster_resources().get("CPU", 1)))
    finally:
        if started_here:
            ray.shutdown()


def stage_results(results: list[JobResult], staged: Path, course_dir: Path, assignment: str) -> list[str]:
    """Unpack each graded student's notebooks under ``staged/<student>/<assignment>/`` with the
    submission's own ``timestamp.txt`` (late penalties are computed from it again). Returns them."""
    done = []
    for res in results:
        for student in res.graded(assignment):
            dest = staged / student / assignment
            dest.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(io.BytesIO(res.autograded[student])) as zf:
                zf.extractall(dest)
            ts = course_dir / "submitted" / student / assignment / "timestamp.txt"
            if ts.is_file():
                (dest / "timestamp.txt").write_bytes(ts.read_bytes())
            elif (dest / "timestamp.txt").exists():
                (dest / "timestamp.txt").unlink()
            done.append(student)
    return sorted(done)
