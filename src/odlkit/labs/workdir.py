"""Where a lab keeps the student's files: recordings, exported models, the virtual board's flash.

A folder that survives a reboot and that the student can find: ``$ODL_WORK_DIR/<lab>`` if the
variable is set, else ``work/`` next to the notebook (Jupyter runs a notebook in its own folder;
``work/`` is git-ignored and never copied into a release or a submission).

Run All must give the same result twice. The virtual board keeps its "flash" in a file of this
folder, and a saved head in that flash would change what the next run starts from; so a session
starts clean unless the student asks to resume: the previous session's files are moved (not
deleted) into ``previous/<run number>-<time>/`` of the same folder, of which the newest ``keep`` stay.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

WORK_DIR_ENV = "ODL_WORK_DIR"
PREVIOUS = "previous"


def work_dir(lab: str, resume: bool = False, keep: int = 3, base: str | Path | None = None) -> Path:
    """The folder for ``lab``'s files in this session (created).

    ``resume=False`` (a fresh run) moves what an earlier session left there into
    ``previous/<run number>-<YYYYmmdd-HHMMSS>/`` and keeps the newest ``keep`` of those; ``resume=True`` keeps
    the folder as it is (the recordings and the virtual board's flash of the last run).
    ``base`` overrides ``$ODL_WORK_DIR`` (then ``<base>/<lab>``); without either: ``./work``.
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1 (the run just moved away is always kept), got {keep}")
    root = base if base is not None else os.environ.get(WORK_DIR_ENV)
    folder = (Path(root).expanduser() / lab) if root else Path.cwd() / "work"
    folder = folder.resolve()
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file; set {WORK_DIR_ENV} to a folder for the lab's files")
    folder.mkdir(parents=True, exist_ok=True)
    left = [p for p in folder.iterdir() if p.name != PREVIOUS]
    if left and not resume:
        # <run number>-<time>: the number orders the runs even within one second
        runs = sorted((folder / PREVIOUS).glob("[0-9][0-9][0-9][0-9]-*"))
        number = int(runs[-1].name[:4]) + 1 if runs else 1
        dest = folder / PREVIOUS / f"{number:04d}-{time.strftime('%Y%m%d-%H%M%S')}"
        dest.mkdir(parents=True)
        for p in left:
            shutil.move(str(p), dest / p.name)
        for old in [*runs, dest][:-keep]:
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    return folder
