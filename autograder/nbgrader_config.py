"""nbgrader configuration of the On-Device Learning course.

Run nbgrader from this folder (``cd autograder``) or through ``python -m odlkit.grading``,
which always does. Instructor guide: README.md in this folder.
"""

import os

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearOutput,
    DeduplicateIds,
    GetGrades,
    IgnorePattern,
    LimitOutput,
    OverwriteKernelspec,
    SaveAutoGrades,
)

from odlkit.grading.limits import LimitedExecute
from odlkit.grading.preprocessors import CleanFeedback, RequireExecuted, RestoreCells

c = get_config()  # noqa: F821 (provided by traitlets when nbgrader loads this file)

# The course folder is the folder of this file, wherever nbgrader is started from.
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.course_id = "odl-tinyml"
# Don't copy scratch files from the sources into releases and submissions.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "*.py.bak", ".DS_Store", "work"]

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
if os.environ.get("ODL_GRADER_REPLAY") == "1":
    # `python -m odlkit.grading autograde --jobs N` ran the notebooks in parallel sandboxes
    # (odlkit/grading/parallel.py); this records their grades here without running them again.
    # The sandboxes restored the locked cells already (RestoreCells again would drop the
    # "was missing" notes of restored cells from the graded notebook).
    c.Autograde.sanitize_preprocessors = [RequireExecuted, DeduplicateIds, OverwriteKernelspec, CheckCellMetadata]
    c.Autograde.autograde_preprocessors = [
        IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades, AssignLatePenalties,
        CheckCellMetadata,
    ]

# Feedback HTML for students: without TensorFlow's start-up noise and the grading machine's paths.
c.GenerateFeedback.preprocessors = [GetGrades, CleanFeedback, CSSHTMLHeaderPreprocessor]
c.CleanFeedback.course_root = c.CourseDirectory.root

# Late submissions: no penalty by default; see the nbgrader docs for LateSubmissionPlugin.
# c.AssignLatePenalties.plugin_class = "nbgrader.plugins.LateSubmissionPlugin"

# The exchange (nbgrader's `release_assignment` / `collect` on JupyterHub). Without a hub it is a
# git-ignored folder of the course, so the formgrader finds one and shows no missing-exchange
# warning; on a hub set ODL_EXCHANGE_ROOT (or this line) to the shared folder, e.g. /srv/nbgrader/exchange.
c.Exchange.root = os.environ.get("ODL_EXCHANGE_ROOT") or os.path.join(c.CourseDirectory.root, "exchange")
os.makedirs(c.Exchange.root, exist_ok=True)
