"""odlkit.labs.workdir: a lab's files go to a folder that survives (``ODL_WORK_DIR`` or ``./work``),
and a fresh session starts clean without deleting the last run's files."""

from __future__ import annotations

import pytest

from odlkit.board import Board
from odlkit.board.client import BoardError
from odlkit.labs.workdir import PREVIOUS, WORK_DIR_ENV, work_dir


def test_default_is_work_next_to_the_notebook_and_the_variable_moves_it(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(WORK_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)  # Jupyter runs a notebook in its own folder
    assert work_dir("lab1_motion") == tmp_path / "work" and (tmp_path / "work").is_dir()
    monkeypatch.setenv(WORK_DIR_ENV, str(tmp_path / "mine"))
    assert work_dir("lab1_motion") == tmp_path / "mine" / "lab1_motion"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError, match=WORK_DIR_ENV):
        work_dir("afile", base=tmp_path)


def test_a_fresh_session_moves_the_last_runs_files_and_keeps_the_newest(tmp_path) -> None:
    folder = work_dir("lab", base=tmp_path)
    (folder / "my_gestures").mkdir()
    (folder / "my_gestures" / "walking.0001.csv").write_text("timestamp,ax\n0,1\n40,2\n")
    (folder / "virtual_flash.bin").write_bytes(b"\1\2")
    assert work_dir("lab", base=tmp_path, resume=True) == folder  # resume: untouched
    assert sorted(p.name for p in folder.iterdir()) == ["my_gestures", "virtual_flash.bin"]
    assert work_dir("lab", base=tmp_path) == folder  # fresh: clean, the old files moved, not lost
    assert [p.name for p in folder.iterdir()] == [PREVIOUS]
    (run,) = (folder / PREVIOUS).iterdir()
    assert (run / "my_gestures" / "walking.0001.csv").read_text().startswith("timestamp")
    assert (run / "virtual_flash.bin").read_bytes() == b"\1\2"
    for i in range(4):  # four more runs that each leave a file: only the newest 3 runs stay
        (folder / f"run{i}.txt").write_text(str(i))
        work_dir("lab", base=tmp_path, keep=3)
    kept = sorted((folder / PREVIOUS).iterdir())
    assert [sorted(p.name for p in r.iterdir()) for r in kept] == [["run1.txt"], ["run2.txt"], ["run3.txt"]]
    with pytest.raises(ValueError, match="keep"):
        work_dir("lab", base=tmp_path, keep=0)


def test_run_all_twice_starts_from_the_same_virtual_board(tmp_path) -> None:
    """The virtual board's flash lives in the work folder: a fresh second run must find it empty,
    as the first run did (LOAD fails), and a resumed run must find the head the first run saved."""
    flash = work_dir("lab1_motion", base=tmp_path) / "virtual_flash.bin"
    with Board.virtual(dataset="basic_motions", storage=flash) as b:
        with pytest.raises(BoardError, match="no valid weights"):
            b.load()
        for c in ("standing", "walking"):
            b.record(c, n=3)
        b.train(epochs=2, lr=0.05)
        saved = b.get_weights()
        b.save()
    assert flash.is_file()
    flash = work_dir("lab1_motion", base=tmp_path, resume=True) / "virtual_flash.bin"
    with Board.virtual(dataset="basic_motions", storage=flash) as b:
        b.load()
        assert b.get_weights() == saved
    flash = work_dir("lab1_motion", base=tmp_path) / "virtual_flash.bin"
    assert not flash.exists()
    with Board.virtual(dataset="basic_motions", storage=flash) as b:
        with pytest.raises(BoardError, match="no valid weights"):
            b.load()
