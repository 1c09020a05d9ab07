"""nbgrader preprocessors the course swaps in (configured in autograder/nbgrader_config.py)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from nbformat.notebooknode import NotebookNode
from nbgrader.nbgraderformat import MetadataValidator
from nbgrader.preprocessors import OverwriteCells
from nbgrader.preprocessors.base import NbGraderPreprocessor
from traitlets import Unicode


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


class RequireExecuted(NbGraderPreprocessor):
    """Refuse a notebook whose graded test cells were not run (``ODL_GRADER_REPLAY`` mode).

    Recording grades without executing (see :mod:`odlkit.grading.parallel`) is only right for
    notebooks a grading worker has executed: nbgrader gives full points to a test cell without
    an error output, so an unexecuted test cell would pass. This makes such a notebook an error
    for that student instead.
    """

    def preprocess_cell(self, cell, resources, index):
        m = cell.get("metadata", {}).get("nbgrader", {}) or {}
        if (cell.cell_type == "code" and m.get("grade") and not m.get("solution")
                and cell.source.strip() and cell.get("execution_count") is None):
            raise RuntimeError(f"test cell {m.get('grade_id')!r} was not executed: refusing to record "
                               "grades of a notebook no grading kernel ran")
        return cell, resources


# Lines TensorFlow, XLA and absl write to stderr when they load: noise to a student reading feedback.
NOISE_LINES = re.compile(
    r"^(?:"
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWE]\d{4} [\d:. ]+\s*\d+ \S+\.(?:cc|h):\d+\].*"                  # absl/glog C++ log lines
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] (?:tensorflow|external|xla)/.*"   # TF C++ log lines
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\."
    r"|.*oneDNN custom operations are on.*"
    r"|.*Unable to register cu(?:DNN|FFT|BLAS) factory.*"
    r"|.*TF-TRT Warning: Could not find TensorRT.*"
    r")$"
)


class CleanFeedback(NbGraderPreprocessor):
    """What a student's feedback should not show: TensorFlow's start-up noise on stderr and the
    grading machine's paths (course folder, grading sandbox, Python installation, home).

    Runs in ``GenerateFeedback.preprocessors`` only: the graded notebook the instructor sees in
    the formgrader keeps every byte.
    """

    course_root = Unicode("", help="the course folder, shown to students as '<course>'").tag(config=True)

    def _paths(self) -> list[tuple[re.Pattern, str]]:
        pairs = [(re.compile(r"/\S*?/odl-grade-[^/\s]+/course"), "<course>")]     # parallel grading sandboxes
        kit_root = str(Path(__file__).resolve().parents[2])  # the folder holding odlkit/
        literal = [(self.course_root, "<course>"), (sys.prefix, "<python>"), (sys.base_prefix, "<python>"),
                   (kit_root, "<lib>"), (os.path.expanduser("~"), "~")]
        for path, label in sorted(literal, key=lambda p: -len(p[0])):
            if path and len(path) > 1:
                pairs.append((re.compile(re.escape(path.rstrip("/"))), label))
        return pairs

    def _clean(self, text: str, paths) -> str:
        for rx, label in paths:
            text = rx.sub(label, text)
        return text

    def preprocess(self, nb, resources):
        paths = self._paths()
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            kept = []
            for out in cell.get("outputs", []):
                if out.get("output_type") == "stream":
                    lines = [ln for ln in out.text.split("\n") if not NOISE_LINES.match(ln)]
                    out.text = self._clean("\n".join(lines), paths)
                    if out.get("name") == "stderr" and not out.text.strip():
                        continue
                elif out.get("output_type") == "error":
                    out.evalue = self._clean(str(out.get("evalue", "")), paths)
                    out.traceback = [self._clean(t, paths) for t in out.get("traceback", [])]
                else:
                    for mime, data in out.get("data", {}).items():
                        if mime.startswith("text/") and isinstance(data, str):
                            out["data"][mime] = self._clean(data, paths)
                kept.append(out)
            cell.outputs = kept
        return nb, resources
