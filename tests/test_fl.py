"""odlkit.fl: partitioners, models, FedAvg, compression (numpy only, fast)."""

import numpy as np
import pytest

from odlkit import fl
from odlkit.clipping import clip_l2


def blobs(n=600, F=8, C=4, seed=0, sep=3.0):
    """Gaussian blobs: linearly separable enough that FedAvg should reach > 90 %."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, sep, (C, F))
    y = rng.integers(0, C, n)
    X = (centers[y] + rng.normal(0, 1.0, (n, F))).astype(np.float32)
    return X, y.astype(np.int64)


# --------------------------------------------------------------------- partitioners
def test_iid_partition_covers_everything_once():
    parts = fl.iid_partition(103, 10, seed=1)
    allidx = np.concatenate(parts)
    assert sorted(allidx.tolist()) == list(range(103))
    assert {len(p) for p in parts} <= {10, 11}


@pytest.mark.parametrize("alpha", [0.05, 0.5, 100.0])
def test_dirichlet_partition_disjoint_and_min_size(alpha):
    _, y = blobs(800, C=5)
    parts = fl.dirichlet_partition(y, 12, alpha, seed=3, min_size=5)
    allidx = np.concatenate(parts)
    assert len(np.unique(allidx)) == len(allidx) == len(y)
    assert min(len(p) for p in parts) >= 5


def test_dirichlet_alpha_controls_label_skew():
    _, y = blobs(2000, C=5)
    def skew(alpha):  # mean total-variation distance between client label mix and the global mix
        counts = fl.label_counts(fl.dirichlet_partition(y, 20, alpha, seed=0), y, 5)
        p = counts / counts.sum(1, keepdims=True)
        return np.abs(p - np.bincount(y) / len(y)).sum(1).mean() / 2
    assert skew(0.1) > 0.5 > 0.1 > skew(100.0)


def test_dirichlet_is_reproducible_and_seed_dependent():
    _, y = blobs(300)
    a = fl.dirichlet_partition(y, 5, 0.3, seed=0)
    b = fl.dirichlet_partition(y, 5, 0.3, seed=0)
    c = fl.dirichlet_partition(y, 5, 0.3, seed=1)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert not all(np.array_equal(p, q) for p, q in zip(a, c, strict=True))


def test_quantity_skew_sizes():
    parts = fl.quantity_skew_partition(1000, 10, beta=0.3, seed=0, min_size=3)
    sizes = np.array([len(p) for p in parts])
    assert sizes.sum() == 1000 and sizes.min() >= 3
    assert sizes.max() > 3 * np.median(sizes) or sizes.max() > 250  # strongly unequal at beta=0.3
    assert len(np.unique(np.concatenate(parts))) == 1000


def test_group_partition_one_client_per_group():
    groups = np.array([3, 1, 3, 2, 1, 3])
    parts = fl.group_partition(groups)
    assert [p.tolist() for p in parts] == [[1, 4], [3], [0, 2, 5]]
    assert fl.client_groups(groups).tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="no groups"):
        fl.group_partition(None)


def test_partition_errors_are_clear():
    with pytest.raises(ValueError, match="alpha"):
        fl.dirichlet_partition(np.zeros(10, int), 2, 0.0)
    with pytest.raises(ValueError, match="non-empty clients"):
        fl.iid_partition(5, 10)


# --------------------------------------------------------------------- models
@pytest.mark.parametrize("make", [lambda: fl.SoftmaxRegression(5, 3, l2=0.01), lambda: fl.MLP(5, 3, hidden=4, l2=0.01)])
def test_gradient_matches_finite_differences(make):
    model = make()
    rng = np.random.default_rng(0)
    theta = (model.init(1) + rng.normal(0, 0.3, model.size)).astype(np.float64)
    X, y = rng.normal(size=(7, 5)), rng.integers(0, 3, 7)
    mask = np.array([1, 1, 1, 1, 1, 0, 0], float)  # padded samples must not count
    _, g = model.loss_and_grad(theta[None].astype(np.float32), X[None], y[None], mask[None])
    num = np.zeros(model.size)
    eps = 1e-3
    for i in range(model.size):
        e = np.zeros(model.size)
        e[i] = eps
        lp, _ = model.loss_and_grad((theta + e)[None], X[None], y[None], mask[None])
        lm, _ = model.loss_and_grad((theta - e)[None], X[None], y[None], mask[None])
        num[i] = (lp[0] - lm[0]) / (2 * eps)
    # float32 forward pass: central differences are good to ~1e-3 absolute
    np.testing.assert_allclose(g[0], num, atol=2e-3)


def test_batched_models_equal_single_models():
    model = fl.MLP(6, 3, hidden=5)
    rng = np.random.default_rng(0)
    thetas = np.stack([model.init(s) for s in range(4)])
    X, y = rng.normal(size=(4, 9, 6)).astype(np.float32), rng.integers(0, 3, (4, 9))
    L, G = model.loss_and_grad(thetas, X, y)
    for k in range(4):
        lk, gk = model.loss_and_grad(thetas[k], X[k], y[k])
        np.testing.assert_allclose(L[k], lk, rtol=1e-5)
        np.testing.assert_allclose(G[k], gk, rtol=1e-4, atol=1e-6)


def test_layout_mask_and_bad_names():
    m = fl.MLP(4, 2, hidden=3)
    head = m.layout.mask(["W2", "b2"])
    assert head.sum() == 3 * 2 + 2 and head[-8:].all() and not head[:-8].any()
    with pytest.raises(ValueError, match="unknown tensor"):
        m.layout.mask("W3")


# --------------------------------------------------------------------- aggregation
def test_weighted_mean_is_fedavg_formula():
    rng = np.random.default_rng(0)
    U, n = rng.normal(size=(5, 7)), np.array([1, 2, 3, 4, 10])
    expected = sum(n[k] / n.sum() * U[k] for k in range(5))
    np.testing.assert_allclose(fl.weighted_mean(U, n), expected, rtol=1e-12)
    np.testing.assert_allclose(fl.uniform_mean(U, n), U.mean(0))


def test_aggregator_input_errors():
    with pytest.raises(ValueError, match="one entry per client"):
        fl.weighted_mean(np.zeros((3, 4)), np.ones(2))
    with pytest.raises(ValueError, match="K = 0"):
        fl.weighted_mean(np.zeros((0, 4)), np.ones(0))
    with pytest.raises(ValueError, match=">= 0"):
        fl.weighted_mean(np.zeros((2, 4)), np.array([1, -1]))


def test_clipped_mean_uses_clip_l2():
    rng = np.random.default_rng(1)
    U = rng.normal(size=(4, 10)) * np.array([[0.1], [1], [10], [100]])
    n = np.array([1.0, 1, 1, 5])
    agg = fl.clipped_mean(1.0)
    np.testing.assert_allclose(agg(U, n), fl.weighted_mean(clip_l2(U, 1.0, axis=1), n))
    assert np.linalg.norm(agg(U, n)) <= 1.0 + 1e-9


def test_server_momentum():
    opt = fl.ServerOptimizer(lr=1.0, momentum=0.5)
    w = np.zeros(2, np.float32)
    w = opt.step(w, np.ones(2, np.float32))
    w = opt.step(w, np.ones(2, np.float32))
    np.testing.assert_allclose(w, [2.5, 2.5])  # 1 + (0.5*1 + 1)


# --------------------------------------------------------------------- compression
@pytest.mark.parametrize("codec", [fl.Float32Codec(), fl.Int8Codec(), fl.TopKCodec(0.1), fl.TopKCodec(0.013),
                                   fl.ChainCodec(0.2)])
@pytest.mark.parametrize("d", [1, 77, 1000])
def test_codec_bytes_exact_and_roundtrip_matches_decode(codec, d):
    x = np.random.default_rng(d).normal(size=d).astype(np.float32)
    payload = codec.encode(x)
    assert len(payload) == codec.nbytes(d)
    np.testing.assert_allclose(codec.decode(payload, d), codec.roundtrip(x[None])[0], rtol=1e-6)


def test_int8_error_bound_and_topk_keeps_largest():
    x = np.random.default_rng(0).normal(size=500).astype(np.float32)
    xh = fl.Int8Codec().roundtrip(x[None])[0]
    assert np.abs(x - xh).max() <= np.abs(x).max() / 127 / 2 + 1e-6
    t = fl.TopKCodec(0.1).roundtrip(x[None])[0]
    kept = np.flatnonzero(t)
    assert len(kept) == 50
    assert np.abs(x[kept]).min() >= np.abs(np.delete(x, kept)).max()


def test_error_feedback_delivers_everything_eventually():
    """Sending the same update T times with top-k + EF delivers ~T times the update in total."""
    rng = np.random.default_rng(0)
    u = rng.normal(size=(2, 100)).astype(np.float32)
    ef = fl.ErrorFeedback(fl.TopKCodec(0.05), n_clients=3, d=100)
    total = np.zeros_like(u)
    T = 200
    for _ in range(T):
        total += ef.compress([0, 2], u)
    # what is still missing is exactly the memory, and it stays bounded (does not grow with T)
    np.testing.assert_allclose(total + ef.memory[[0, 2]], T * u, rtol=1e-3, atol=1e-2)
    assert np.abs(ef.memory).max() < 0.1 * T * np.abs(u).max()
    assert not ef.memory[1].any()


# --------------------------------------------------------------------- selection
def test_select_clients_methods():
    rng = np.random.default_rng(0)
    assert fl.select_clients(rng, 10, 3, "all").tolist() == list(range(10))
    s = fl.select_clients(rng, 10, 4)
    assert len(s) == 4 == len(set(s.tolist()))
    sizes = np.array([1] * 9 + [1000])
    picked = sum(9 in fl.select_clients(rng, 10, 1, "size", sizes) for _ in range(200))
    assert picked > 180  # p = 1000/1009
    avail = np.zeros(10)
    avail[[2, 5]] = 1
    assert fl.select_clients(rng, 10, 5, availability=avail).tolist() == [2, 5]
    with pytest.raises(ValueError, match="selection"):
        fl.select_clients(rng, 10, 3, "fastest")


# --------------------------------------------------------------------- FedAvg end to end
def _setup(n_clients=20, alpha=None, model_cls=fl.SoftmaxRegression):
    X, y = blobs(1200, F=8, C=4, seed=0)
    X, Xte, y, yte = X[:900], X[900:], y[:900], y[900:]
    parts = fl.iid_partition(len(y), n_clients, 0) if alpha is None else fl.dirichlet_partition(y, n_clients, alpha, 0)
    model = model_cls(8, 4)
    return model, [(X[p], y[p]) for p in parts], (Xte, yte)


def test_loop_clients_and_vectorized_pool_give_identical_models():
    model, data, (Xte, yte) = _setup(12, alpha=0.3, model_cls=lambda F, C: fl.MLP(F, C, hidden=8))
    kw = dict(rounds=5, clients_per_round=5, local_epochs=2, lr=0.05, batch_size=7, dropout=0.2, seed=3)
    w_loop, h_loop = fl.run_fedavg([fl.NumpyClient(model, X, y, cid=i) for i, (X, y) in enumerate(data)],
                                   model.init(0), **kw)
    w_vec, h_vec = fl.run_fedavg(fl.ClientPool(model, data), model.init(0), **kw)
    # same shuffles, same arithmetic: equal up to float32 summation order in the batched einsum
    np.testing.assert_allclose(w_loop, w_vec, rtol=1e-4, atol=1e-5)
    assert [s.tolist() for s in h_loop.selected] == [s.tolist() for s in h_vec.selected]
    assert h_loop.bytes_up == h_vec.bytes_up


def test_one_client_fedavg_equals_local_sgd():
    model, data, _ = _setup(1)
    X, y = data[0]
    w, _ = fl.run_fedavg(fl.ClientPool(model, data), model.init(0), rounds=3, local_epochs=1, lr=0.1, batch_size=32)
    theta = model.init(0)
    for r in (1, 2, 3):  # same thing written by hand: one epoch of SGD per round
        perm = np.random.default_rng([0, r, 0]).permutation(len(y))
        for s in range(0, len(y), 32):
            b = perm[s:s + 32]
            theta = theta - np.float32(0.1) * model.loss_and_grad(theta, X[b], y[b])[1]
    np.testing.assert_allclose(w, theta, rtol=1e-5, atol=1e-6)


def test_fedavg_learns_and_history_is_consistent():
    model, data, (Xte, yte) = _setup(20, alpha=1.0)
    w, h = fl.run_fedavg(fl.ClientPool(model, data), model.init(0), rounds=10, clients_per_round=5,
                         lr=0.1, evaluate_fn=fl.central_accuracy(model, Xte, yte))
    assert h.accuracy[0] < 0.5 < 0.9 < h.accuracy[-1]
    assert len(h.round) == 11 and h.round[-1] == 10
    D = model.size
    assert h.bytes_down[1:] == [5 * 4 * D] * 10 and h.bytes_up[1:] == [5 * 4 * D] * 10
    assert np.isfinite(h.client_accuracy[-1]).all() and len(h.client_accuracy[-1]) == 20
    assert h.rounds_to(0.9) is not None and h.rounds_to(1.01) is None
    d = h.to_dict()
    assert d["bytes_up"][1] == 5 * 4 * D


def test_compression_bytes_and_dropout_counted():
    model, data, (Xte, yte) = _setup(20)
    D = model.size
    _, h = fl.run_fedavg(fl.ClientPool(model, data), model.init(0), rounds=6, clients_per_round=10,
                         codec=fl.Int8Codec(), dropout=0.5, seed=1)
    for up, rep in zip(h.bytes_up[1:], h.reported[1:], strict=True):
        assert up == rep * (D + 4)
    assert 0 < sum(h.reported[1:]) < 60  # some, not all, dropped out
    _, htk = fl.run_fedavg(fl.ClientPool(model, data), model.init(0), rounds=2, clients_per_round=10,
                           codec=fl.TopKCodec(0.1), error_feedback=True)
    assert htk.bytes_up[1] == 10 * (4 + 8 * int(np.ceil(0.1 * D)))


def test_topk_with_error_feedback_tracks_uncompressed_fedavg():
    """Top-5 % without EF loses 95 % of every update; with EF the model follows plain FedAvg closely."""
    model, data, _ = _setup(20, alpha=0.5)
    kw = dict(rounds=15, clients_per_round=10, lr=0.1, eval_clients=False)
    w_ref, _ = fl.run_fedavg(fl.ClientPool(model, data), model.init(0), **kw)
    w_ef, _ = fl.run_fedavg(fl.ClientPool(model, data), model.init(0), codec=fl.TopKCodec(0.05), error_feedback=True, **kw)
    w_no, _ = fl.run_fedavg(fl.ClientPool(model, data), model.init(0), codec=fl.TopKCodec(0.05), **kw)
    d_ef, d_no = np.linalg.norm(w_ef - w_ref), np.linalg.norm(w_no - w_ref)
    assert d_ef < 0.5 * d_no, (d_ef, d_no)


def test_selective_sharing_keeps_personal_layers_and_sends_less():
    model, data, _ = _setup(6, alpha=0.2, model_cls=lambda F, C: fl.MLP(F, C, hidden=8))
    shared = ["W2", "b2"]
    mask = model.layout.mask(shared)
    pool = fl.ClientPool(model, data, shared=shared)
    w0 = model.init(0)[mask]
    w, h = fl.run_fedavg(pool, w0, rounds=3, lr=0.05)
    assert w.shape == (mask.sum(),)
    assert h.bytes_up[1] == 6 * 4 * int(mask.sum())
    # personal layer W1 differs between clients, the shared head equals the last global head when re-sent
    assert not np.allclose(pool.theta[0, ~mask], pool.theta[1, ~mask])
    clients = [fl.NumpyClient(model, X, y, cid=i, shared=shared) for i, (X, y) in enumerate(data)]
    w_loop, _ = fl.run_fedavg(clients, w0, rounds=3, lr=0.05)
    np.testing.assert_allclose(w, w_loop, rtol=1e-4, atol=1e-5)


def test_run_fedavg_input_errors():
    model, data, _ = _setup(4)
    with pytest.raises(ValueError, match="clients_per_round"):
        fl.run_fedavg(fl.ClientPool(model, data), model.init(0), 1, clients_per_round=9)
    with pytest.raises(ValueError, match="shared weights"):
        fl.NumpyClient(model, *data[0]).fit(np.zeros(3), {})
    with pytest.raises(ValueError, match="features"):
        fl.ClientPool(model, [data[0], (np.zeros((3, 5)), np.zeros(3, int))])


def test_hundred_clients_fifty_rounds_is_fast():
    import time

    X, y = blobs(5000, F=16, C=5, seed=2)
    parts = fl.dirichlet_partition(y, 100, 0.5, seed=0)
    model = fl.MLP(16, 5, hidden=16)
    t0 = time.perf_counter()
    _, h = fl.run_fedavg(fl.ClientPool(model, [(X[p], y[p]) for p in parts]), model.init(0), rounds=50,
                         clients_per_round=20, lr=0.1, batch_size=16, eval_every=10)
    # generous bound (shared 2-core machine); it takes ~1-3 s when the machine is idle
    assert time.perf_counter() - t0 < 60
    assert h.federated_accuracy[-1] > 0.8


def test_fl_viewer_prints_without_front_end(capsys):
    import matplotlib

    matplotlib.use("Agg")
    from odlkit.widgets.fl_viewer import FLViewer

    model, data, (Xte, yte) = _setup(5)
    viewer = FLViewer(5, every=2, live=False)
    fl.run_fedavg(fl.ClientPool(model, data), model.init(0), rounds=4, callback=viewer.update,
                  evaluate_fn=fl.central_accuracy(model, Xte, yte))
    out = capsys.readouterr().out
    assert out.count("round") == 2 and "MB so far" in out
    fig = viewer.figure()
    assert len(fig.axes) == 4  # three panels + colorbar
    with pytest.raises(ValueError, match="n_clients"):
        FLViewer(0, live=False)
