"""Live training dashboard: loss and accuracy per epoch while a board trains, then the confusion matrix.

Works with any object that has the ``odlkit.board`` API (a real board, the virtual board) and
with the host head (:class:`odlkit.head.Head`), because it only needs a per-epoch callback::

    dash = TrainingDashboard(title="on-device training")
    dash.train(board, epochs=20, lr=0.05)          # board.train(..., callback=...) + board.evaluate()
    # or: head.fit(X, y, callback=dash); dash.finish(confusion=..., class_names=...)

In a live notebook front end (JupyterLab, Notebook 7, VS Code, Colab) the figure redraws in
place as epochs arrive. Without a front end (pytest, ``nbconvert``/``nbclient`` runs, a
terminal) it prints one line per epoch instead and draws the final figure once, so the
stored output stays readable. Force a mode with ``live=True/False`` or ``ODL_WIDGETS=0/1``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["TrainingDashboard", "frontend_available", "epoch_fields"]


def frontend_available() -> bool:
    """True when code runs in a kernel with a live notebook front end that renders updates.

    ``ODL_WIDGETS=1``/``0`` overrides. Otherwise: an IPython kernel (``ZMQInteractiveShell``)
    started by a Jupyter server (it sets ``JPY_SESSION_NAME``), VS Code or Colab. ``nbclient``
    (nbconvert, pytest's notebook runs) sets none of them, so it gets printed output.
    """
    env = os.environ.get("ODL_WIDGETS", "").strip().lower()
    if env in {"0", "false", "no", "off"}:
        return False
    if env in {"1", "true", "yes", "on"}:
        return True
    ip_mod = sys.modules.get("IPython")
    if ip_mod is None:
        return False
    ip = ip_mod.get_ipython()
    if ip is None or type(ip).__name__ != "ZMQInteractiveShell":
        return False
    return bool(
        os.environ.get("JPY_SESSION_NAME")
        or os.environ.get("VSCODE_PID")
        or "__vsc_ipynb_file__" in ip.user_ns
        or "google.colab" in sys.modules
    )


def _in_ipython() -> bool:
    ip_mod = sys.modules.get("IPython")
    return ip_mod is not None and ip_mod.get_ipython() is not None


def epoch_fields(r) -> tuple[int, float, float]:
    """``(epoch, loss, accuracy)`` from an epoch report: a mapping, an object with attributes
    (``EpochLog``, the board's epoch events) or an ``(epoch, loss, acc)`` tuple."""
    if isinstance(r, tuple | list) and len(r) == 3:
        r = {"epoch": r[0], "loss": r[1], "accuracy": r[2]}
    if isinstance(r, Mapping):
        get = r.get
    else:
        def get(k, default=None):
            return getattr(r, k, default)
    epoch = get("epoch")
    loss = get("loss")
    acc = get("accuracy", get("acc"))
    if epoch is None or loss is None or acc is None:
        raise ValueError(f"an epoch report needs epoch, loss and accuracy (or acc); got {r!r}")
    acc = float(acc)
    if acc > 1.0:  # a percentage
        acc /= 100.0
    return int(epoch), float(loss), acc


class TrainingDashboard:
    """Collects per-epoch loss/accuracy and shows them live; call it as the epoch callback.

    ``history`` is ``{"epoch": [...], "loss": [...], "accuracy": [...]}``. Calling the
    dashboard returns ``True`` (keep training), so it can be a board's or ``Head.fit``'s callback.
    """

    def __init__(self, title: str = "on-device training", epochs: int | None = None, live: bool | None = None,
                 min_redraw_s: float = 0.25, print_every: int | None = None, out=None):
        self.title = title
        self.epochs = epochs
        self.live = frontend_available() if live is None else bool(live)
        self.min_redraw_s = float(min_redraw_s)
        self.print_every = print_every
        self.out = out if out is not None else sys.stdout
        self.history: dict[str, list] = {"epoch": [], "loss": [], "accuracy": []}
        self.figure = None
        self.confusion = None
        self.class_names: list[str] | None = None
        self.result = None
        self._handle = None
        self._last_draw = 0.0
        self._t0 = None

    # callback -----------------------------------------------------------------------------
    def __call__(self, report) -> bool:
        return self.on_epoch(report)

    def on_epoch(self, report) -> bool:
        epoch, loss, acc = epoch_fields(report)
        if self._t0 is None:
            self._t0 = time.perf_counter()
        self.history["epoch"].append(epoch)
        self.history["loss"].append(loss)
        self.history["accuracy"].append(acc)
        if self.live:
            now = time.perf_counter()
            last = self.epochs is not None and epoch >= self.epochs
            if now - self._last_draw >= self.min_redraw_s or last:
                self._draw()
                self._last_draw = now
        else:
            every = self.print_every or max(1, (self.epochs or 20) // 10)
            if epoch == 1 or epoch % every == 0 or (self.epochs is not None and epoch == self.epochs):
                total = f"/{self.epochs}" if self.epochs else ""
                print(f"[{self.title}] epoch {epoch}{total}  loss {loss:.4f}  accuracy {acc:.3f}", file=self.out)
        return True

    # drawing ------------------------------------------------------------------------------
    def _draw(self):
        import matplotlib.pyplot as plt

        from odlkit.plots import confusion_matrix as plot_confusion

        has_cm = self.confusion is not None
        if self.figure is None or (has_cm and len(self.figure.axes) < 3):
            if self.figure is not None:
                plt.close(self.figure)
            self.figure, _ = plt.subplots(1, 3 if has_cm else 2, figsize=(12 if has_cm else 8.5, 3.4))
            plt.close(self.figure)  # drawn only through display(), never twice by the inline backend
        axes = self.figure.axes
        for ax in axes:
            ax.clear()
        ep = self.history["epoch"]
        axes[0].plot(ep, self.history["loss"], "o-", ms=3, color="C0")
        axes[0].set_xlabel("epoch")
        axes[0].set_ylabel("cross-entropy loss")
        axes[0].grid(alpha=0.3)
        axes[1].plot(ep, self.history["accuracy"], "o-", ms=3, color="C1")
        axes[1].set_ylim(-0.02, 1.02)
        axes[1].set_xlabel("epoch")
        axes[1].set_ylabel("training accuracy")
        axes[1].grid(alpha=0.3)
        if self.epochs:
            for ax in axes[:2]:
                ax.set_xlim(0.5, self.epochs + 0.5)
        if has_cm:
            cm = np.asarray(self.confusion)
            yt = np.repeat(np.arange(cm.shape[0]), cm.sum(1).astype(int))
            yp = np.concatenate([np.repeat(np.arange(cm.shape[1]), row.astype(int)) for row in cm]) if cm.sum() else yt
            plot_confusion(yt, yp, class_names=self.class_names or [str(i) for i in range(cm.shape[0])], ax=axes[2])
            axes[2].set_title("confusion (stored samples)")
        last = f"epoch {ep[-1]}: loss {self.history['loss'][-1]:.3f}, acc {self.history['accuracy'][-1]:.3f}" if ep else ""
        self.figure.suptitle(f"{self.title}  {last}")
        self.figure.tight_layout()
        if _in_ipython():
            from IPython.display import display

            if self._handle is None:
                self._handle = display(self.figure, display_id=True)
            else:
                self._handle.update(self.figure)

    # high-level ---------------------------------------------------------------------------
    def finish(self, confusion=None, class_names: Sequence[str] | None = None, evaluation=None):
        """Add the confusion matrix (counts, rows = true class) and draw the final figure.

        ``evaluation`` may be a board's ``evaluate()`` result (a mapping or object with
        ``confusion``/``cm`` and ``class_names``/``names``). Returns the figure.
        """
        if evaluation is not None:
            confusion, class_names = _confusion_of(evaluation, confusion, class_names)
        if confusion is not None:
            self.confusion = np.asarray(confusion)
            self.class_names = list(class_names) if class_names is not None else None
            if not self.live:
                names = self.class_names or [str(i) for i in range(len(self.confusion))]
                width = max(len(n) for n in names)
                print(f"[{self.title}] confusion matrix (rows = true, columns = predicted):", file=self.out)
                for n, row in zip(names, self.confusion, strict=True):
                    print(f"  {n:>{width}} " + " ".join(f"{int(v):4d}" for v in row), file=self.out)
        if self.history["epoch"] or self.confusion is not None:
            self._draw()
        return self.figure

    def train(self, board, **train_kwargs):
        """Run ``board.train(**train_kwargs)`` with this dashboard as the per-epoch callback, then
        ``board.evaluate()`` for the confusion matrix. Returns the board's train result.

        ``board`` is anything with the ``odlkit.board`` API (``train(..., callback=f)`` calling
        ``f(epoch, loss, acc)``, ``evaluate()``, ``class_names()``).
        """
        if self.epochs is None and "epochs" in train_kwargs:
            self.epochs = int(train_kwargs["epochs"])
        self.result = board.train(callback=lambda epoch, loss, acc: self.on_epoch((epoch, loss, acc)), **train_kwargs)
        self.evaluation = board.evaluate(use_replay=train_kwargs.get("use_replay", True))
        names = board.class_names() if hasattr(board, "class_names") else None
        self.finish(evaluation=self.evaluation, class_names=names)
        return self.result


def _confusion_of(ev, confusion=None, class_names=None):
    def get(k):
        if isinstance(ev, Mapping):
            return ev.get(k)
        return getattr(ev, k, None)

    if confusion is None:
        confusion = get("confusion") if get("confusion") is not None else get("cm")
    if class_names is None:
        class_names = get("class_names") if get("class_names") is not None else get("names")
    return confusion, class_names
