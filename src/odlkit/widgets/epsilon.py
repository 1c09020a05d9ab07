"""Epsilon explorer: how noise multiplier, sampling rate and steps set epsilon (and cost accuracy).

>>> from odlkit.widgets.epsilon import EpsilonExplorer
>>> EpsilonExplorer(utility=[(0.0, 0.95), (0.5, 0.93), (1.0, 0.88), (2.0, 0.75)]).show()

``show()`` displays the sliders once and returns None (so the line above, last in a cell, does
not render them a second time); :meth:`EpsilonExplorer.widget` returns them undisplayed.

Sliders for the noise multiplier, the sampling rate ``q = batch / n`` and the number of steps;
the epsilon comes from :func:`odlkit.privacy.accounting.compute_epsilon` (dp_accounting's RDP
accountant by default). "Expected accuracy" is interpolated from a privacy/utility curve
*measured* in the notebook (``utility=[(noise_multiplier, accuracy), ...]``); without one it is
not shown. Without a notebook front end (tests, nbconvert) ``show()`` prints a table instead.
"""

from __future__ import annotations

import math

import numpy as np

from odlkit.privacy.accounting import compute_epsilon


class EpsilonExplorer:
    def __init__(self, noise_multiplier: float = 1.0, sampling_rate: float = 0.01, steps: int = 1000,
                 delta: float = 1e-5, utility=None, accountant: str = "rdp"):
        self.noise_multiplier, self.sampling_rate, self.steps = noise_multiplier, sampling_rate, int(steps)
        self.delta, self.accountant = delta, accountant
        self.utility = None
        if utility is not None:
            u = np.asarray(sorted(utility), dtype=np.float64)
            if u.ndim != 2 or u.shape[1] != 2 or len(u) < 2:
                raise ValueError("utility must be at least two (noise_multiplier, accuracy) pairs")
            self.utility = u

    def expected_accuracy(self, noise_multiplier: float) -> float:
        """Accuracy interpolated from the measured curve (NaN without one; clamped at its ends)."""
        if self.utility is None:
            return float("nan")
        return float(np.interp(noise_multiplier, self.utility[:, 0], self.utility[:, 1]))

    def compute(self, noise_multiplier=None, sampling_rate=None, steps=None) -> dict:
        z = self.noise_multiplier if noise_multiplier is None else noise_multiplier
        q = self.sampling_rate if sampling_rate is None else sampling_rate
        t = self.steps if steps is None else int(steps)
        eps = compute_epsilon(z, q, t, self.delta, self.accountant) if z > 0 else math.inf
        return {"noise_multiplier": z, "sampling_rate": q, "steps": t, "delta": self.delta,
                "epsilon": eps, "expected_accuracy": self.expected_accuracy(z)}

    def table(self, noise_values=(0.5, 0.8, 1.0, 1.5, 2.0, 4.0)) -> str:
        lines = [f"q={self.sampling_rate:g}, steps={self.steps}, delta={self.delta:g} ({self.accountant})",
                 f"{'noise':>7s} {'epsilon':>10s} {'exp. acc':>9s}"]
        for z in noise_values:
            r = self.compute(z)
            lines.append(f"{z:7.2f} {r['epsilon']:10.3f} {r['expected_accuracy']:9.3f}")
        return "\n".join(lines)

    def show(self, force_text: bool = False) -> None:
        """Display the sliders (a table without a front end). Returns None: a returned widget,
        last in a cell, would be rendered a second time."""
        from odlkit.widgets.dashboard import frontend_available

        if force_text or not frontend_available():
            print(self.table())
            return None
        from IPython.display import display

        display(self.widget())
        return None

    def widget(self):
        """The sliders and the epsilon line as an ipywidgets box (not displayed)."""
        import ipywidgets as w

        z = w.FloatLogSlider(value=self.noise_multiplier, base=10, min=-0.5, max=1, step=0.02,
                             description="noise z", continuous_update=False)
        q = w.FloatLogSlider(value=self.sampling_rate, base=10, min=-4, max=0, step=0.05,
                             description="sampling q", continuous_update=False)
        t = w.IntSlider(value=self.steps, min=1, max=max(10_000, 2 * self.steps), step=10,
                        description="steps", continuous_update=False)
        out = w.HTML()

        def refresh(*_):
            r = self.compute(z.value, q.value, t.value)
            acc = "" if math.isnan(r["expected_accuracy"]) else f", expected accuracy <b>{r['expected_accuracy']:.3f}</b>"
            out.value = f"epsilon = <b>{r['epsilon']:.3f}</b> at delta = {self.delta:g}{acc}"

        for s in (z, q, t):
            s.observe(refresh, names="value")
        refresh()
        return w.VBox([z, q, t, out])
