"""ch04's epsilon explorer renders once; ch03's FL viewer is live every round and draws its figure once."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")


@pytest.fixture
def displayed(monkeypatch):
    """A notebook front end: what display() is given, in order."""
    import IPython.display

    shown = []
    monkeypatch.setenv("ODL_WIDGETS", "1")
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.extend(objs))
    return shown


def test_epsilon_explorer_show_displays_once_and_returns_nothing(displayed):
    import ipywidgets as w

    from odlkit.privacy.accounting import compute_epsilon
    from odlkit.widgets.epsilon import EpsilonExplorer

    ex = EpsilonExplorer(noise_multiplier=1.0, sampling_rate=0.02, steps=500, delta=1e-5)
    # ch04 ends a cell with `EpsilonExplorer(...).show()`: a returned widget would be drawn again
    assert ex.show() is None
    assert len(displayed) == 1 and isinstance(displayed[0], w.VBox)
    z, _q, _t, out = displayed[0].children
    assert f"{compute_epsilon(1.0, 0.02, 500, 1e-5):.3f}" in out.value
    z.value = 2.0  # the slider moves: epsilon follows
    assert f"{compute_epsilon(2.0, 0.02, 500, 1e-5):.3f}" in out.value


def _history_of_a_real_run(rounds, callback):
    from odlkit import fl

    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, (3, 5))
    y = rng.integers(0, 3, 300)
    X = (centers[y] + rng.normal(0, 1, (300, 5))).astype(np.float32)
    parts = fl.iid_partition(len(y), 6, seed=0)
    model = fl.SoftmaxRegression(5, 3)
    data = [(X[p], y[p]) for p in parts]
    return fl.run_fedavg(fl.ClientPool(model, data), model.init(0), rounds=rounds, clients_per_round=3,
                         lr=0.1, batch_size=16, callback=callback)


def test_fl_viewer_is_live_every_round_and_never_repeats_its_figure(displayed):
    from odlkit.widgets.fl_viewer import FLViewer

    viewer = FLViewer(6, title="t", every=4, live=True)  # ch03 passes every=ROUNDS
    labels = []
    viewer._label.observe(lambda ch: labels.append(ch["new"]), names="value")
    _, hist = _history_of_a_real_run(6, viewer.update)
    # the status line followed every round, though the figure is redrawn only every 4
    assert [int(s.split("round")[1].split(":")[0]) for s in labels] == [1, 2, 3, 4, 5, 6]
    assert f"accuracy {hist.accuracy[-1]:.3f}" in labels[-1]
    assert viewer.draws == 2 and viewer.drawn_round == 6  # round 4 and the last round
    viewer.show()  # ch03 calls it after the run: the figure in place is current, nothing new
    assert viewer.draws == 2
    assert len(displayed) == 1  # the viewer's box, displayed once when it was created


def test_fl_viewer_show_brings_the_live_figure_to_the_last_round(displayed):
    from odlkit.widgets.fl_viewer import FLViewer

    viewer = FLViewer(6, every=4, live=True)
    _, hist = _history_of_a_real_run(3, lambda t, h: viewer.update(t, h) if t < 3 else setattr(viewer, "history", h))
    assert viewer.draws == 0
    viewer.show()
    assert viewer.draws == 1 and viewer.drawn_round == 3
