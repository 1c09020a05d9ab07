"""The client-pool protocol of odlkit.fl: every pool is an fl.Pool, failures are data.

run_fedavg is the kit's only FedAvg loop; simulated clients, Flower-style client objects and
boards (tests/test_lab3.py) all reach it through fl.Pool.fit_many -> (FitResults, [Failure]).
"""

import numpy as np
import pytest

from odlkit import fl


def _data(n_clients=6, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3.0, (3, 5))
    out = []
    for _ in range(n_clients):
        y = rng.integers(0, 3, 40)
        out.append(((centers[y] + rng.normal(0, 1, (40, 5))).astype(np.float32), y))
    return out


class Unplugged(ConnectionError):
    pass


class FlakyClient(fl.NumpyClient):
    """A client that drops out (raises ConnectionError) in the rounds listed in ``fails``."""

    def __init__(self, *a, fails=(), **kw):
        super().__init__(*a, **kw)
        self.fails = set(fails)

    def fit(self, weights, config=None):
        if config["round"] in self.fails:
            raise Unplugged(f"client {self.cid} unplugged in round {config['round']}")
        return super().fit(weights, config)


def test_every_pool_follows_the_protocol():
    model = fl.SoftmaxRegression(5, 3)
    data = _data()
    pools = [fl.ClientPool(model, data), fl.LoopPool([fl.NumpyClient(model, X, y, cid=i) for i, (X, y) in enumerate(data)])]
    for pool in pools:
        assert isinstance(pool, fl.Pool) and not isinstance(pool, fl.ManagedPool)
        res, failures = pool.fit_many(np.array([1, 4]), model.init(0), dict(fl.client.DEFAULT_CONFIG))
        assert isinstance(res, fl.FitResults) and failures == []
        assert res.ids.tolist() == [1, 4] and res.weights.shape == (2, model.size) and res.n.tolist() == [40, 40]
    assert not isinstance([1, 2], fl.Pool)


def test_a_client_that_drops_out_is_a_failure_and_the_round_goes_on():
    """Client 2 raises in rounds 2 and 3: those rounds average the other 5; a brute-force
    reference (the same FedAvg with client 2 removed from those rounds) gives the same model."""
    model = fl.SoftmaxRegression(5, 3)
    data = _data()
    clients = [FlakyClient(model, X, y, cid=i, fails=(2, 3) if i == 2 else ()) for i, (X, y) in enumerate(data)]
    pool = fl.LoopPool(clients, dropouts=(ConnectionError,))
    w, h = fl.run_fedavg(pool, model.init(0), rounds=4, local_epochs=1, lr=0.1, batch_size=8)
    assert h.reported == [0, 6, 5, 5, 6]
    assert [[i for i, _ in f] for f in h.failures] == [[], [], [2], [2], []]
    assert "Unplugged: client 2 unplugged in round 2" in h.failures[2][0][1]
    assert h.dropped[3] == [("2", h.failures[3][0][1])]
    assert h.reported_ids[2].tolist() == [0, 1, 3, 4, 5]
    assert np.isnan(h.update_norm[2][2]) and np.isfinite(h.update_norm[2][[0, 1, 3, 4, 5]]).all()
    assert h.bytes_up[2] == 5 * 4 * model.size and h.client_bytes[2][2] == 4 * model.size  # it got w, sent nothing

    # reference: a hand-written FedAvg over the same local training
    ref = [fl.NumpyClient(model, X, y, cid=i) for i, (X, y) in enumerate(data)]
    wr = model.init(0).astype(np.float32)
    for t in range(1, 5):
        cfg = {"round": t, "local_epochs": 1, "lr": 0.1, "batch_size": 8, "seed": 0}
        ids = [i for i in range(6) if not (i == 2 and t in (2, 3))]
        W = np.stack([ref[i].fit(wr, cfg)[0] for i in ids])
        n = np.array([len(data[i][1]) for i in ids], dtype=float)
        wr = wr + (n[:, None] * (W - wr)).sum(0) / n.sum()
    np.testing.assert_allclose(w, wr, rtol=1e-5, atol=1e-6)  # float32 vs the reference's float64 sums


def test_errors_that_are_not_dropouts_propagate():
    model = fl.SoftmaxRegression(5, 3)
    data = _data()
    clients = [FlakyClient(model, X, y, cid=i, fails=(1,) if i == 0 else ()) for i, (X, y) in enumerate(data)]
    with pytest.raises(Unplugged):  # LoopPool was not told that a ConnectionError is a dropout
        fl.run_fedavg(clients, model.init(0), rounds=1)


def test_stragglers_are_failures_too():
    model = fl.SoftmaxRegression(5, 3)
    _, h = fl.run_fedavg(fl.ClientPool(model, _data()), model.init(0), rounds=5, dropout=0.5, seed=2)
    for t in range(1, 6):
        failed = sorted(i for i, _ in h.failures[t])
        assert sorted(failed + h.reported_ids[t].tolist()) == sorted(h.selected[t].tolist())
        assert all(why == fl.server.STRAGGLER for _, why in h.failures[t])
    assert sum(len(f) for f in h.failures) > 0
    assert h.to_dict()["failures"] == [[[i, why] for i, why in f] for f in h.failures]  # JSON-ready


def test_fit_results_check_their_shapes():
    with pytest.raises(ValueError, match="need weights"):
        fl.FitResults([0, 1], np.zeros((3, 4)), [1, 1], [0.0, 0.0])
    with pytest.raises(ValueError, match="bytes_up"):
        fl.FitResults([0], np.zeros((1, 4)), [1], [0.0], bytes_up=[1, 2])
    assert len(fl.FitResults.empty(4).ids) == 0
