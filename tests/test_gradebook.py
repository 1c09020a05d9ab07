"""The gradebook at ``c.CourseDirectory.db_url`` (odlkit.grading.gradebook): where it is read,
and how a parallel grading sandbox gets its own copy. (Parallel grading into a gradebook outside
the course folder is part of tests/test_grading.py's fixture batch.)

The row copy (the path a database server takes) is checked against SQLite's own backup API on
the same gradebook, table by table, and by nbgrader opening the copy and finding the same grades.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from odlkit.grading import gradebook as GB

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "grading_fixtures" / "source"
FXD = "fx_delegation"


def _course(tmp: Path, extra_config: str = "") -> Path:
    course = tmp / "course"
    (course / "source").mkdir(parents=True)
    cfg = (ROOT / "autograder" / "nbgrader_config.py").read_text() + extra_config
    (course / "nbgrader_config.py").write_text(cfg)
    shutil.copytree(FIXTURES / FXD, course / "source" / FXD)
    return course


def _a_gradebook(url: str) -> None:
    """A gradebook with every kind of row grading makes: assignment, notebook, cells, students,
    submissions and grades (nbgrader's API, as generate_assignment / autograde write them)."""
    from nbgrader.api import Gradebook

    with Gradebook(url) as gb:
        gb.add_assignment("a1")
        gb.add_notebook("nb1", "a1")
        gb.add_grade_cell("ex1", "nb1", "a1", max_score=2, cell_type="code")
        gb.add_solution_cell("ex1_impl", "nb1", "a1")
        gb.add_source_cell("ex1", "nb1", "a1", cell_type="code", source="assert f(1) == 2", checksum="abc")
        for s in ("s1", "s2"):
            gb.add_student(s, first_name=s.upper())
            gb.add_submission("a1", s)
        g = gb.find_grade("ex1", "nb1", "a1", "s1")
        g.auto_score = 1.5
        gb.db.commit()


def _rows(db: Path) -> dict[str, list[tuple]]:
    con = sqlite3.connect(str(db))
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: sorted(con.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}
    finally:
        con.close()


def test_url_is_the_configured_db_url_else_the_course_file(tmp_path):
    plain = _course(tmp_path / "a")
    assert GB.url(plain) == f"sqlite:///{plain.resolve() / 'gradebook.db'}"
    server = _course(tmp_path / "b", '\nc.CourseDirectory.db_url = "postgresql://grader@dbhost/odl"\n')
    assert GB.url(server) == "postgresql://grader@dbhost/odl"
    assert GB.sqlite_file("postgresql://grader@dbhost/odl") is None
    assert GB.sqlite_file("sqlite:////x/y.db") == Path("/x/y.db")


def test_row_copy_equals_sqlite_backup_and_nbgrader_reads_it(tmp_path, monkeypatch):
    from nbgrader.api import Gradebook

    # a new nbgrader gradebook asks the `alembic` command for its schema version
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))

    src = tmp_path / "server.db"
    _a_gradebook(f"sqlite:///{src}")
    backup = tmp_path / "backup.db"
    backup.write_bytes(GB.snapshot(f"sqlite:///{src}"))       # SQLite's backup API
    copied = tmp_path / "copied.db"
    GB.copy_rows(f"sqlite:///{src}", f"sqlite:///{copied}")   # the path any other database takes
    b, c = _rows(backup), _rows(copied)
    assert set(c) == set(b)
    for table in b:
        assert c[table] == b[table], table
    assert sum(len(v) for v in c.values()) > 10  # the fixture really has rows in many tables
    with Gradebook(f"sqlite:///{copied}") as gb:
        assert gb.find_grade("ex1", "nb1", "a1", "s1").auto_score == 1.5
        assert sorted(s.id for s in gb.students) == ["s1", "s2"]


def test_snapshot_of_a_missing_gradebook_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no gradebook"):
        GB.snapshot(f"sqlite:///{tmp_path / 'none.db'}")
