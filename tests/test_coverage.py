"""Every textbook subsection and learning objective is assessed, and the course guide says by what.

Reads the coverage tags ``metadata["odl"]`` of every graded cell of ``autograder/source`` (see
``odlkit.grading.coverage``). Fails when a graded cell is untagged or uses an unknown key or tag,
when a subsection 12.2.1-12.7.4 or an objective LO1-LO5 has no graded item, when an objective has
only written items, or when the table in ``autograder/COURSE_GUIDE.md`` is stale
(``python -m odlkit.grading.course_docs --write`` regenerates it).
"""

from __future__ import annotations

import pytest

from odlkit.grading import coverage as COV

BOOK = COV.textbook()
ITEMS = COV.graded_items()


def test_the_textbook_key_lists_the_chapter():
    assert list(BOOK["objectives"]) == [f"LO{i}" for i in range(1, 6)]
    assert list(BOOK["sections"])[0] == "12.2.1" and list(BOOK["sections"])[-1] == "12.7.4"
    assert len(BOOK["sections"]) == 29


def _item(**kw):
    base = dict(assignment="a", grade_id="ex1_tests", kind="autograded", points=1.0, objectives=["LO1"],
                sections=["12.2.1"], heading="h", unknown_keys=[], tagged=True)
    return COV.GradedItem(**{**base, **kw})


def test_the_coverage_rules_can_fail():
    book = {"objectives": {"LO1": "", "LO2": ""}, "sections": {"12.2.1": "", "12.2.2": ""}}
    full = [_item(), _item(grade_id="ex2_tests", objectives=["LO2"], sections=["12.2.2"])]
    assert COV.coverage_problems(full, book) == []
    p = COV.coverage_problems(full[:1], book)
    assert any("12.2.2" in x for x in p) and any(x.startswith("LO2 has no graded item") for x in p)
    written = [full[0], _item(grade_id="q1", kind="written", objectives=["LO2"], sections=["12.2.2"])]
    assert COV.coverage_problems(written, book) == ["LO2 has only written items, no autograded one"]
    assert any("unknown key" in x for x in COV.coverage_problems(full + [_item(unknown_keys=["section"])], book))
    assert any("unknown objective/section" in x for x in COV.coverage_problems(full + [_item(sections=["12.9.9"])], book))
    assert any("without metadata" in x for x in COV.coverage_problems(full + [_item(tagged=False)], book))


def test_every_graded_cell_is_tagged_with_known_keys_only():
    bad = [p for p in COV.coverage_problems(ITEMS, BOOK) if p.startswith(tuple(f"{i.assignment}:" for i in ITEMS))]
    assert ITEMS and not bad, "\n".join(bad)


@pytest.mark.parametrize("section", list(BOOK["sections"]))
def test_every_subsection_has_a_graded_item(section):
    tagged = [it.ref for it in ITEMS if section in it.sections]
    assert tagged, f"no graded item assesses {section} ({BOOK['sections'][section]}); tag one with metadata['odl']"


@pytest.mark.parametrize("objective", list(BOOK["objectives"]))
def test_every_objective_has_an_autograded_item(objective):
    kinds = {it.kind for it in ITEMS if objective in it.objectives}
    assert "autograded" in kinds, f"{objective} has graded items of kinds {sorted(kinds) or 'none'}; it needs an autograded one"


def test_the_course_guide_table_is_current():
    text = COV.GUIDE.read_text()
    assert COV.section_of(text, COV.TABLE_BEGIN, COV.TABLE_END) == COV.current_table(), (
        "autograder/COURSE_GUIDE.md's coverage table is stale: run `python -m odlkit.grading.course_docs --write`")
