"""How long autograding one assignment takes for a class of students.

Builds a temporary copy of the course, releases the assignment with nbgrader, makes
synthetic submissions (alternately the instructor's solution and the blank release, every
third one solving only the first exercise), collects them from a zip, autogrades the batch
with the real `nbgrader autograde` and exports the CSV. Prints a table and writes
benchmarks/results/grading_time.json.

    .venv/bin/python benchmarks/grading_time.py                        # ch00_getting_started, 30 students
    .venv/bin/python benchmarks/grading_time.py --assignment fx_signals --students 10
    .venv/bin/python benchmarks/grading_time.py --cells ch00_getting_started ch03_federated_learning

``--cells A...`` measures instead where one student's run spends its time: each instructor
notebook run top to bottom in one fresh kernel with ``ODL_QUICK=1`` (as a grading kernel runs
it), timing the kernel start and every code cell (import cell, demo cells, solutions, tests);
results under ``cells`` in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import nbformat

from odlkit.grading import course as C
from odlkit.grading import notebooks as N

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "grading_fixtures" / "source"


def find_source(assignment: str) -> Path:
    for base in (C.COURSE_DIR / "source", FIXTURES):
        if (base / assignment).is_dir():
            return base / assignment
    raise SystemExit(f"no source for {assignment} in autograder/source or tests/grading_fixtures/source")


def cell_times(assignment: str, timeout: int = 1800) -> dict:
    """One run of the instructor notebook in a fresh kernel, timed per cell."""
    from nbclient import NotebookClient

    path = next(find_source(assignment).glob("*.ipynb"))
    nb = nbformat.read(str(path), 4)
    os.environ.setdefault("ODL_QUICK", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t0 = time.perf_counter()
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    cells = []
    with client.setup_kernel():
        kernel = time.perf_counter() - t0
        for i, c in enumerate(nb.cells):
            if c.cell_type != "code":
                continue
            m = N.nbmeta(c)
            kind = "test" if m.get("grade") and not m.get("solution") else ("solution" if m.get("solution") else "demo")
            t = time.perf_counter()
            client.execute_cell(c, i)
            errors = [o.get("ename") for o in c.get("outputs", []) if o.get("output_type") == "error"]
            cells.append({"index": i, "kind": kind, "grade_id": m.get("grade_id"),
                          "seconds": round(time.perf_counter() - t, 2), "errors": errors,
                          "first_line": c.source.strip().splitlines()[0][:70] if c.source.strip() else ""})
    by_kind = {k: round(sum(c["seconds"] for c in cells if c["kind"] == k), 1) for k in ("demo", "solution", "test")}
    first = next((c for c in cells), None)
    return {"assignment": assignment, "total_seconds": round(time.perf_counter() - t0, 1),
            "kernel_start_seconds": round(kernel, 1), "first_cell_seconds": first["seconds"] if first else None,
            "seconds_by_kind": by_kind, "cells": cells, "loadavg_1min_after": round(os.getloadavg()[0], 1),
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def profile_cells(names: list[str], out: Path) -> None:
    prev = json.loads(out.read_text()) if out.is_file() else {}
    profiles = prev.get("cells", {})
    print(f"{'assignment':<30}{'total':>7}{'kernel':>7}{'first':>7}{'demo':>7}{'tests':>7}  slowest demo cells")
    for a in names:
        r = cell_times(a)
        profiles[a] = r
        slow = sorted((c for c in r["cells"] if c["kind"] == "demo"), key=lambda c: -c["seconds"])[:3]
        print(f"{a:<30}{r['total_seconds']:>7}{r['kernel_start_seconds']:>7}{r['first_cell_seconds']:>7}"
              f"{r['seconds_by_kind']['demo']:>7}{r['seconds_by_kind']['test']:>7}  "
              + "; ".join(f"{c['seconds']:g} s [{c['index']}] {c['first_line'][:30]}" for c in slow), flush=True)
        out.write_text(json.dumps(dict(prev, cells=profiles), indent=1) + "\n")
    print(f"wrote {out}")


def main() -> None:
    default = "ch00_getting_started" if (C.COURSE_DIR / "source" / "ch00_getting_started").is_dir() else "fx_signals"
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--assignment", default=default)
    ap.add_argument("--students", type=int, default=30)
    ap.add_argument("--full", action="store_true", help="grade without ODL_QUICK=1")
    ap.add_argument("--jobs", type=int, default=1, help="students graded at once (autograde --jobs)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "grading_time.json")
    ap.add_argument("--cells", nargs="+", metavar="A", help="time each cell of these notebooks' runs instead")
    args = ap.parse_args()
    if args.cells:
        profile_cells(args.cells, args.out)
        return

    src_dir = find_source(args.assignment)
    load_before = os.getloadavg()
    env = {} if args.full else {"ODL_QUICK": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        course = tmp / "course"
        (course / "source").mkdir(parents=True)
        shutil.copy(C.COURSE_DIR / "nbgrader_config.py", course)
        shutil.copytree(src_dir, course / "source" / args.assignment)
        t0 = time.perf_counter()
        C.release([args.assignment], course, tmp / "out")
        t_release = time.perf_counter() - t0
        nb_name = next((course / "source" / args.assignment).glob("*.ipynb")).name
        src = nbformat.read(str(course / "source" / args.assignment / nb_name), 4)
        rel = nbformat.read(str(tmp / "out" / C.release_folder(args.assignment) / args.assignment / nb_name), 4)
        first = N.exercises(src)[:1]
        kinds, expected = {}, {}
        with zipfile.ZipFile(tmp / "subs.zip", "w") as z:
            for i in range(args.students):
                s = f"student{i:02d}"
                kind = "partial" if i % 3 == 2 else ("solution" if i % 2 == 0 else "blank")
                nb = {"solution": N.solved(rel, src), "blank": rel, "partial": N.solved(rel, src, first)}[kind]
                expected[s] = {"solution": N.expected_auto_points(src), "blank": 0.0,
                               "partial": N.expected_auto_points(src, first)}[kind]
                kinds[s] = kind
                z.writestr(f"{s}/{nb_name}", nbformat.writes(nb))
        t0 = time.perf_counter()
        C.collect(tmp / "subs.zip", course)
        t_collect = time.perf_counter() - t0
        t0 = time.perf_counter()
        results = C.autograde(args.assignment, course, env=env, jobs=args.jobs)
        t_autograde = time.perf_counter() - t0
        t0 = time.perf_counter()
        C.export(tmp / "grades.csv", course)
        t_export = time.perf_counter() - t0
    wrong = {r.student: (r.auto_score, expected[r.student]) for r in results if r.auto_score != expected[r.student]}
    res = {
        "assignment": args.assignment,
        "students": args.students,
        "jobs": args.jobs,
        "quick": not args.full,
        "seconds": {"release": round(t_release, 1), "collect": round(t_collect, 2),
                    "autograde": round(t_autograde, 1), "export": round(t_export, 1)},
        "autograde_seconds_per_student": round(t_autograde / args.students, 2),
        "scores_as_expected": not wrong,
        "wrong_scores": wrong,
        "kinds": {k: sum(1 for v in kinds.values() if v == k) for k in ("solution", "blank", "partial")},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "loadavg_1min_before_after": [round(load_before[0], 1), round(os.getloadavg()[0], 1)],
                    "note": "times scale with the machine's load: compare runs at similar load"},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    print(f"Autograding {args.assignment} for {args.students} students ({'quick' if res['quick'] else 'full'} mode)")
    print(f"{'step':<12}{'seconds':>10}")
    for k, v in res["seconds"].items():
        print(f"{k:<12}{v:>10}")
    print(f"{'per student':<12}{res['autograde_seconds_per_student']:>10}")
    print(f"scores as expected: {res['scores_as_expected']} {wrong or ''}")
    print(f"load average (1 min) before/after: {res['machine']['loadavg_1min_before_after']} on {os.cpu_count()} cpus")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs = {}
    if args.out.is_file():  # keep the other assignments' runs
        runs = json.loads(args.out.read_text()).get("runs", {})
    runs[f"{args.assignment}/{args.students}" + (f"/jobs{args.jobs}" if args.jobs != 1 else "")] = res
    prev = json.loads(args.out.read_text()) if args.out.is_file() else {}
    args.out.write_text(json.dumps(dict(prev, runs=runs), indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
