"""What every lab does with its board, in one place: connect (a real board if one is plugged in,
else the virtual one), ask it for held-out predictions, read a device benchmark's JSON.

:mod:`odlkit.labs.lab1` and :mod:`odlkit.labs.lab2` wrap these with their sketch, data set and
prompts. numpy only at import time; the board client is imported when a board is opened.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from odlkit.config import RESULTS_DIR

__all__ = ["field", "open_board", "heldout_confusion", "results_json"]


def field(obj, key: str, default=None):
    """``obj[key]`` of a mapping (a board's ``info()``), else the attribute ``key``, else ``default``."""
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def open_board(prefer_real: bool = True, verbose: bool = True, virtual_user: str = "", **virtual_kwargs):
    """The real Nano 33 BLE Sense if one is plugged in (``Board.serial()``), else
    ``Board.virtual(**virtual_kwargs)``; ``virtual_user`` says, in the message, what the virtual
    board's sensor replays. No board, a busy port or the wrong firmware is reported, not raised."""
    from odlkit.board import Board

    if prefer_real:
        try:
            board = Board.serial()
            if verbose:
                print(f"connected to a real board: {board.info()}")
            return board
        except Exception as e:  # no board, port busy, wrong firmware: say so, use the virtual one
            if verbose:
                print(f"no real board ({type(e).__name__}: {e}); using the virtual board, which replays {virtual_user}")
    return Board.virtual(**virtual_kwargs)


def heldout_confusion(board, classes: Sequence[str], per_class: int,
                      prompt: Callable[[str, int], str] | None = None) -> dict[str, Any]:
    """``board.predict(c)`` ``per_class`` times for every class ``c`` of ``classes`` (the virtual
    board replays a held-out recording of ``c``; on a real board a person performs it after
    ``prompt(c, k)`` is printed). Returns ``{"accuracy", "per_class", "confusion", "classes",
    "board_classes"}``: confusion rows are the classes asked for, columns the board's classes; a
    class the board does not know counts as wrong."""
    names = list(board.class_names())
    cm = np.zeros((len(classes), len(names)), dtype=np.int64)
    real = getattr(board, "kind", "serial") != "virtual"
    for i, c in enumerate(classes):
        for k in range(int(per_class)):
            if real and prompt is not None:
                print(prompt(c, k), flush=True)
            cm[i, board.predict(c).label] += 1
    truth_cols = [names.index(c) if c in names else -1 for c in classes]
    correct = np.array([cm[i, j] if j >= 0 else 0 for i, j in enumerate(truth_cols)])
    return {
        "accuracy": float(correct.sum() / cm.sum()),
        "per_class": {c: float(correct[i] / cm[i].sum()) for i, c in enumerate(classes)},
        "confusion": cm,
        "classes": list(classes),
        "board_classes": names,
    }


def results_json(name: str, path: str | Path | None = None) -> dict | None:
    """``benchmarks/results/<name>`` (or ``path``) as a dict if it exists, else None."""
    p = Path(path) if path is not None else Path(RESULTS_DIR) / name
    return json.loads(p.read_text()) if p.exists() else None
