"""Turn a jupytext percent script into an instructor notebook, or tidy an existing notebook.

    .venv/bin/python autograder/make_notebook.py draft.py autograder/source/NAME/NAME.ipynb
    .venv/bin/python autograder/make_notebook.py --tidy autograder/source/*/*.ipynb

Either way the notebook gets the course's kernel spec, loses jupytext's bookkeeping metadata and
all outputs, so every instructor source looks the same to nbgrader and to git.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jupytext
import nbformat

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def tidy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    for cell in nb.cells:
        cell.metadata.pop("jupytext", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def main(argv: list[str]) -> int:
    if argv[:1] == ["--tidy"]:
        for path in argv[1:]:
            nbformat.write(tidy(nbformat.read(path, as_version=4)), path)
        return 0
    if len(argv) != 2:
        print(__doc__)
        return 2
    src, dst = Path(argv[0]), Path(argv[1])
    dst.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(tidy(jupytext.read(src)), dst)
    print(f"wrote {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
