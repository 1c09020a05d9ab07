"""A live viewer for federated rounds: per-client accuracy, the aggregate, and bytes sent.

Pass :meth:`FLViewer.update` as the ``callback`` of :func:`odlkit.fl.run_fedavg`::

    viewer = FLViewer(n_clients=20, title="FedAvg, Dirichlet(0.3)")
    w, hist = fl.run_fedavg(pool, w0, rounds=30, callback=viewer.update)

In a notebook front end it shows a status line updated every round and an ipywidgets
``Output`` with three panels redrawn in place every ``every`` rounds and after the last one
(accuracy of the global model on each client's data as a heat strip, global / federated
accuracy per round, cumulative megabytes); :meth:`show` then only makes sure the last round is
drawn there (no second copy of the figure). Without a front end (tests, nbconvert, a terminal)
it prints one line per ``every`` rounds instead and :meth:`show` draws the final figure once.
"""

from __future__ import annotations

import numpy as np

from odlkit.widgets.dashboard import frontend_available


class FLViewer:
    def __init__(self, n_clients: int, title: str = "federated rounds", every: int = 1, live: bool | None = None):
        if n_clients < 1:
            raise ValueError(f"n_clients must be >= 1, got {n_clients}")
        self.n_clients, self.title, self.every = int(n_clients), title, max(1, int(every))
        self.live = frontend_available() if live is None else bool(live)
        self.lines: list[str] = []
        self.history = None
        self.drawn_round: int | None = None  # the round the live figure shows
        self.draws = 0
        self._out = None
        if self.live:
            import ipywidgets as w
            from IPython.display import display

            self._out = w.Output()
            self._label = w.HTML(f"<b>{title}</b>: waiting for round 1")
            display(w.VBox([self._label, self._out]))

    def update(self, t: int, history) -> None:
        """Callback for ``run_fedavg``: record round ``t`` and redraw (or print)."""
        self.history = history
        line = self._line(t, history)
        if self.live:  # the status line is cheap: every round, so the viewer is live whatever `every` is
            self._label.value = f"<b>{self.title}</b>: {line}"
        if t % self.every and t != history.config.get("rounds"):
            return
        self.lines.append(line)
        if not self.live:
            print(line)
            return
        self._draw(t)

    def _line(self, t: int, history) -> str:
        acc = history.accuracy[-1]
        client = np.asarray(history.client_accuracy[-1], dtype=float)
        worst = np.nanmin(client) if np.isfinite(client).any() else float("nan")
        mb = history.megabytes[-1]
        return (f"round {t:3d}: accuracy {acc:.3f}, worst client {worst:.3f}, "
                f"{history.reported[-1]}/{len(history.selected[-1])} clients reported, {mb:.3f} MB so far")

    def _draw(self, t: int) -> None:
        import matplotlib.pyplot as plt

        with self._out:
            self._out.clear_output(wait=True)
            self.figure()
            plt.show()
        self.drawn_round = t
        self.draws += 1

    def figure(self):
        """The three-panel figure of the rounds seen so far."""
        import matplotlib.pyplot as plt

        h = self.history
        if h is None:
            raise RuntimeError("no rounds yet: pass viewer.update as run_fedavg's callback first")
        fig, axes = plt.subplots(1, 3, figsize=(14, 3.2))
        C = np.array([np.asarray(a, dtype=float) for a in h.client_accuracy])
        im = axes[0].imshow(C.T, aspect="auto", vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
        axes[0].set_xlabel("round")
        axes[0].set_ylabel("client")
        axes[0].set_title("accuracy on each client's data")
        fig.colorbar(im, ax=axes[0])
        axes[1].plot(h.round, h.accuracy, marker=".", label="global")
        axes[1].plot(h.round, h.federated_accuracy, ls="--", label="federated (weighted)")
        if np.isfinite(C).any():
            axes[1].plot(h.round, np.nanmin(C, axis=1), ls=":", label="worst client")
        axes[1].set_xlabel("round")
        axes[1].set_ylim(0, 1)
        axes[1].legend(fontsize=8)
        axes[1].set_title("aggregate")
        axes[2].plot(h.round, h.megabytes, marker=".")
        axes[2].set_xlabel("round")
        axes[2].set_ylabel("MB sent (up + down)")
        axes[2].set_title("communication")
        fig.suptitle(self.title)
        fig.tight_layout()
        return fig

    def show(self):
        """The final figure: drawn once below the cell without a live front end; in the live
        viewer, the figure in place is brought up to the last round (never a second copy)."""
        if self.live and self._out is not None:
            last = None if self.history is None else self.history.round[-1] if len(self.history.round) else None
            if last is not None and self.drawn_round != last:
                self._draw(last)
            return
        import matplotlib.pyplot as plt

        self.figure()
        plt.show()
