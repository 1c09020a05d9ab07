"""Drive nbgrader for the course: release, collect, autograde, feedback, export.

Every step runs the real ``nbgrader`` command in the course folder (``autograder/`` by
default, the folder holding ``nbgrader_config.py``), so what the tests exercise is what an
instructor runs. The functions take ``course_dir`` so tests can work on a temporary copy.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from odlkit.config import CHECKOUT

from . import gradebook as GB
from . import nbgrader_cli
from . import notebooks as nbs
from . import parallel as P
from . import warm as W

# The course (autograder/) lives in a repository checkout; an installed odlkit works on the
# course in the current directory.
REPO_ROOT = CHECKOUT if CHECKOUT is not None else Path.cwd()
COURSE_DIR = REPO_ROOT / "autograder"


class GradingError(RuntimeError):
    """A grading step failed as a whole (not one student's submission)."""


def release_folder(assignment: str) -> str:
    """``labs`` for assignments whose name starts with ``lab``, else ``chapters``."""
    return "labs" if assignment.startswith("lab") else "chapters"


def assignments(course_dir: Path = COURSE_DIR) -> list[str]:
    src = Path(course_dir) / "source"
    return sorted(p.name for p in src.iterdir() if p.is_dir() and any(p.glob("*.ipynb"))) if src.is_dir() else []


def _check_assignments(names, course_dir: Path) -> list[str]:
    known = assignments(course_dir)
    if not names:
        if not known:
            raise GradingError(f"no assignments under {Path(course_dir) / 'source'}: add "
                               "source/<assignment>/<assignment>.ipynb first")
        return known
    unknown = [n for n in names if n not in known]
    if unknown:
        raise GradingError(f"unknown assignment(s) {unknown}; the course has {known}")
    return list(names)


def nbgrader(args: list[str], course_dir: Path = COURSE_DIR, env: dict | None = None,
             log: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``nbgrader ARGS`` in ``course_dir`` with this interpreter.

    ``env`` entries are added to the environment (the grading kernel inherits them, e.g.
    ``ODL_QUICK=1``); see :func:`odlkit.grading.parallel.nbgrader_env`.
    """
    course_dir = Path(course_dir)
    if not (course_dir / "nbgrader_config.py").is_file():
        raise GradingError(f"{course_dir} has no nbgrader_config.py; pass the course folder (default {COURSE_DIR})")
    proc = subprocess.run(nbgrader_cli.command(args), cwd=course_dir, env=P.nbgrader_env(env),
                          capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    if log is not None:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        Path(log).write_text(output)
    if check and proc.returncode != 0:
        tail = "\n".join(output.splitlines()[-25:])
        raise GradingError(f"`nbgrader {' '.join(args)}` failed (exit {proc.returncode}) in {course_dir}:\n{tail}")
    return proc


# ------------------------------------------------------------------------------------------ release
RUN_PAST_TAG = "raises-exception"


def tag_run_past(nb) -> int:
    """Give every graded test cell and every solution cell of a *student* notebook the cell tag
    ``raises-exception``, so JupyterLab's Run All goes on past an exercise that is not solved
    yet (its ``NotImplementedError`` or failing test). Returns how many cells got the tag."""
    n = 0
    for c in nb.cells:
        m = nbs.nbmeta(c)
        if m.get("solution") or (m.get("grade") and c["cell_type"] == "code"):
            tags = c.setdefault("metadata", {}).setdefault("tags", [])
            if RUN_PAST_TAG not in tags:
                tags.append(RUN_PAST_TAG)
                n += 1
    return n


def release(names=None, course_dir: Path = COURSE_DIR, out_root: Path = REPO_ROOT, env=None) -> list[Path]:
    """``nbgrader generate_assignment`` each assignment and copy the student version into
    ``out_root/chapters/<a>/`` or ``out_root/labs/<a>/``. Returns the written notebooks.

    Student notebooks that no longer exist in the release are removed from the target
    folder (it is generated, never edited by hand); nothing else there is touched. Test and
    solution cells of the student version get the ``raises-exception`` tag (:func:`tag_run_past`);
    the instructor sources stay untagged.
    """
    course_dir, out_root = Path(course_dir), Path(out_root)
    written = []
    todo = _check_assignments(names, course_dir)
    GB.ensure_sqlite_gradebook(GB.url(course_dir))   # a new course: no `alembic` subprocess in nbgrader
    for a in todo:
        nbgrader(["generate_assignment", a, "--force"], course_dir, env=env)
        rel = course_dir / "release" / a
        for nb_path in sorted(rel.rglob("*.ipynb")):
            if ".ipynb_checkpoints" not in nb_path.parts:
                student_nb = nbformat.read(str(nb_path), as_version=4)
                if tag_run_past(student_nb):
                    nbformat.write(student_nb, str(nb_path))
        dest = out_root / release_folder(a) / a
        dest.mkdir(parents=True, exist_ok=True)
        released = {p.relative_to(rel) for p in rel.rglob("*") if p.is_file()}
        for old in dest.rglob("*.ipynb"):
            if old.relative_to(dest) not in released and ".ipynb_checkpoints" not in old.parts:
                old.unlink()
        for relpath in sorted(released):
            target = dest / relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(rel / relpath, target)
            if target.suffix == ".ipynb":
                written.append(target)
    return written


# ------------------------------------------------------------------------------------------ collect
@dataclass
class CollectResult:
    copied: list[tuple[str, str, str]] = field(default_factory=list)   # (student, assignment, notebook file)
    problems: list[str] = field(default_factory=list)                  # per-student, human readable


_MOODLE = re.compile(r"^(?P<student>.+?)_\d+_assignsubmission_\w*$")
_CANVAS_DUP = re.compile(r"-\d+$")


def _student_id(raw: str) -> str:
    m = _MOODLE.match(raw)
    raw = m.group("student") if m else raw
    sid = re.sub(r"[^A-Za-z0-9_.@-]+", "_", raw).strip("_.")
    return sid


def _notebook_index(course_dir: Path) -> dict[str, str]:
    """notebook stem -> assignment, from the instructor sources."""
    idx = {}
    for a in assignments(course_dir):
        for nb in (Path(course_dir) / "source" / a).glob("*.ipynb"):
            idx[nb.stem] = a
    return idx


def _classify(rel: Path, nb_index: dict[str, str], assignment: str | None, student_regex: re.Pattern | None):
    """(student, assignment, notebook stem) for one submitted file, or raise ValueError."""
    parts = rel.parts
    stem = rel.stem
    if student_regex is not None:
        m = student_regex.search(str(rel))
        if not m:
            raise ValueError(f"{rel}: does not match --student-regex {student_regex.pattern!r}")
        student = m.group("student")
        nb_stem = next((s for s in sorted(nb_index, key=len, reverse=True) if s in rel.name), None)
    elif len(parts) >= 3 and parts[-2] in set(nb_index.values()):      # student/assignment/nb.ipynb
        student, nb_stem = parts[-3], _CANVAS_DUP.sub("", stem)
    elif len(parts) >= 2:                                                # student/nb.ipynb (Moodle)
        student, nb_stem = parts[-2], _CANVAS_DUP.sub("", stem)
    else:                                                                # flat LMS file (Canvas)
        base = _CANVAS_DUP.sub("", stem)
        nb_stem = next((s for s in sorted(nb_index, key=len, reverse=True)
                        if base.endswith("_" + s) or base == s), None)
        if nb_stem is None or base == nb_stem:
            raise ValueError(f"{rel}: cannot tell the student from a flat file name; expected "
                             "<student>_..._<notebook>.ipynb (Canvas) or a folder per student")
        student = base[: -len(nb_stem) - 1].split("_", 1)[0]
    if nb_stem not in nb_index:
        raise ValueError(f"{rel}: {nb_stem}.ipynb is not a notebook of this course "
                         f"(known: {sorted(nb_index)})")
    a = nb_index[nb_stem]
    if assignment and a != assignment:
        raise ValueError(f"{rel}: belongs to {a}, not to --assignment {assignment}")
    sid = _student_id(student)
    if not sid:
        raise ValueError(f"{rel}: empty student id")
    return sid, a, nb_stem


def collect(src: Path, course_dir: Path = COURSE_DIR, assignment: str | None = None,
            student_regex: str | None = None) -> CollectResult:
    """Copy submissions from a folder or a .zip into ``submitted/<student>/<assignment>/``.

    Accepted layouts: ``<student>/<assignment>/<nb>.ipynb`` (nbgrader, JupyterHub exchange
    copies), ``<student>/<nb>.ipynb`` (a folder per student, Moodle's export), flat
    ``<student>_<anything>_<nb>.ipynb`` (Canvas' export), or any layout with
    ``student_regex`` (a regex with a ``(?P<student>...)`` group searched in the path).
    Each student's submission time (the file time, or the zip entry time) goes to
    ``timestamp.txt`` for nbgrader's late-penalty logic. Files that are not valid notebooks
    are still copied (nbgrader then gives that student 0 with an error) and reported.
    """
    src, course_dir = Path(src), Path(course_dir)
    if not src.exists():
        raise GradingError(f"{src} does not exist: pass a folder or a .zip of submissions")
    rx = re.compile(student_regex) if student_regex else None
    if rx is not None and "student" not in rx.groupindex:
        raise GradingError(f"--student-regex {student_regex!r} needs a (?P<student>...) group")
    nb_index = _notebook_index(course_dir)
    if not nb_index:
        raise GradingError(f"no instructor notebooks under {course_dir / 'source'}")
    res = CollectResult()
    with tempfile.TemporaryDirectory() as tmp:
        times = {}
        if zipfile.is_zipfile(src):
            with zipfile.ZipFile(src) as z:
                for info in z.infolist():
                    name = Path(info.filename)
                    if ".." in name.parts or name.is_absolute():
                        res.problems.append(f"{info.filename}: unsafe path in zip, skipped")
                        continue
                    z.extract(info, tmp)
                    times[name] = dt.datetime(*info.date_time)
            root = Path(tmp)
        elif src.is_dir():
            root = src
        else:
            raise GradingError(f"{src} is neither a folder nor a zip file")
        files = sorted(p for p in root.rglob("*.ipynb")
                       if p.is_file() and ".ipynb_checkpoints" not in p.parts and "__MACOSX" not in p.parts)
        if not files:
            raise GradingError(f"no .ipynb files found in {src}")
        for f in files:
            rel = f.relative_to(root)
            try:
                student, a, nb_stem = _classify(rel, nb_index, assignment, rx)
            except ValueError as e:
                res.problems.append(str(e))
                continue
            dest_dir = course_dir / "submitted" / student / a
            dest_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dest_dir / f"{nb_stem}.ipynb")
            when = times.get(rel) or dt.datetime.fromtimestamp(f.stat().st_mtime)
            ts = dest_dir / "timestamp.txt"
            if not ts.exists() or ts.read_text().strip() < when.strftime("%Y-%m-%d %H:%M:%S.%f"):
                ts.write_text(when.strftime("%Y-%m-%d %H:%M:%S.%f"))
            res.copied.append((student, a, f"{nb_stem}.ipynb"))
            try:
                nbs.read_notebook(dest_dir / f"{nb_stem}.ipynb")
            except ValueError as e:
                res.problems.append(f"student {student}, {a}: {e}; it will score 0 until fixed")
    return res


# ---------------------------------------------------------------------------------------- autograde
@dataclass
class StudentResult:
    student: str
    assignment: str
    score: float | None = None
    max_score: float | None = None
    auto_score: float | None = None
    grades: dict[str, float | None] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)      # why the submission could not be graded
    cell_errors: list[str] = field(default_factory=list)  # exceptions/timeouts in graded notebooks
    findings: list[str] = field(default_factory=list)     # integrity audit (edited tests, monkeypatching)
    needs_manual_grade: bool = False
    delegations: list[str] = field(default_factory=list)  # test cells failed for calling the kit's implementation
    grading_seconds: float | None = None                   # wall time of this student's run (parallel runs)


def grading_env(full: bool = False) -> dict:
    """Environment of the grading kernels from the command line: the notebooks' quick sizes
    (``ODL_QUICK=1``) unless ``full``, and TensorFlow's C++ start-up log quieted (it only
    fills the feedback). Values already set in the caller's environment win."""
    env = {} if full else {"ODL_QUICK": "1"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return {k: os.environ.get(k, v) for k, v in env.items()}


def _submitted(course_dir: Path, assignment: str, students=None) -> list[str]:
    base = course_dir / "submitted"
    found = sorted(p.parent.name for p in base.glob(f"*/{assignment}") if p.is_dir()) if base.is_dir() else []
    if students:
        missing = sorted(set(students) - set(found))
        if missing:
            raise GradingError(f"no submission of {assignment} for {missing} under {base}")
        found = [s for s in found if s in students]
    return found


def _delegations(nb) -> list[str]:
    """``grade_id (points): message`` of every graded test cell that failed with a
    :class:`odlkit.exercises.DelegationError` (a solution calling the kit's implementation)."""
    from odlkit.exercises import DELEGATION_MARK

    out = []
    for c in nb.cells:
        if not nbs.is_autograded_test(c):
            continue
        for o in c.get("outputs", []):
            if o.get("output_type") == "error" and (
                    o.get("ename") == "DelegationError" or str(o.get("evalue", "")).startswith(DELEGATION_MARK)):
                pts = nbs.nbmeta(c).get("points", 0)
                out.append(f"{nbs.grade_id(c)} (0 of {pts:g} points): {o.get('evalue', '')}")
                break
    return out


def _cell_errors(nb) -> list[str]:
    out = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            if o.get("output_type") == "error":
                where = nbs.grade_id(c) or "(unlabelled cell)"
                msg = f"{where}: {o.get('ename')}"
                if o.get("evalue"):
                    msg += f": {str(o.get('evalue'))[:120]}"
                if msg not in out:
                    out.append(msg)
    return out


def autograde(assignment: str, course_dir: Path = COURSE_DIR, students=None, force: bool = True,
              env: dict | None = None, jobs: int | None = 1, ray_address: str | None = None) -> list[StudentResult]:
    """Autograde every (or the given) student's submission of ``assignment``.

    ``jobs`` students are graded at once (``None``: the cores; see :mod:`odlkit.grading.parallel`),
    or with ``ray_address`` as Ray tasks on that cluster; the gradebook, the graded notebooks and
    the report are the same as with ``jobs=1``, which runs nbgrader's own sequential batch.

    One student's broken submission (invalid JSON, an exception at import, an infinite
    loop, a huge allocation) gives that student an error or zeros; the others are graded.
    Returns one result per student and writes them to
    ``autograded/grading_report_<assignment>.json``.
    """
    course_dir = Path(course_dir)
    _check_assignments([assignment], course_dir)
    who = _submitted(course_dir, assignment, students)
    if not who:
        raise GradingError(f"no submissions of {assignment} under {course_dir / 'submitted'}: run collect first")
    release_dir = course_dir / "release" / assignment
    if not release_dir.is_dir():
        GB.ensure_sqlite_gradebook(GB.url(course_dir))
        nbgrader(["generate_assignment", assignment, "--force"], course_dir, env=env)
    results = {s: StudentResult(s, assignment) for s in who}
    for s in who:
        for nb_path in sorted((course_dir / "submitted" / s / assignment).glob("*.ipynb")):
            try:
                sub = nbs.read_notebook(nb_path)
            except ValueError as e:
                results[s].errors.append(f"{e}: scored 0; ask the student to resubmit, or repair the file "
                                         f"and re-run `autograde {assignment} --student {s}`")
                continue
            rel_nb = release_dir / nb_path.name
            if rel_nb.is_file():
                results[s].findings += [f"{nb_path.name}: {f}" for f in
                                        nbs.audit_submission(nbformat.read(str(rel_nb), 4), sub)]
    log = course_dir / "autograded" / f"autograde_{assignment}.log"
    jobs = P.default_jobs() if jobs is None else int(jobs)
    if jobs < 1:
        raise GradingError(f"--jobs {jobs}: give at least 1")
    if ray_address or (jobs > 1 and len(who) > 1):
        failed, output, seconds = _autograde_parallel(assignment, course_dir, who, force, env, jobs, ray_address)
        for s, t in seconds.items():
            results[s].grading_seconds = round(t, 2)
    else:
        failed, output = _autograde_sequential(assignment, course_dir, who if students else None, force, env, log)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(output)
    for s in failed & set(results):
        if not results[s].errors:
            results[s].errors.append(f"nbgrader could not grade this submission (scored 0); see {log}")
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(GB.url(course_dir)) as gb:
        for s, r in results.items():
            try:
                sub = gb.find_submission(assignment, s)
            except MissingEntry:
                r.errors.append("no grade recorded")
                continue
            r.score, r.max_score = sub.score, sub.max_score
            r.auto_score = sum((g.auto_score or 0.0) for nb in sub.notebooks for g in nb.grades)
            r.grades = {g.name: g.score for nb in sub.notebooks for g in nb.grades}
            r.needs_manual_grade = bool(sub.needs_manual_grade)
    for s, r in results.items():
        for nb_path in sorted((course_dir / "autograded" / s / assignment).glob("*.ipynb")):
            try:
                graded = nbformat.read(str(nb_path), 4)
                r.cell_errors += [f"{nb_path.name}: {e}" for e in _cell_errors(graded)]
                r.delegations += [f"{nb_path.name}: {e}" for e in _delegations(graded)]
            except Exception as e:  # report, don't crash the batch
                r.cell_errors.append(f"{nb_path.name}: cannot read graded notebook ({e})")
    out = [results[s] for s in who]
    report = course_dir / "autograded" / f"grading_report_{assignment}.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps([asdict(r) for r in out], indent=1))
    return out


def _failed_students(assignment: str, output: str) -> set[str]:
    return set(re.findall(rf"error processing assignment '{re.escape(assignment)}' for student '([^']+)'", output))


def _autograde_sequential(assignment, course_dir, students, force, env, log) -> tuple[set[str], str]:
    """nbgrader's own batch (one run per student when ``students`` is given)."""
    args = ["autograde", assignment] + (["--force"] if force else [])
    runs = [args + ["--student", s] for s in students] if students else [args]
    failed, output = set(), ""
    for run in runs:
        bad, out = _run_autograde(assignment, run, course_dir, env, log, earlier=output)
        output += out
        failed |= bad
    return failed, output


def _run_autograde(assignment, args, course_dir, env, log, earlier: str = "") -> tuple[set[str], str]:
    """One nbgrader autograde run: (students it reports as failed, its output). A run that exits
    non-zero without naming a failed student failed as a whole: its log (after ``earlier``, the
    output of the runs before it) is written and GradingError raised."""
    proc = nbgrader(args, course_dir, env=env, check=False)
    out = proc.stdout + proc.stderr
    bad = _failed_students(assignment, out)
    if proc.returncode != 0 and not bad:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(earlier + out)
        tail = "\n".join(out.splitlines()[-25:])
        raise GradingError(f"nbgrader autograde failed as a whole (exit {proc.returncode}); log {log}:\n{tail}")
    return bad, out


def _zygote_env(env: dict | None) -> dict:
    """The environment of the nbgrader processes' kernels, as a shared zygote must import in it:
    nbgrader's (:func:`odlkit.grading.parallel.nbgrader_env`) with the grading sizes on, as
    :class:`odlkit.grading.limits.LimitedExecute` sets them."""
    from .limits import GRADING_ENV

    out = P.nbgrader_env(env)
    out.setdefault(GRADING_ENV, "1")
    return out


def _autograde_parallel(assignment, course_dir, who, force, env, jobs, ray_address):
    """Run the notebooks in parallel sandboxes, record their grades here serially (see
    :mod:`odlkit.grading.parallel`). Returns (failed students, log text, seconds per student)."""
    todo = [s for s in who if force or not (course_dir / "autograded" / s / assignment).is_dir()]
    if not todo:
        return set(), "", {}
    from nbgrader.api import Gradebook

    with Gradebook(GB.url(course_dir)) as gb:
        for s in sorted(todo):  # in the order a sequential batch adds them (the export lists them so)
            gb.update_or_create_student(s)
    snapshot = GB.snapshot(GB.url(course_dir))
    if ray_address:  # a group per cluster CPU (a Ray task each), else a group per local job
        groups = P.split(sorted(todo), P.ray_cpus(ray_address))
        runs = P.run_ray([P.make_job(course_dir, assignment, g, snapshot, env) for g in groups], ray_address)
    else:
        groups = P.split(sorted(todo), jobs)
        # one warm zygote for every group, importing while the first nbgrader processes start (warm.py)
        sources = sorted((course_dir / "source" / assignment).glob("*.ipynb"))
        shared, zygote = W.start_shared(sources[0], _zygote_env(env)) if len(sources) == 1 else ({}, None)
        try:
            runs = P.run_local([P.make_job(course_dir, assignment, g, snapshot, {**(env or {}), **shared})
                                for g in groups], jobs)
        finally:
            if zygote is not None:
                zygote.stop()
    output = "".join(f"==== {', '.join(r.students)}: {r.seconds:.1f} s on {r.host} ====\n{r.output}" for r in runs)
    seconds = {s: r.seconds / len(r.students) for r in runs for s in r.students}
    staged = Path(tempfile.mkdtemp(prefix=".replay-", dir=course_dir))
    try:
        good = P.stage_results(runs, staged, course_dir, assignment)
        again = set(todo) - set(good)
        if good:
            proc = nbgrader(["autograde", assignment, "--force", f"--CourseDirectory.submitted_directory={staged}"],
                            course_dir, env={P.REPLAY_ENV: "1"}, check=False)
            out = proc.stdout + proc.stderr
            output += f"==== recording {len(good)} graded submission(s) in the gradebook ====\n{out}"
            bad = _failed_students(assignment, out)
            if proc.returncode != 0 and not bad:
                tail = "\n".join(out.splitlines()[-25:])
                raise GradingError(f"recording the parallel grades failed (exit {proc.returncode}):\n{tail}")
            again |= bad
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    failed = set()
    if again:  # graded the sequential way, so the gradebook holds what a sequential run records
        f, out = _autograde_batch(assignment, course_dir, sorted(again), env,
                                  course_dir / "autograded" / f"autograde_{assignment}.log")
        failed |= f
        output += f"==== graded again the sequential way: {sorted(again)} ====\n{out}"
    return failed, output, seconds


def _autograde_batch(assignment, course_dir, students, env, log) -> tuple[set[str], str]:
    """nbgrader's own sequential batch over just ``students``: one nbgrader run (its start costs
    tens of seconds on a loaded machine) over a folder holding only their submissions, instead
    of one run per student."""
    staged = Path(tempfile.mkdtemp(prefix=".again-", dir=course_dir))
    try:
        for s in students:
            shutil.copytree(course_dir / "submitted" / s / assignment, staged / s / assignment)   # + timestamp.txt
        args = ["autograde", assignment, "--force", f"--CourseDirectory.submitted_directory={staged}"]
        return _run_autograde(assignment, args, course_dir, env, log)
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _num(x) -> str:
    return "-" if x is None else f"{x:g}"


def format_results(results: list[StudentResult]) -> str:
    lines = [f"{'student':<20} {'auto':>6} {'score':>6} {'max':>6}  notes"]
    for r in results:
        notes = []
        if r.errors:
            notes.append("ERROR: " + "; ".join(r.errors))
        if r.needs_manual_grade:
            notes.append("needs manual grading")
        if r.findings:
            notes.append(f"{len(r.findings)} integrity finding(s)")
        if r.delegations:
            notes.append(f"{len(r.delegations)} test(s) failed: DELEGATES TO THE KIT")
        if r.cell_errors:
            notes.append(f"{len(r.cell_errors)} cell error(s)")
        lines.append(f"{r.student:<20} {_num(r.auto_score):>6} {_num(r.score):>6} {_num(r.max_score):>6}  {', '.join(notes)}")
        for e in r.errors:
            lines.append(f"{'':<22}error: {e}")
        for e in r.findings:
            lines.append(f"{'':<22}review: {e}")
        for e in r.delegations:
            lines.append(f"{'':<22}delegates: {e}")
        for e in r.cell_errors[:6]:
            lines.append(f"{'':<22}cell: {e}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------- feedback & export
def _autograded(course_dir: Path, assignment: str) -> list[str]:
    base = Path(course_dir) / "autograded"
    return sorted(p.parent.name for p in base.glob(f"*/{assignment}") if p.is_dir()) if base.is_dir() else []


def feedback(names=None, course_dir: Path = COURSE_DIR, exchange: bool = False, jobs: int | None = 1) -> list[Path]:
    """``nbgrader generate_feedback`` (HTML per student in ``feedback/``); with ``exchange``
    also ``release_feedback`` to the JupyterHub exchange. Without ``names``: every assignment
    that has autograded submissions (like ``autograde`` takes those with submissions).

    ``jobs`` (``None``: the cores) nbgrader processes make the pages at once, each over its own
    group of students (:func:`_feedback_parallel`); the pages are those of one run."""
    course_dir = Path(course_dir)
    if names:
        todo = _check_assignments(names, course_dir)
    else:
        todo = [a for a in assignments(course_dir) if _autograded(course_dir, a)]
        if not todo:
            raise GradingError(f"nothing autograded under {course_dir / 'autograded'}: run autograde first")
    jobs = P.default_jobs() if jobs is None else int(jobs)
    if jobs < 1:
        raise GradingError(f"--jobs {jobs}: give at least 1")
    out = []
    for a in todo:
        who = _autograded(course_dir, a)
        if jobs > 1 and len(who) > 1:
            _feedback_parallel(a, course_dir, who, jobs)
        else:
            nbgrader(["generate_feedback", a, "--force"], course_dir)
        if exchange:
            nbgrader(["release_feedback", a], course_dir)
        out += sorted((course_dir / "feedback").glob(f"*/{a}/*.html"))
    return out


def _feedback_parallel(assignment: str, course_dir: Path, students: list[str], jobs: int) -> None:
    """``generate_feedback`` for ``students`` in ``jobs`` nbgrader processes at once. Each process
    reads its group's graded notebooks through a folder of links (``autograded_directory`` set to
    it: nbgrader reads only ``<student>/<assignment>/`` there) and writes ``feedback/`` of the
    course as one run does; the gradebook is only read. The pages do not depend on the grouping:
    nbgrader makes each one from that student's graded notebook and gradebook rows alone."""
    groups = P.split(students, jobs)
    staged = Path(tempfile.mkdtemp(prefix=".feedback-", dir=course_dir))
    try:
        runs = []
        for i, group in enumerate(groups):
            for s in group:
                (staged / str(i) / s).mkdir(parents=True)
                (staged / str(i) / s / assignment).symlink_to((course_dir / "autograded" / s / assignment).resolve(),
                                                             target_is_directory=True)
            runs.append(["generate_feedback", assignment, "--force",
                         f"--CourseDirectory.autograded_directory={staged / str(i)}"])
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(lambda args: nbgrader(args, course_dir), runs))
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def formgrader_command(course_dir: Path = COURSE_DIR, euid: int | None = None) -> list[str]:
    """JupyterLab in the course folder (the nbgrader formgrader is in its *Nbgrader* menu);
    as root (a container, a VM) with ``--allow-root``, which Jupyter otherwise demands."""
    euid = os.geteuid() if euid is None and hasattr(os, "geteuid") else euid
    cmd = [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={Path(course_dir)}"]
    if euid == 0:
        cmd.append("--allow-root")
    return cmd


def export(csv_path: Path, course_dir: Path = COURSE_DIR) -> dict[str, float]:
    """``nbgrader export`` to ``csv_path`` (one row per student and assignment, the format
    LMS gradebooks import); returns each student's course total."""
    csv_path = Path(csv_path).resolve()
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    nbgrader(["export", f"--to={csv_path}"], course_dir)
    return student_totals(csv_path)


def student_totals(csv_path: Path) -> dict[str, float]:
    totals: dict[str, float] = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            totals[row["student_id"]] = totals.get(row["student_id"], 0.0) + float(row["score"] or 0)
    return totals
