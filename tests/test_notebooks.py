"""Every instructor notebook runs top to bottom in a fresh kernel, in quick mode.

The instructor version holds the solutions, so it must pass all its own tests (visible and
hidden); a failing cell fails the test with the cell's source and traceback. The same run checks
for red noise: every line a cell prints on stderr must be on ``tests/stderr_allowlist.py`` (the
kernel gets the environment of a student's laptop: no TensorFlow log variables set).
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from stderr_allowlist import unexpected

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO_ROOT / "autograder" / "source").glob("*/*.ipynb"))
CELL_TIMEOUT = 600  # seconds; a quick-mode cell taking longer is a bug in the notebook
# Set in the test process (conftest) or a developer's shell, but not on a student's laptop.
NOISE_ENV = ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", "ABSL_MIN_LOG_LEVEL", "GRPC_VERBOSITY", "PYTHONWARNINGS")


def _id(path: Path) -> str:
    return path.parent.name


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "no instructor notebooks under autograder/source/"


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_notebook_runs(path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    env = {k: v for k, v in os.environ.items() if k not in NOISE_ENV}
    env.update(ODL_QUICK="1", MPLBACKEND="module://matplotlib_inline.backend_inline")
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
    noise = stderr_noise(nb)
    assert not noise, f"{path.relative_to(REPO_ROOT)} prints on stderr what tests/stderr_allowlist.py does not list:\n" + \
        "\n".join(noise)


def stderr_noise(nb) -> list[str]:
    """``cell i: line`` for every stderr line of the executed notebook that is not allowed."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                found += [f"cell {i}: {line[:200]}" for line in unexpected(out.get("text", ""))]
    return found


def test_stderr_check_flags_library_noise() -> None:
    """The check can fail: TensorFlow's C++ log line and a warning with a venv path are flagged,
    a tqdm bar is not."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x", outputs=[nbformat.v4.new_output(
        "stream", name="stderr", text="E0000 00:00:1796117189.138671   11238 node_def_util.cc:682] NodeDef mentions "
        "attribute use_unbounded_threadpool\n/home/s/.venv/lib/python3.11/site-packages/tensorflow/lite/python/"
        "convert.py:846: UserWarning: Statistics for quantized inputs were expected\n"
        "noise levels: 100%|##########| 4/4 [00:10<00:00,  2.5s/it]\n")])]
    found = stderr_noise(nb)
    assert len(found) == 2 and "NodeDef" in found[0] and "UserWarning" in found[1], found
