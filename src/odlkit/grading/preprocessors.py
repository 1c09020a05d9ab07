"""nbgrader preprocessors the course swaps in (configured in autograder/nbgrader_config.py)."""

from __future__ import annotations

from nbformat.notebooknode import NotebookNode
from nbgrader.nbgraderformat import MetadataValidator
from nbgrader.preprocessors import OverwriteCells


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


class RestoreCells(OverwriteCells):
    """``OverwriteCells`` that also puts back every *deleted* locked cell, robustly.

    nbgrader 0.9.6's ``add_missing_cells`` re-inserts deleted grade cells only when the
    cell just before them in the source is a grade or solution cell; if it is a locked
    read-only cell (a setup or helper cell) autograding that student crashes with a
    ``KeyError``. It also never restores deleted read-only cells. Here every locked source
    cell (tests, read-only setup/helpers) missing from the submission is inserted after the
    nearest preceding source cell that is present, so the student's notebook is graded with
    the instructor's original cells, hidden tests included (their source comes from the
    gradebook, written by ``generate_assignment``).
    """

    def add_missing_grade_cells(self, nb: NotebookNode, resources):
        source_nb = self.gradebook.find_notebook(self.notebook_id, self.assignment_id)
        grade_cells = {c.name: c for c in source_nb.grade_cells}
        solution_ids = {c.name for c in source_nb.solution_cells}
        cells = list(nb.cells)
        anchor = -1
        for src in source_nb.source_cells:
            pos = next((i for i, c in enumerate(cells) if _grade_id(c) == src.name), None)
            if pos is not None:
                anchor = pos
                continue
            if src.name in grade_cells:
                self.log.warning("Missing grade cell %s encountered, adding to notebook", src.name)
                new = self.missing_cell_transform(src, grade_cells[src.name].max_score,
                                                  is_solution=src.name in solution_ids)
            elif src.locked:
                self.log.warning("Missing read-only cell %s encountered, adding to notebook", src.name)
                new = self._readonly_cell(src)
            else:
                continue
            cells.insert(anchor + 1, new)
            anchor += 1
        nb.cells = cells
        return nb, resources

    def _readonly_cell(self, src) -> NotebookNode:
        note = self.missing_cell_notification.format(cell_id=src.name)
        cell = {
            "cell_type": src.cell_type,
            "metadata": {
                "deletable": False,
                "editable": False,
                "nbgrader": {"grade": False, "grade_id": src.name, "locked": True, "checksum": src.checksum,
                             "cell_type": src.cell_type, "solution": False, "task": False,
                             "schema_version": 3},
            },
            "source": note + src.source,
        }
        if src.cell_type == "code":
            cell.update(execution_count=None, outputs=[])
            cell["source"] = "# " + cell["source"]
        return MetadataValidator().upgrade_cell_metadata(NotebookNode(cell))
