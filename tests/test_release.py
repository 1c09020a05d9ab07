"""The committed student notebooks are exactly what `make release` produces, and leak nothing.

Regenerates every assignment under autograder/source with the real `nbgrader
generate_assignment` into a temporary course and output folder, then compares with
chapters/ and labs/ (cell types, sources, metadata, outputs; cell ids are ignored because
nbformat invents random ones for cells without). Also checks that no hidden test, solution
or mark scheme of a source appears in any student notebook, and that nothing carries outputs.
The tests on the fresh release are marked ``grading`` (nbgrader runs once per assignment: a minute
or more), the checks of the committed copies run in ``make test-fast`` too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from odlkit.grading import course as C
from odlkit.grading import coverage as COV
from odlkit.grading import notebooks as N

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "autograder"
FIXTURES = ROOT / "tests" / "grading_fixtures" / "source"
ASSIGNMENTS = C.assignments(COURSE)


def student_notebooks() -> list[Path]:
    return sorted(p for folder in ("chapters", "labs") for p in (ROOT / folder).glob("*/*.ipynb")
                  if ".ipynb_checkpoints" not in p.parts)


def source_of(student_nb: Path) -> Path:
    return COURSE / "source" / student_nb.parent.name / student_nb.name


@pytest.fixture(scope="module")
def fresh_release(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("release")
    course = tmp / "course"
    (course / "source").mkdir(parents=True)
    shutil.copy(COURSE / "nbgrader_config.py", course / "nbgrader_config.py")
    for a in ASSIGNMENTS:
        shutil.copytree(COURSE / "source" / a, course / "source" / a,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copytree(FIXTURES / "fx_signals", course / "source" / "fx_signals")
    C.release(None, course, tmp / "out")
    return tmp / "out"


@pytest.mark.grading
def test_every_assignment_is_released_and_matches(fresh_release):
    for a in ASSIGNMENTS:
        fresh = sorted((fresh_release / C.release_folder(a) / a).glob("*.ipynb"))
        committed = sorted((ROOT / C.release_folder(a) / a).glob("*.ipynb"))
        assert [p.name for p in committed] == [p.name for p in fresh], (
            f"{C.release_folder(a)}/{a} is not the current release: run `make release` and commit it")
        for f, c in zip(fresh, committed, strict=True):
            assert N.normalized(nbformat.read(str(c), 4)) == N.normalized(nbformat.read(str(f), 4)), (
                f"{c.relative_to(ROOT)} differs from a fresh release of {a}: run `make release` and commit it")


def test_no_student_notebook_without_a_source():
    orphans = [str(p.relative_to(ROOT)) for p in student_notebooks() if not source_of(p).is_file()]
    assert not orphans, f"student notebooks without an instructor source (edit sources, not these): {orphans}"


@pytest.mark.grading
def test_release_routes_labs_and_chapters(fresh_release):
    assert C.release_folder("lab1_motion") == "labs" and C.release_folder("ch00_getting_started") == "chapters"
    assert (fresh_release / "chapters" / "fx_signals" / "fx_signals.ipynb").is_file()
    assert not (fresh_release / "labs").exists() or not any((fresh_release / "labs").glob("fx_*"))


@pytest.mark.grading
def test_fixture_release_hides_solutions_and_hidden_tests(fresh_release):
    # exercised even before the course has assignments, so the leak check itself is tested
    src = nbformat.read(str(FIXTURES / "fx_signals" / "fx_signals.ipynb"), 4)
    rel = nbformat.read(str(fresh_release / "chapters" / "fx_signals" / "fx_signals.ipynb"), 4)
    assert N.distinctive_secret_lines(src), "fixture should contain secret lines to look for"
    assert N.find_leaks(src, rel) == []
    assert "raise NotImplementedError()" in rel.cells[3].source


@pytest.mark.parametrize("student_nb", student_notebooks() or [None],
                         ids=lambda p: str(p.relative_to(ROOT)) if p else "none")
def test_no_hidden_tests_or_solutions_in_student_notebooks(student_nb):
    if student_nb is None:
        pytest.skip("no student notebooks released yet")
    problems = N.find_leaks(nbformat.read(str(source_of(student_nb)), 4), nbformat.read(str(student_nb), 4)) \
        if source_of(student_nb).is_file() else [m for m in N.MARKERS if m in student_nb.read_text()]
    assert not problems, f"{student_nb.relative_to(ROOT)} leaks: {problems}"


def test_no_outputs_in_sources_or_student_notebooks():
    paths = student_notebooks() + sorted((COURSE / "source").glob("*/*.ipynb")) + sorted(FIXTURES.glob("*/*.ipynb"))
    with_outputs = [str(p.relative_to(ROOT)) for p in paths if N.has_outputs(nbformat.read(str(p), 4))]
    assert not with_outputs, f"notebooks stored with outputs (run nbstripout): {with_outputs}"


# ------------------------------------------------------------------ written questions are visible
def _nb(*cells):
    return nbformat.v4.new_notebook(cells=list(cells))


def _answer(gid="q1", text="YOUR ANSWER HERE"):
    c = nbformat.v4.new_markdown_cell(text)
    c.metadata["nbgrader"] = {"grade": True, "solution": True, "locked": False, "points": 2,
                              "grade_id": gid, "schema_version": 3, "task": False}
    return c


def test_the_visible_question_rule_catches_each_way_a_question_gets_lost():
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    question = md("### Question 1 (2 points)\nWhy do more local epochs help less on skewed clients?")
    assert COV.invisible_questions(_nb(question, _answer())) == []
    assert COV.invisible_questions(_nb(md("**Question.** Explain what the server learns."), _answer())) == []
    # the prompt inside the answer cell (nbgrader replaces it on release), after a code cell
    lost = COV.invisible_questions(_nb(code("x = 1"), _answer(text="**Q.** Why? YOUR ANSWER HERE")))
    assert len(lost) == 1 and "code cell" in lost[0]
    # a heading alone names a question but does not state it
    assert "states no question" in COV.invisible_questions(_nb(md("## 11. Wrap-up\n"), _answer()))[0]
    assert "states no question" in COV.invisible_questions(_nb(md("### Question 2 (2 points)"), _answer()))[0]
    # prose that asks nothing
    assert COV.invisible_questions(_nb(md("The buffer dominates: 51 KiB."), _answer()))
    # another answer cell right before (release replaces it too)
    assert "nbgrader cell" in COV.invisible_questions(_nb(question, _answer("q1"), _answer("q2")))[0]
    assert COV.invisible_questions(_nb(_answer()))


@pytest.mark.grading
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_released_written_question_is_visible(fresh_release, assignment):
    released = sorted((fresh_release / C.release_folder(assignment) / assignment).glob("*.ipynb"))
    assert released, f"{assignment} was not released"
    for path in released:
        rel = nbformat.read(str(path), 4)
        assert sum(N.is_manual(c) for c in rel.cells) == sum(
            N.is_manual(c) for c in nbformat.read(str(source_of(path)), 4).cells), "release lost an answer cell"
        lost = COV.invisible_questions(rel)
        assert not lost, (f"{path.name}: written questions students cannot see (put the question in a "
                          f"markdown cell right before the answer cell): {lost}")
