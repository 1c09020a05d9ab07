"""The instructor's generated documents are current and every written question has a full rubric.

``autograder/ANSWER_KEYS.md`` and the time table of ``autograder/COURSE_GUIDE.md`` are generated
from the instructor notebooks (``python -m odlkit.grading.course_docs --write``); these tests fail
when they are stale, and when a manually graded cell's mark scheme lacks any of: full credit,
partial credit, no credit, a sample answer, common wrong answers.
"""

from __future__ import annotations

import pytest

from odlkit.grading import course_docs as D

ITEMS = D.written_items()
GENERATED = D.generated()


def test_the_rubric_check_can_fail():
    full = "**Full credit (2):** a. **Partial credit (1):** b. **No credit (0):** c. **Sample answer:** d. " \
           "**Common wrong answers:** e."
    assert D.missing_rubric_parts(full) == []
    assert D.missing_rubric_parts("Full marks for two leaks; sample answer: ...") == [
        "full credit", "partial credit", "no credit", "common wrong answers"]
    assert D.missing_rubric_parts(None) == list(D.RUBRIC_PARTS)


def test_the_time_estimate_adds_its_stated_parts():
    t = D.NotebookTime("x", prose_words=1500, code_lines=100, auto_points=6, written_points=2, full_seconds=120)
    assert t.reading_min == pytest.approx(1500 / D.PROSE_WORDS_PER_MIN + 100 / D.CODE_LINES_PER_MIN)
    assert t.exercise_min == pytest.approx(6 * D.MIN_PER_AUTO_POINT + 2 * D.MIN_PER_WRITTEN_POINT)
    assert t.total_min == pytest.approx(t.reading_min + t.exercise_min + 2.0)
    assert "not measured" in D.time_table([D.NotebookTime("lab", 10, 1, 1, 0, None)])


@pytest.mark.parametrize("item", ITEMS, ids=lambda i: f"{i.assignment}:{i.grade_id}")
def test_every_written_question_has_a_complete_mark_scheme(item):
    missing = D.missing_rubric_parts(item.scheme)
    assert not missing, (f"{item.assignment}:{item.grade_id}: the mark scheme lacks {missing} "
                         "(label each part, e.g. '**Partial credit (1):**')")


def test_the_answer_keys_quote_every_question_and_scheme():
    text = GENERATED["answer keys"][0]
    for it in ITEMS:
        assert f"`{it.grade_id}`" in text and (it.scheme is None or it.scheme in text)
        assert it.question, f"{it.assignment}:{it.grade_id} has no visible question to quote"


@pytest.mark.parametrize("name", ["answer keys", "time table", "coverage table"])
def test_the_generated_documents_are_current(name):
    want, have = GENERATED[name]
    assert have == want, f"the {name} is stale: run `.venv/bin/python -m odlkit.grading.course_docs --write`"


def test_the_guide_links_its_companions():
    guide = D.COV.GUIDE.read_text()
    assert "(ANSWER_KEYS.md)" in guide and "(README.md)" in guide
