"""nbgrader configuration of the On-Device Learning course.

Run nbgrader from this folder (``cd autograder``) or through ``python -m odlkit.grading``,
which always does. Instructor guide: README.md in this folder.
"""

import os

from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearOutput,
    DeduplicateIds,
    IgnorePattern,
    LimitOutput,
    OverwriteKernelspec,
    SaveAutoGrades,
)

from odlkit.grading.limits import LimitedExecute
from odlkit.grading.preprocessors import RestoreCells

c = get_config()  # noqa: F821 (provided by traitlets when nbgrader loads this file)

# The course folder is the folder of this file, wherever nbgrader is started from.
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.course_id = "odl-tinyml"
# Don't copy scratch files from the sources into releases and submissions.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "*.py.bak", ".DS_Store"]

# Per-cell time limit while autograding. The longest instructor cell (full mode, not
# ODL_QUICK) must fit with a margin; a student's cell that runs longer is interrupted,
# counts as an error for that cell, and grading goes on with the next cell.
# ODL_GRADER_TIMEOUT overrides it (the tests use a short one).
c.Execute.timeout = int(os.environ.get("ODL_GRADER_TIMEOUT", "300"))
# Memory (ODL_GRADER_MEM_MB, default 4096) and CPU (ODL_GRADER_CPU_S, default 3600)
# limits for each grading kernel are applied by LimitedExecute (odlkit/grading/limits.py).

# Deleted test cells and read-only cells are put back (with the hidden tests) before grading.
c.OverwriteCells.add_missing_cells = True
c.Autograde.sanitize_preprocessors = [
    ClearOutput, DeduplicateIds, OverwriteKernelspec, RestoreCells, CheckCellMetadata,
]
c.Autograde.autograde_preprocessors = [
    LimitedExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
    SaveAutoGrades, AssignLatePenalties, CheckCellMetadata,
]

# Late submissions: no penalty by default; see the nbgrader docs for LateSubmissionPlugin.
# c.AssignLatePenalties.plugin_class = "nbgrader.plugins.LateSubmissionPlugin"

# JupyterHub exchange (only needed for `release_assignment` / `collect` over the hub).
# c.Exchange.root = "/srv/nbgrader/exchange"
