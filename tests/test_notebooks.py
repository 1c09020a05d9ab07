"""Every instructor notebook runs top to bottom in a fresh kernel, in quick mode.

The instructor version holds the solutions, so it must pass all its own tests (visible and
hidden); a failing cell fails the test with the cell's source and traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO_ROOT / "autograder" / "source").glob("*/*.ipynb"))
CELL_TIMEOUT = 600  # seconds; a quick-mode cell taking longer is a bug in the notebook


def _id(path: Path) -> str:
    return path.parent.name


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "no instructor notebooks under autograder/source/"


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_notebook_runs(path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    env = {**os.environ, "ODL_QUICK": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    try:
        client.execute(env=env)
    except CellExecutionError as e:
        pytest.fail(f"{path.relative_to(REPO_ROOT)} failed:\n{e}", pytrace=False)
    # Keep the executed copy for inspection (never written over the source).
    out_dir = REPO_ROOT / "tests" / "artifacts" / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_dir / path.name)
