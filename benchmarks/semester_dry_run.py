"""A semester's grading, dry: synthetic students x every assignment, every score checked.

For each assignment (the course's, plus the grading fixture ``fx_signals``): release it with
nbgrader into a temporary course, build one submission per student cycling through these kinds,
pack them as a Moodle-style zip (``<Name>_<id>_assignsubmission_file_/<notebook>.ipynb``),
collect, autograde in parallel (``--jobs``), generate feedback, export the CSV, and compare every
student's autograded points and exported score with the expected ones:

* ``full``: the instructor's solutions; every autograded point.
* ``blank``: the release as handed out; 0.
* ``partial``: only the first exercise solved; exactly that exercise's test points.
* ``wrong``: all solved, but the first exercise's functions return plausible wrong values (numbers
  and arrays shifted by 1, also inside tuples, lists, dicts and dataclasses, booleans (also
  boolean arrays) flipped, strings with a ``_`` appended: right type and shape); that exercise's points lost.
* ``tampered``: only the first exercise solved, every test cell edited to ``pass`` and the
  first exercise's tests deleted (nbgrader restores them); that exercise's points.
* ``huge_alloc``: all solved, but the first exercise's cell first allocates without end
  (the kernel's memory limit turns it into MemoryError); that exercise's points lost.
* ``not_json``: a truncated file; 0 and an error for that student, the rest still graded.

Writes ``benchmarks/results/semester_dry_run.json`` with one row per assignment under
``assignments``: ``{assignment, students, jobs, seconds_per_student, wrong_scores}`` (plus the
per-kind counts and each wrong score's details).

    .venv/bin/python benchmarks/semester_dry_run.py                         # 30 students, every assignment
    .venv/bin/python benchmarks/semester_dry_run.py --students 7 --assignments fx_signals ch00_getting_started
    .venv/bin/python benchmarks/semester_dry_run.py --students 4 --both-ways --assignments lab3_federated

``--both-ways`` first grades the submissions with every cell run at the quick sizes
(``ODL_GRADER_PRUNE=0 ODL_GRADING=0``: nbgrader's way), then the measured pruned run with grading
sizes, and compares every student's per-cell grades (``every_cell_run_comparison``).
``cpu_seconds_per_student`` (CPU of nbgrader and its kernels) does not depend on the load as the
wall time does; ``cpu_seconds`` has it per step (release, autograde, feedback, export).
``--merge`` keeps the rows already in ``--out`` for the assignments not run now (a semester run in
parts; every row keeps its own date and load before/after); ``--keep DIR`` keeps each assignment's
course (graded notebooks, logs, feedback) under ``DIR/<assignment>``.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import nbformat

from odlkit.grading import course as C
from odlkit.grading import notebooks as N
from odlkit.grading import parallel as P
from odlkit.grading import prune as PR
from odlkit.grading import warm as W

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "grading_fixtures" / "source"
KINDS = ["full", "blank", "partial", "wrong", "tampered", "huge_alloc", "not_json"]

SHIFT = '''
import functools as _odl_ft
import numpy as _odl_np


def _odl_shift(v):
    import dataclasses as _odl_dc

    if _odl_dc.is_dataclass(v) and not isinstance(v, type):   # e.g. odlkit.weights.HeadWeights: its arrays
        return _odl_dc.replace(v, **{f.name: _odl_shift(getattr(v, f.name)) for f in _odl_dc.fields(v) if f.init})
    if isinstance(v, tuple) and hasattr(v, "_fields"):         # a NamedTuple
        return type(v)(*(_odl_shift(x) for x in v))
    if isinstance(v, (bool, _odl_np.bool_)):
        return not v
    if isinstance(v, str):                                     # e.g. layer names: another name
        return v + "_"
    if isinstance(v, (int, float, _odl_np.number)):
        return v + 1
    if isinstance(v, _odl_np.ndarray) and v.dtype.kind in "fiu":
        return v + 1
    if isinstance(v, _odl_np.ndarray) and v.dtype.kind == "b":   # e.g. a pruning mask
        return ~v
    if isinstance(v, (list, tuple)):
        return type(v)(_odl_shift(x) for x in v)
    if isinstance(v, dict):
        return {k: _odl_shift(x) for k, x in v.items()}
    return v


def _odl_wrong(f):
    @_odl_ft.wraps(f)
    def wrong(*args, **kwargs):
        return _odl_shift(f(*args, **kwargs))
    return wrong


'''
HUGE_ALLOC = "_odl_blocks = []\nwhile True:\n    _odl_blocks.append(b'x' * 2**27)\n"


def find_source(assignment: str) -> Path:
    for base in (C.COURSE_DIR / "source", FIXTURES):
        if (base / assignment).is_dir():
            return base / assignment
    raise SystemExit(f"no source for {assignment} in autograder/source or tests/grading_fixtures/source")


def impl_cells(nb, exercise: str) -> list:
    return [c for c in nb.cells if N.nbmeta(c).get("solution") and c.cell_type == "code"
            and N.exercise_of(N.grade_id(c)) == exercise]


def functions_of(source: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]


def first_wrongable(src, exercises) -> str | None:
    """The first exercise whose solution defines functions (their outputs can be shifted)."""
    for ex in exercises:
        if any(functions_of(c.source) for c in impl_cells(src, ex)):
            return ex
    return None


def submission(kind: str, src, rel, exercises):
    """(notebook or raw text, exercises whose test points it must earn)."""
    first = exercises[:1]
    if kind == "full":
        return N.solved(rel, src), exercises
    if kind == "blank":
        return rel, []
    if kind == "partial":
        return N.solved(rel, src, first), first
    if kind == "tampered":
        nb = N.solved(rel, src, first)
        first_tests = {N.grade_id(c) for c in nb.cells if N.is_autograded_test(c) and N.exercise_of(N.grade_id(c)) in first}
        for c in nb.cells:
            if N.is_autograded_test(c):
                c.source = "pass"
        nb.cells = [c for c in nb.cells if N.grade_id(c) not in first_tests]
        return nb, first
    if kind == "wrong":
        ex = first_wrongable(src, exercises)
        nb = N.solved(rel, src)
        if ex is None:
            return nb, exercises
        for c in impl_cells(nb, ex):
            names = functions_of(c.source)
            if names:
                c.source = SHIFT + c.source + "\n\n" + "\n".join(f"{n} = _odl_wrong({n})" for n in names)
        return nb, [e for e in exercises if e != ex]
    if kind == "huge_alloc":
        nb = N.solved(rel, src)
        for c in impl_cells(nb, exercises[0])[:1]:
            c.source = HUGE_ALLOC + c.source
        return nb, exercises[1:]
    if kind == "not_json":
        return '{"cells": [ {"cell_type": "code", ', []
    raise ValueError(kind)


def child_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process's finished children and their waited-for
    descendants: nbgrader, its grading kernels. Load-independent, unlike wall time."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def dry_run(assignment: str, students: int, jobs: int, timeout: int, both_ways: bool = False,
            keep: Path | None = None) -> dict:
    src_dir = find_source(assignment)
    with tempfile.TemporaryDirectory(prefix="odl-semester-") as tmp:
        tmp = Path(tmp)
        course = tmp / "course"
        (course / "source").mkdir(parents=True)
        shutil.copy(C.COURSE_DIR / "nbgrader_config.py", course)
        shutil.copytree(src_dir, course / "source" / assignment, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        cpu0 = child_cpu_seconds()
        t0 = time.perf_counter()
        C.release([assignment], course, tmp / "out")
        t_release = time.perf_counter() - t0
        cpu_release = child_cpu_seconds() - cpu0
        nb_name = next((course / "source" / assignment).glob("*.ipynb")).name
        src = nbformat.read(str(course / "source" / assignment / nb_name), 4)
        rel = nbformat.read(str(tmp / "out" / C.release_folder(assignment) / assignment / nb_name), 4)
        exercises = N.exercises(src)
        expected, kinds = {}, {}
        with zipfile.ZipFile(tmp / "moodle.zip", "w") as z:
            for i in range(students):
                kind = KINDS[i % len(KINDS)]
                folder = f"Student {i:03d}_{4000 + i}_assignsubmission_file_"
                sid = f"Student_{i:03d}"
                nb, earns = submission(kind, src, copy.deepcopy(rel), exercises)
                expected[sid] = N.expected_auto_points(src, earns) if earns else 0.0
                kinds[sid] = kind
                z.writestr(f"{folder}/{nb_name}", nb if isinstance(nb, str) else nbformat.writes(nb))
        t0 = time.perf_counter()
        collected = C.collect(tmp / "moodle.zip", course)
        t_collect = time.perf_counter() - t0
        env = {"ODL_QUICK": "1", "ODL_GRADER_TIMEOUT": str(timeout), "TF_CPP_MIN_LOG_LEVEL": "2"}
        unpruned_results = None
        if both_ways:   # first with every cell run (nbgrader's way), then the pruned run that is measured
            t1 = time.perf_counter()
            unpruned_results = {r.student: r for r in C.autograde(assignment, course, env={**env, PR.PRUNE_ENV: "0", "ODL_GRADING": "0"},
                                                                    jobs=jobs)}
            t_every = time.perf_counter() - t1
        cpu0 = child_cpu_seconds()
        t0 = time.perf_counter()
        results = {r.student: r for r in C.autograde(assignment, course, env=env, jobs=jobs)}
        t_autograde = time.perf_counter() - t0
        cpu_autograde = child_cpu_seconds() - cpu0
        log = (course / "autograded" / f"autograde_{assignment}.log").read_text()
        warm_kernels = log.count(W.LOG_MARK)
        regrades = log.count(PR.REGRADE_MARK)   # pruned runs graded again with every cell (a resource ran out)
        unpruned = None
        if unpruned_results is not None:   # every cell's grade must agree
            differ = {sid: {"pruned": results[sid].grades if sid in results else None, "every_cell": r.grades}
                      for sid, r in unpruned_results.items()
                      if sid not in results or r.grades != results[sid].grades or r.auto_score != results[sid].auto_score}
            unpruned = {"students": len(unpruned_results), "seconds_per_student": round(t_every / students, 2),
                        "grades_differ": differ, "same_grades": not differ and set(unpruned_results) == set(results)}
        skipped_cells = sorted({ln.split(PR.LOG_MARK, 1)[1].strip() for ln in log.splitlines()
                                if PR.LOG_MARK in ln and PR.REGRADE_MARK not in ln})
        cpu0 = child_cpu_seconds()
        t0 = time.perf_counter()
        html = C.feedback([assignment], course, jobs=jobs)
        t_feedback = time.perf_counter() - t0
        cpu_feedback = child_cpu_seconds() - cpu0
        cpu0 = child_cpu_seconds()
        t0 = time.perf_counter()
        totals = C.export(tmp / "grades.csv", course)
        t_export = time.perf_counter() - t0
        cpu_export = child_cpu_seconds() - cpu0
        if keep is not None:   # the course with its graded notebooks and feedback, to look at afterwards
            shutil.rmtree(keep / assignment, ignore_errors=True)
            shutil.copytree(course, keep / assignment, symlinks=True, dirs_exist_ok=True)
    wrong = {}
    for sid, want in expected.items():
        r = results.get(sid)
        got_auto = None if r is None else (r.auto_score or 0.0)
        got_csv = totals.get(sid)
        not_graded_ok = kinds[sid] == "not_json" and r is not None and r.errors
        if got_auto != want or got_csv != want or (kinds[sid] != "not_json" and r.errors) or (
                kinds[sid] == "not_json" and not not_graded_ok):
            wrong[sid] = {"kind": kinds[sid], "expected": want, "autograded": got_auto, "exported": got_csv,
                          "grades": None if r is None else r.grades,
                          "cell_errors": None if r is None else r.cell_errors[:4]}
    per_student = [r.grading_seconds for r in results.values() if r.grading_seconds is not None]
    return {
        "assignment": assignment,
        "students": students,
        "jobs": jobs,
        "seconds_per_student": round(t_autograde / students, 2),
        "wrong_scores": len(wrong),
        "wrong": wrong,
        "kinds": {k: sum(1 for v in kinds.values() if v == k) for k in KINDS},
        "seconds": {"release": round(t_release, 1), "collect": round(t_collect, 2), "autograde": round(t_autograde, 1),
                    "feedback": round(t_feedback, 1), "export": round(t_export, 1)},
        "cpu_seconds_per_student": round(cpu_autograde / students, 2),
        "cpu_seconds": {"release": round(cpu_release, 1), "autograde": round(cpu_autograde, 1),
                        "feedback": round(cpu_feedback, 1), "export": round(cpu_export, 1)},
        "feedback_cpu_seconds_per_student": round(cpu_feedback / students, 2),
        "warm_kernels": warm_kernels,
        "cells_not_run": skipped_cells,
        "every_cell_regrades": regrades,
        "every_cell_run_comparison": unpruned,
        "one_student_run_seconds_median": round(sorted(per_student)[len(per_student) // 2], 1) if per_student else None,
        "feedback_pages": len(html),
        "collect_problems": len(collected.problems),
    }


def write_results(args, rows: list[dict], names: list[str], t0: float, load_before, earlier: dict | None = None) -> dict:
    """Write the JSON; with ``earlier`` (``--merge``), its rows of the assignments not run now are kept
    (each row keeps its own date and load) and ``not_run`` lists every assignment of the semester
    without a row."""
    earlier_commands = []
    if earlier is not None:
        earlier_commands = earlier.get("commands") or [earlier.get("command", "")]
        now = {r["assignment"] for r in rows}
        rows = [r for r in earlier.get("assignments", []) if r["assignment"] not in now] + rows
        names = list(dict.fromkeys([*semester(), *names]))
    res = {
        **summary(rows, names),
        "total_seconds": round(time.perf_counter() - t0, 1),
        "goal_seconds_per_student": GOAL_SECONDS_PER_STUDENT,
        "machine": {**machine(), "loadavg_1min_before_after": [round(load_before[0], 1), round(os.getloadavg()[0], 1)],
                    "note": "times scale with the machine's load: compare runs at similar load"},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": "benchmarks/semester_dry_run.py " + " ".join(sys.argv[1:]),
        "commands": [*earlier_commands, "benchmarks/semester_dry_run.py " + " ".join(sys.argv[1:])],
        "warm_kernels": not args.cold,
        "note": args.note,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    return res


GOAL_SECONDS_PER_STUDENT = 10
ROW_KEYS = {"assignment", "students", "jobs", "seconds_per_student", "wrong_scores", "seconds"}


def machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def summary(rows: list[dict], names: list[str]) -> dict:
    """The rows with what a results JSON derives from them: ``not_run`` (the assignments of
    ``names`` without a row) and ``totals``."""
    have = {r["assignment"] for r in rows}
    return {
        "assignments": rows,
        "not_run": [a for a in names if a not in have],
        "totals": {"assignments": len(rows), "submissions": sum(r["students"] for r in rows),
                   "wrong_scores": sum(r["wrong_scores"] for r in rows),
                   "autograde_seconds": round(sum(r["seconds"]["autograde"] for r in rows), 1),
                   "seconds_per_student": round(sum(r["seconds"]["autograde"] for r in rows)
                                                / max(1, sum(r["students"] for r in rows)), 2),
                   "assignments_within_goal": sum(r["seconds_per_student"] <= GOAL_SECONDS_PER_STUDENT for r in rows)},
    }


def read_result(path: Path) -> dict:
    """A results JSON of this benchmark, checked: a clear error (SystemExit) for any other file."""
    try:
        res = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SystemExit(f"--combine: {path} is not a dry-run result: {e}") from None
    rows = res.get("assignments") if isinstance(res, dict) else None
    if not isinstance(rows, list) or not rows:
        raise SystemExit(f"--combine: {path} is not a dry-run result: no 'assignments' rows")
    for i, r in enumerate(rows):
        missing = ROW_KEYS - set(r) if isinstance(r, dict) else ROW_KEYS
        if missing or not isinstance(r.get("seconds"), dict) or "autograde" not in r["seconds"]:
            raise SystemExit(f"--combine: {path} is not a dry-run result: row {i} lacks "
                             f"{sorted(missing) or ['seconds.autograde']}")
    return res


def combine(paths: list[Path], command: str = "") -> dict:
    """One results JSON from the rows of several runs: one row per assignment, the latest (by the
    row's ``date``; the later file on a tie) wins and keeps its own date and load; ``not_run`` and
    ``totals`` recomputed as a run of the whole semester would."""
    latest: dict[str, dict] = {}
    commands: list[str] = []
    warm: set = set()
    for path in paths:
        res = read_result(path)
        commands += res.get("commands") or [res.get("command", "")]
        warm.add(res.get("warm_kernels", True))
        for r in res["assignments"]:
            row = {**r, "date": r.get("date") or res.get("date", ""), "from_file": str(path)}
            old = latest.get(row["assignment"])
            if old is None or row["date"] >= old["date"]:
                latest[row["assignment"]] = row
    names = semester()
    order = {a: i for i, a in enumerate(names)}
    rows = sorted(latest.values(), key=lambda r: (order.get(r["assignment"], len(order)), r["assignment"]))
    names = list(dict.fromkeys([*names, *(r["assignment"] for r in rows)]))
    return {
        **summary(rows, names),
        "total_seconds": round(sum(sum(r["seconds"].values()) for r in rows), 1),
        "goal_seconds_per_student": GOAL_SECONDS_PER_STUDENT,
        "machine": {**machine(), "note": "rows of several runs: each row has its own date and load "
                                         "(loadavg_1min_before/after); compare rows at similar load"},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": command,
        "commands": [c for c in commands if c],
        "combined_from": [str(p) for p in paths],
        "warm_kernels": all(warm),
        "note": "combined (--combine): total_seconds is the sum of the rows' steps",
    }


def semester() -> list[str]:
    """The grading fixture and every course assignment."""
    return ["fx_signals", *C.assignments(C.COURSE_DIR)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--assignments", nargs="*", help="default: fx_signals and every course assignment")
    ap.add_argument("--students", type=int, default=30)
    ap.add_argument("--jobs", type=int, default=P.default_jobs())
    ap.add_argument("--timeout", type=int, default=int(os.environ.get("ODL_GRADER_TIMEOUT", "300")),
                    help="per-cell timeout of the grading kernels (s)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "semester_dry_run.json")
    ap.add_argument("--cold", action="store_true", help="every grading kernel a new interpreter (ODL_GRADER_WARM=0)")
    ap.add_argument("--both-ways", action="store_true",
                    help="also grade every submission with every cell run (ODL_GRADER_PRUNE=0) and compare each "
                         "cell's grade with the pruned run's")
    ap.add_argument("--both-ways-out", type=Path, default=None,
                    help="with --both-ways: also put each assignment's comparison into this JSON (rows of other "
                         "assignments kept), e.g. benchmarks/results/grading_both_ways.json")
    ap.add_argument("--keep", type=Path, help="copy each assignment's course (graded notebooks, feedback) to KEEP/<assignment>")
    ap.add_argument("--merge", action="store_true",
                    help="keep the rows of --out for assignments not run now (run the semester in parts)")
    ap.add_argument("--note", default="", help="a sentence stored with the results (e.g. why fewer students)")
    ap.add_argument("--combine", nargs="+", type=Path, metavar="RESULT_JSON",
                    help="grade nothing: write to --out one results JSON of these runs' rows (one per assignment, "
                         "the latest wins, each keeps its date and load; totals and not_run recomputed)")
    args = ap.parse_args()
    if args.combine:
        res = combine(args.combine, "benchmarks/semester_dry_run.py " + " ".join(sys.argv[1:]))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=1) + "\n")
        print(f"{len(res['assignments'])} rows from {len(args.combine)} files, {res['totals']['wrong_scores']} wrong "
              f"scores, not run: {', '.join(res['not_run']) or 'none'}; wrote {args.out}")
        return
    if args.cold:
        os.environ[W.WARM_ENV] = "0"
    names = args.assignments or semester()
    earlier = json.loads(args.out.read_text()) if args.merge and args.out.is_file() else None
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    rows = []
    print(f"{'assignment':<28}{'students':>9}{'jobs':>5}{'s/student':>10}{'wrong':>6}")
    for a in names:
        load_row = os.getloadavg()[0]
        row = dry_run(a, args.students, args.jobs, args.timeout, args.both_ways, args.keep)
        row["loadavg_1min_before"] = round(load_row, 1)
        row["loadavg_1min_after"] = round(os.getloadavg()[0], 1)
        row["date"] = time.strftime("%Y-%m-%d %H:%M:%S")
        rows.append(row)
        print(f"{a:<28}{row['students']:>9}{row['jobs']:>5}{row['seconds_per_student']:>10}{row['wrong_scores']:>6}",
              flush=True)
        for sid, w in row["wrong"].items():
            print(f"    WRONG {sid}: {w}")
        cmp_ = row["every_cell_run_comparison"]
        if cmp_ is not None:
            print(f"    every cell run: {cmp_['seconds_per_student']} s/student, same grades: {cmp_['same_grades']}")
        res = write_results(args, rows, names, t0, load_before, earlier)   # after every assignment: a stopped run keeps its rows
        if args.both_ways and args.both_ways_out:
            write_both_ways(args.both_ways_out, row)
    print(f"total {res['total_seconds']} s; wrote {args.out}")


def both_ways_row(row: dict) -> dict:
    """One assignment's row of ``--both-ways-out``: every-cell vs pruned grading side by side."""
    cmp_ = row["every_cell_run_comparison"] or {}
    return {"assignment": row["assignment"], "students": row["students"], "jobs": row["jobs"], "kinds": row["kinds"],
            "same_grades": cmp_.get("same_grades"), "differing": cmp_.get("grades_differ"),
            "seconds_per_student": {"every_cell": cmp_.get("seconds_per_student"), "pruned": row["seconds_per_student"]},
            "cpu_seconds_per_student_pruned": row["cpu_seconds_per_student"],
            "every_cell_regrades": row.get("every_cell_regrades"), "cells_not_run": row["cells_not_run"],
            "wrong_scores_pruned": row["wrong_scores"], "wrong": row["wrong"],
            "loadavg_1min_after": row.get("loadavg_1min_after"), "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def write_both_ways(path: Path, row: dict) -> None:
    """Put ``row``'s comparison into the JSON at ``path`` (one row per assignment, the others kept):
    separate runs, one assignment each, fill one file."""
    old = json.loads(path.read_text()) if path.exists() else {}
    rows = [r for r in old.get("assignments", []) if r["assignment"] != row["assignment"]] + [both_ways_row(row)]
    res = {"what": "every submission kind graded with every cell run (ODL_GRADER_PRUNE=0 ODL_GRADING=0, nbgrader's "
                   "way) and pruned with grading sizes, each test cell's grade compared "
                   "(benchmarks/semester_dry_run.py --both-ways --both-ways-out)",
           "assignments": sorted(rows, key=lambda r: r["assignment"]),
           "all_same_grades": all(r["same_grades"] for r in rows),
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
