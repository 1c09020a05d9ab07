"""Pure functions on course notebooks: points, leak checks, release comparison, integrity audit,
and synthetic submissions (used by the tests, the benchmark and ``python -m odlkit.grading selfcheck``).

Nothing here runs nbgrader or a kernel; see :mod:`odlkit.grading.course` for that.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
SOLUTION_BEGIN, SOLUTION_END = "### BEGIN SOLUTION", "### END SOLUTION"
SCHEME_BEGIN, SCHEME_END = "=== BEGIN MARK SCHEME ===", "=== END MARK SCHEME ==="
MARKERS = (HIDDEN_BEGIN, HIDDEN_END, SOLUTION_BEGIN, SOLUTION_END, SCHEME_BEGIN, SCHEME_END)


def nbmeta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def grade_id(cell) -> str | None:
    return nbmeta(cell).get("grade_id")


def is_autograded_test(cell) -> bool:
    m = nbmeta(cell)
    return bool(m.get("grade")) and not m.get("solution") and cell["cell_type"] == "code"


def is_manual(cell) -> bool:
    m = nbmeta(cell)
    return bool(m.get("grade")) and bool(m.get("solution"))


def exercise_of(gid: str) -> str:
    """The exercise a cell belongs to: the grade_id up to the first underscore (``ex1_impl`` -> ``ex1``)."""
    return gid.split("_", 1)[0]


def read_notebook(path: Path | str):
    """Read a notebook; raise ValueError with the file and the reason when it is not one."""
    path = Path(path)
    try:
        return nbformat.read(str(path), as_version=4)
    except nbformat.reader.NotJSONError:
        raise ValueError(f"{path.name} is not valid JSON (damaged, truncated or not a notebook)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path.name} is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except Exception as e:  # nbformat raises several kinds for malformed notebooks
        raise ValueError(f"{path.name} is not a readable Jupyter notebook ({type(e).__name__}: {e})") from None


# ----------------------------------------------------------------------------------------- points
@dataclass
class NotebookPoints:
    assignment: str
    notebook: str
    auto: float = 0.0
    manual: float = 0.0
    cells: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return self.auto + self.manual


def notebook_points(path: Path, assignment: str | None = None) -> NotebookPoints:
    """Points of one instructor notebook, from its nbgrader metadata."""
    path = Path(path)
    nb = read_notebook(path)
    pts = NotebookPoints(assignment or path.parent.name, path.stem)
    for cell in nb.cells:
        m = nbmeta(cell)
        if not m.get("grade"):
            continue
        p = float(m.get("points", 0))
        pts.cells[m["grade_id"]] = p
        if is_manual(cell):
            pts.manual += p
        else:
            pts.auto += p
    return pts


def course_points(source_dir: Path) -> list[NotebookPoints]:
    """Points of every instructor notebook under ``source/<assignment>/``, sorted."""
    out = []
    for nb in sorted(Path(source_dir).glob("*/*.ipynb")):
        if ".ipynb_checkpoints" not in nb.parts:
            out.append(notebook_points(nb))
    return out


def _fmt(x: float) -> str:
    return f"{x:g}"


def points_table(source_dir: Path) -> str:
    """Markdown table of points per notebook and the course total (pasted into the README)."""
    rows = course_points(source_dir)
    lines = ["| assignment | notebook | autograded | manual | total |", "|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| `{r.assignment}` | `{r.notebook}.ipynb` | {_fmt(r.auto)} | {_fmt(r.manual)} | {_fmt(r.total)} |")
    auto = sum(r.auto for r in rows)
    manual = sum(r.manual for r in rows)
    lines.append(f"| **course total** | {len(rows)} notebooks | **{_fmt(auto)}** | **{_fmt(manual)}** | **{_fmt(auto + manual)}** |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ leak check
def _blocks(text: str, begin: str, end: str) -> list[str]:
    out, cur = [], None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith(begin):
            cur = []
        elif s.startswith(end) and cur is not None:
            out.append("\n".join(cur))
            cur = None
        elif cur is not None:
            cur.append(line)
    return out


def secret_blocks(source_nb) -> list[str]:
    """Hidden-test blocks, solution blocks and mark schemes of an instructor notebook."""
    out = []
    for cell in source_nb.cells:
        for b, e in ((HIDDEN_BEGIN, HIDDEN_END), (SOLUTION_BEGIN, SOLUTION_END), (SCHEME_BEGIN, SCHEME_END)):
            out += _blocks(cell.source, b, e)
        m = nbmeta(cell)
        # a markdown answer cell without delimiters is replaced entirely by nbgrader
        if m.get("solution") and cell["cell_type"] == "markdown" and SOLUTION_BEGIN not in cell.source:
            out.append(cell.source)
    return [b for b in out if b.strip()]


def distinctive_secret_lines(source_nb, min_len: int = 20) -> set[str]:
    """Lines that occur only inside secret blocks of ``source_nb`` and are long enough to be telling."""
    secret = set()
    for b in secret_blocks(source_nb):
        secret |= {ln.strip() for ln in b.splitlines() if len(ln.strip()) >= min_len}
    public = set()
    for cell in source_nb.cells:
        text = cell.source
        for b in secret_blocks(nbformat.v4.new_notebook(cells=[cell])):
            text = text.replace(b, "")
        public |= {ln.strip() for ln in text.splitlines()}
    return secret - public


def find_leaks(source_nb, student_nb) -> list[str]:
    """Secret text of ``source_nb`` that appears in ``student_nb`` (empty list = clean)."""
    text = "\n".join(c.source for c in student_nb.cells)
    problems = [f"marker {m!r} present" for m in MARKERS if m in text]
    lines = {ln.strip() for ln in text.splitlines()}
    for ln in sorted(distinctive_secret_lines(source_nb)):
        if ln in lines:
            problems.append(f"secret line present: {ln!r}")
    return problems


# ----------------------------------------------------------------------------- release comparison
def normalized(nb) -> dict:
    """What must match between a committed student notebook and a fresh release.

    Cell ids are dropped (nbformat invents random ones for cells that lack them); outputs
    must be empty anyway and are compared as such.
    """
    cells = []
    for c in nb.cells:
        d = {"cell_type": c["cell_type"], "source": c["source"], "metadata": dict(c.get("metadata", {}))}
        if c["cell_type"] == "code":
            d["outputs"] = c.get("outputs", [])
            d["execution_count"] = c.get("execution_count")
        cells.append(d)
    return {"metadata": dict(nb.metadata), "cells": cells}


def has_outputs(nb) -> bool:
    return any(c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count")) for c in nb.cells)


# --------------------------------------------------------------------------------- integrity audit
SUSPICIOUS = [
    (re.compile(r"\bsetattr\s*\(|\bdelattr\s*\("), "uses setattr/delattr (monkeypatching?)"),
    (re.compile(r"__builtins__|\bbuiltins\b"), "touches builtins"),
    (re.compile(r"sys\.modules"), "touches sys.modules"),
    (re.compile(r"\bsubprocess\b|os\.system|os\.popen|\bsocket\b|shutil\.rmtree"), "runs processes / network / deletes files"),
    (re.compile(r"gradebook|nbgrader|NBGRADER_EXECUTION"), "mentions the grader"),
]


_IMPORT = re.compile(r"^\s*(?:from\s+[\w.]+\s+)?import\s+(.+)$", re.M)
ALWAYS_MODULES = {"np", "numpy", "builtins", "__builtins__", "odlkit", "math", "sys", "os"}


def imported_names(nb) -> set[str]:
    """Names bound by import statements in the notebook (``import numpy as np`` -> ``np``)."""
    names = set(ALWAYS_MODULES)
    for c in nb.cells:
        if c["cell_type"] != "code":
            continue
        for m in _IMPORT.finditer(c.source):
            for part in m.group(1).strip("() ").split(","):
                words = part.split()
                if words:
                    names.add(words[-1] if "as" in words else words[0].split(".")[0])
    return names


def audit_submission(release_nb, submitted_nb) -> list[str]:
    """Integrity findings for one submitted notebook, compared to the student release.

    Locked cells that were edited or deleted (nbgrader restores them when grading, but the
    instructor should know), and code in editable cells that looks like tampering with the
    grading kernel. Findings are for review: they do not change the score.
    """
    findings = []
    sub = {grade_id(c): c for c in submitted_nb.cells if grade_id(c)}
    locked_names = set()
    for c in release_nb.cells:
        m = nbmeta(c)
        if not m.get("locked"):
            continue
        gid = m["grade_id"]
        for pair in re.findall(r"^def (\w+)|^(\w+)\s*=", c.source, re.M):
            locked_names |= {n for n in pair if n}
        if gid not in sub:
            findings.append(f"locked cell {gid!r} was deleted (restored for grading)")
        elif sub[gid].source != c.source:
            findings.append(f"locked cell {gid!r} was edited (original restored for grading)")
    locked_ids = {grade_id(c) for c in release_nb.cells if nbmeta(c).get("locked")}
    modules = imported_names(release_nb)
    released_sources = {c.source for c in release_nb.cells}
    for c in submitted_nb.cells:
        # only code the student wrote or changed
        if c["cell_type"] != "code" or grade_id(c) in locked_ids or c.source in released_sources:
            continue
        for rx, why in SUSPICIOUS:
            if rx.search(c.source):
                findings.append(f"cell {grade_id(c) or '(unlabelled)'}: {why}")
        for m in re.finditer(r"^\s*(\w+)\.[\w.]+\s*=[^=]", c.source, re.M):
            if m.group(1) in modules:
                findings.append(f"cell {grade_id(c) or '(unlabelled)'}: assigns to an attribute of module "
                                f"{m.group(1)!r} (monkeypatching)")
        for name in sorted(locked_names | modules):
            if re.search(rf"^(def\s+{name}\b|{name}\s*=[^=])", c.source, re.M):  # top level only
                where = "a locked cell" if name in locked_names else "an import"
                findings.append(f"cell {grade_id(c) or '(unlabelled)'}: redefines {name!r} from {where}")
    return findings


# ---------------------------------------------------------------------------- synthetic submissions
def solution_sources(source_nb) -> dict[str, str]:
    return {grade_id(c): c.source for c in source_nb.cells if nbmeta(c).get("solution") and c["cell_type"] == "code"}


def exercises(source_nb) -> list[str]:
    """Exercise names in notebook order (from grade_ids of code solution cells)."""
    out = []
    for gid in solution_sources(source_nb):
        ex = exercise_of(gid)
        if ex not in out:
            out.append(ex)
    return out


def solved(release_nb, source_nb, exercises_solved=None, answer_text: str | None = None):
    """The student release with the instructor's code put in the solution cells of ``exercises_solved``
    (all exercises when None). Written answers are left as released, or replaced by
    ``answer_text`` (then nbgrader flags them for manual grading)."""
    sols = solution_sources(source_nb)
    nb = copy.deepcopy(release_nb)
    for c in nb.cells:
        gid = grade_id(c)
        if gid in sols and (exercises_solved is None or exercise_of(gid) in exercises_solved):
            c.source = sols[gid]
        elif answer_text is not None and c["cell_type"] == "markdown" and is_manual(c):
            c.source = answer_text
    return nb


def expected_auto_points(source_nb, exercises_solved=None) -> float:
    """Autograded points a submission solving ``exercises_solved`` (all when None) must get."""
    total = 0.0
    for c in source_nb.cells:
        if is_autograded_test(c) and (exercises_solved is None or exercise_of(grade_id(c)) in exercises_solved):
            total += float(nbmeta(c).get("points", 0))
    return total
