"""Gesture recorder: a class name, a Record button, a progress bar and a live IMU plot.

Drives any object with the ``odlkit.board`` API (a real Nano 33 BLE Sense or the virtual
board). Each take asks the board to ``record(label, n)`` windows: the board extracts their
features with the frozen backbone and keeps them in its training store (the raw windows stay
on the device). To keep a copy of the raw motion in the ``datasets/`` format, the recorder
gets raw windows from ``raw_source(label, n) -> (n, 50, 6)`` after a take and writes each one
with ``odlkit.data.write_csv`` / ``write_edge_impulse`` into ``save_dir`` (never the
repository by default: pass a folder you own). The default raw source of a real board is
``board.stream(seconds)`` (the user keeps moving for a moment); for the virtual board pass
:func:`odlkit.labs.lab1.virtual_raw_source` (the exact windows it replayed), because its STREAM
is not class-specific.

In a notebook front end, :meth:`Recorder.widget` returns the ipywidgets UI; everywhere
(including nbconvert and tests) :meth:`Recorder.record` does the same work from code and
prints its progress.
"""

from __future__ import annotations

import html
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .dashboard import _in_ipython, frontend_available

__all__ = ["Recorder", "board_class_names"]

IMU_CHANNELS = ("ax", "ay", "az", "gx", "gy", "gz")
# The status line wraps inside the widget (ipywidgets' labels cut long text off at the edge).
_STATUS_CSS = ("<style>.odl-recorder-status, .odl-recorder-status > .widget-html-content {white-space: normal !important;"
               " overflow-wrap: anywhere; height: auto !important; line-height: 1.4;}</style>")


def _get(obj, key, default=None):
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def board_class_names(board) -> list[str]:
    """The class names a board currently knows (``board.class_names()`` or ``board.info()``)."""
    if hasattr(board, "class_names") and callable(board.class_names):
        return list(board.class_names())
    info = board.info()
    names = _get(info, "class_names", None)
    if names is None:
        names = _get(info, "names", [])
    if isinstance(names, str):
        names = [n for n in names.split(",") if n]
    return list(names)


class Recorder:
    """Record labelled gesture windows on a board, with progress and an IMU preview.

    Parameters
    ----------
    board: an object with the ``odlkit.board`` API, or a function returning the current one (for a
        notebook that reconnects: the widget then always talks to the board the notebook holds).
    n: windows per take (each is 2 s of motion on a real board).
    save_dir: folder for raw recordings (``<label>.<id>.csv|json``); None keeps nothing.
    fmt: ``"csv"`` (``odlkit.data.write_csv``) or ``"json"`` (Edge Impulse data acquisition).
    stream_seconds: seconds of raw IMU captured per take from a real board's ``stream`` for
        the preview and ``save_dir`` (0 disables the capture).
    raw_source: ``f(label, n) -> array (n, steps, 6)`` giving the raw windows of a take
        (overrides the stream capture; needed for the virtual board).
    live: force the widget (True) or printed (False) mode; default detects a front end.
    """

    def __init__(self, board, n: int = 10, save_dir: str | Path | None = None, fmt: str = "csv",
                 stream_seconds: float = 2.0, raw_source=None, live: bool | None = None, out=None):
        if fmt not in ("csv", "json"):
            raise ValueError(f"fmt must be 'csv' or 'json' (Edge Impulse), got {fmt!r}")
        if n < 1:
            raise ValueError(f"n (windows per take) must be >= 1, got {n}")
        self._board = board
        self.n = int(n)
        self.save_dir = Path(save_dir) if save_dir is not None else None
        self.fmt = fmt
        self.stream_seconds = float(stream_seconds)
        self.raw_source = raw_source
        self.live = frontend_available() if live is None else bool(live)
        self.out = out if out is not None else sys.stdout
        self.takes: list[dict] = []
        self.saved: list[Path] = []
        self.last_stream: np.ndarray | None = None
        self._ui = None

    @property
    def board(self):
        """The board the takes go to (the provider's current board when a function was given)."""
        b = self._board
        return b() if callable(b) and not hasattr(b, "record") else b

    # core ---------------------------------------------------------------------------------
    def check_label(self, label: str) -> str:
        """The gesture name, stripped, if the board can record it; ValueError saying why not.

        A virtual board can only replay the classes of its recordings: any other name is
        refused here, before anything is sent to the board (no class is added)."""
        label = str(label).strip()
        if not label:
            raise ValueError("the class name is empty: type a gesture name first")
        if any(c in label for c in " $*,"):
            raise ValueError(f"class name {label!r} must not contain spaces, commas, '$' or '*'")
        from odlkit.board.virtual import replayable_classes

        can = replayable_classes(self.board)
        if can is not None and label not in can:
            raise ValueError(f"the virtual board has no recordings of {label!r} to replay; it can record "
                             f"{', '.join(can)} (a real board records any gesture you perform)")
        return label

    def ensure_class(self, label: str) -> int:
        """Index of ``label`` on the board, adding the class first if the board lacks it."""
        label = self.check_label(label)
        names = board_class_names(self.board)
        if label in names:
            return names.index(label)
        return int(self.board.add_class(label))

    def record(self, label: str, n: int | None = None) -> dict:
        """One take: ``n`` windows of ``label`` into the board's store (+ raw capture if enabled).

        Returns ``{"label", "n", "stored", "seconds", "files"}`` and appends it to ``takes``.
        """
        n = self.n if n is None else int(n)
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        label = self.check_label(label)  # before anything reaches the board
        self.ensure_class(label)
        t0 = time.perf_counter()
        bar = self._progress_start(label, n)

        def on_window(i, total, _name):
            # called just before window i (1-based) starts: i - 1 windows are done
            self._progress_update(bar, label, int(i) - 1, n)

        res = self.board.record(label, n, on_window=on_window)
        self._progress_update(bar, label, n, n, final=True)
        files = []
        for x in self._raw(label, n):
            self.last_stream = x
            if self.save_dir is not None:
                files.append(self._save(label, x))
        if self.last_stream is not None:
            self._plot(self.last_stream, label)
        take = {
            "label": label,
            "n": n,
            "stored": res if isinstance(res, int | np.integer) else _get(res, "stored", None),
            "seconds": round(time.perf_counter() - t0, 3),
            "files": files,
        }
        self.takes.append(take)
        if not self.live:
            extra = f", saved {len(files)} raw recording(s) to {self.save_dir}" if files else ""
            print(f"[recorder] {label}: {n} windows recorded, {take['stored']} stored on the board{extra}", file=self.out)
        return take

    def _raw(self, label, n) -> list[np.ndarray]:
        """Raw (T, 6) recordings of this take: from ``raw_source`` or a real board's stream."""
        if self.raw_source is not None:
            X = np.asarray(self.raw_source(label, n), dtype=np.float32)
            if X.ndim != 3 or X.shape[-1] != len(IMU_CHANNELS):
                raise ValueError(f"raw_source must return (n, steps, {len(IMU_CHANNELS)}) windows, got {X.shape}")
            return list(X)
        if self.stream_seconds <= 0 or getattr(self.board, "kind", "serial") == "virtual":
            return []
        x = np.asarray(self.board.stream(max(1, int(round(self.stream_seconds)))), dtype=np.float32)
        return [x] if x.ndim == 2 and x.shape[1] == len(IMU_CHANNELS) and len(x) >= 2 else []

    def record_all(self, labels, n: int | None = None) -> list[dict]:
        """One take per label, in order."""
        return [self.record(lbl, n) for lbl in labels]

    def counts(self) -> dict[str, int]:
        """Windows recorded per label in this session."""
        out: dict[str, int] = {}
        for t in self.takes:
            out[t["label"]] = out.get(t["label"], 0) + t["n"]
        return out

    def _save(self, label: str, x: np.ndarray) -> Path:
        from odlkit import data

        rate = float(_get(self.board.info(), "rate", 25) or 25)
        path = self.save_dir / f"{label}.{uuid.uuid4().hex[:8]}.{self.fmt}"
        if self.fmt == "csv":
            data.write_csv(path, x, rate)
        else:
            data.write_edge_impulse(path, x, rate)
        classes = self.save_dir / "classes.txt"
        known = classes.read_text().split() if classes.exists() else []
        if label not in known:
            classes.write_text("\n".join([*known, label]) + "\n")
        self.saved.append(path)
        return path

    # progress + plot (widget or text) ------------------------------------------------------
    def _progress_start(self, label, n):
        if self.live and self._ui is not None:
            self._ui["progress"].max = n
            self._ui["progress"].value = 0
            self._ui["status"].value = html.escape(f"recording {label}: move now")
            return None
        return "text"

    def _progress_update(self, bar, label, done, n, final=False):
        if bar == "text":
            # a real board needs the user to move for each 2-s window: say when; the virtual
            # board replays instantly, so only the take's summary line is printed
            if not final and getattr(self.board, "kind", "serial") != "virtual" and done is not None and done < n:
                print(f"[recorder] {label}: window {done + 1}/{n}, perform the gesture now", file=self.out)
            return
        if self._ui is not None and done is not None:
            self._ui["progress"].value = min(done, n)
            self._ui["status"].value = html.escape(f"{label}: {min(done, n)}/{n}" + (" done" if final else " (move now)"))

    def _plot(self, x, label):
        if not (self.live and self._ui is not None):
            return
        import matplotlib.pyplot as plt

        from odlkit.plots import imu_window

        out = self._ui["plot"]
        out.clear_output(wait=True)
        with out:
            # Accelerometer (g) and gyroscope (deg/s) differ by ~100x: one axis each.
            x = np.asarray(x)
            fig, (ax_a, ax_g) = plt.subplots(1, 2, figsize=(10, 2.6))
            imu_window(x[:, :3], channels=list(IMU_CHANNELS[:3]), sample_rate_hz=25, ax=ax_a,
                       title=f"last take: {label}, accelerometer (g)")
            imu_window(x[:, 3:], channels=list(IMU_CHANNELS[3:]), sample_rate_hz=25, ax=ax_g,
                       title="gyroscope (deg/s)")
            plt.show()

    # widget ---------------------------------------------------------------------------------
    def widget(self):
        """The ipywidgets UI: class name, windows per take, Record button, progress, IMU plot."""
        import ipywidgets as w

        name = w.Combobox(placeholder="gesture name", options=board_class_names(self.board), description="class",
                          ensure_option=False)
        count = w.BoundedIntText(value=self.n, min=1, max=200, description="windows")
        button = w.Button(description="Record", button_style="danger", icon="circle")
        progress = w.IntProgress(value=0, min=0, max=self.n, description="progress")
        status = w.HTML(value="type a class name, then Record and perform the gesture", layout={"width": "100%"})
        status.add_class("odl-recorder-status")
        plot = w.Output(layout={"min_height": "200px"})
        self._ui = {"name": name, "count": count, "button": button, "progress": progress, "status": status, "plot": plot}
        self.live = True

        def on_click(_):
            button.disabled = True
            try:
                self.record(name.value, count.value)
                name.options = board_class_names(self.board)
                status.value = html.escape("recorded so far: " + ", ".join(f"{k} {v}" for k, v in self.counts().items()))
            except Exception as e:  # shown to the user; the board keeps its state
                status.value = html.escape(f"error: {e}")
            finally:
                button.disabled = False

        button.on_click(on_click)
        return w.VBox([w.HTML(_STATUS_CSS), w.HBox([name, count, button]), progress, status, plot])

    def show(self):
        """Display the widget in a front end; otherwise print how to record from code."""
        if self.live and _in_ipython():
            from IPython.display import display

            display(self.widget())
        else:
            self.live = False
            print("[recorder] no notebook front end: record from code with recorder.record('<gesture>', n)", file=self.out)
