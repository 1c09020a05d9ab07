"""Lab 2's network: the numpy reference (odlkit.mlp) against independent implementations, then the
C++ engine (odl_mlp.cpp / odl_lpc.cpp, through the host test CLI) against the reference.

Independent references: central finite differences in float64 for the gradient, and an explicit
per-sample float64 loop of SGD with momentum for whole epochs.
"""

from __future__ import annotations

import numpy as np
import pytest

from odlkit import audio, weights
from odlkit.head import xorshift32_orders
from odlkit.mlp import Standardizer, TwoLayerNet, he_uniform_xorshift


def _toy(n=40, d=24, c=4, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1.5, (c, d))
    y = np.arange(n) % c
    X = (centers[y] + rng.normal(0, 1, (n, d))).astype(np.float32)
    return X, y


def _net64(net):
    return {k: v.astype(np.float64) for k, v in net.params().items()}


def _loss64(p, Z, y, wd=0.0):
    h = np.maximum(Z @ p["W1"] + p["b1"], 0)
    z = h @ p["W2"] + p["b2"]
    z = z - z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return -logp[np.arange(len(y)), y].mean() + 0.5 * wd * ((p["W1"] ** 2).sum() + (p["W2"] ** 2).sum())


def test_initial_weights_are_he_uniform_from_the_engine_rng():
    W = he_uniform_xorshift(24, 32, seed=1)
    limit = np.sqrt(6 / 24)
    assert W.dtype == np.float32 and W.shape == (24, 32)
    assert np.abs(W).max() <= limit and np.abs(W).max() > 0.95 * limit
    assert abs(W.std() - limit / np.sqrt(3)) < 0.05 * limit  # the std of U(-l, l)
    assert not np.array_equal(W, he_uniform_xorshift(24, 32, seed=2))
    net = TwoLayerNet.initial(24, 32, ["a", "b"], seed=1)
    assert not net.W2.any() and not net.b1.any() and not net.b2.any()


@pytest.mark.parametrize("layers", ["all", "head"])
def test_gradients_match_finite_differences(layers):
    X, y = _toy(12, 6, 3)
    net = TwoLayerNet.initial(6, 5, ["a", "b", "c"], seed=3)
    net.W2 = np.random.default_rng(1).normal(0, 0.5, net.W2.shape).astype(np.float32)  # a non-zero head
    net.b1 = np.full(5, 0.1, np.float32)
    Z = X / 2
    wd = 0.01
    _, g = net.gradients(Z, y, weight_decay=wd, layers=layers)
    assert set(g) == ({"W1", "b1", "W2", "b2"} if layers == "all" else {"W2", "b2"})
    p = _net64(net)
    eps = 1e-6
    for k in g:
        num = np.zeros_like(p[k])
        for i in np.ndindex(p[k].shape):
            q = {kk: vv.copy() for kk, vv in p.items()}
            q[k][i] += eps
            lp = _loss64(q, Z.astype(np.float64), y, wd)
            q[k][i] -= 2 * eps
            num[i] = (lp - _loss64(q, Z.astype(np.float64), y, wd)) / (2 * eps)
        # float32 gradient vs float64 differences: agreement to ~1e-5 absolute (ReLU kinks are not hit:
        # no pre-activation is within eps of 0 here)
        np.testing.assert_allclose(g[k], num, atol=2e-5, rtol=1e-3, err_msg=k)


@pytest.mark.parametrize("layers", ["all", "head"])
def test_fit_matches_a_per_sample_sgd_momentum_loop(layers):
    X, y = _toy(30, 24, 4)
    net = TwoLayerNet.initial(24, 16, list("abcd"), seed=1)
    net.norm.update_many(X)
    ref = {k: v.astype(np.float64) for k, v in net.params().items()}
    Z = net.norm.transform(X).astype(np.float64)
    epochs, bs, lr, mu, wd = 3, 7, 0.05, 0.9, 1e-3
    hist = net.fit(X, y, epochs=epochs, lr=lr, momentum=mu, weight_decay=wd, batch_size=bs, layers=layers, seed=1)
    vel = {k: np.zeros_like(v) for k, v in ref.items()}
    trained = ["W1", "b1", "W2", "b2"] if layers == "all" else ["W2", "b2"]
    for order in xorshift32_orders(len(X), epochs, seed=1):
        for s in range(0, len(X), bs):
            grads = {k: np.zeros_like(v) for k, v in ref.items()}
            batch = order[s : s + bs]
            for i in batch:  # one example at a time, float64
                h = np.maximum(Z[i] @ ref["W1"] + ref["b1"], 0)
                z = h @ ref["W2"] + ref["b2"]
                p = np.exp(z - z.max())
                p /= p.sum()
                p[y[i]] -= 1
                grads["W2"] += np.outer(h, p)
                grads["b2"] += p
                dh = (ref["W2"] @ p) * (h > 0)
                grads["W1"] += np.outer(Z[i], dh)
                grads["b1"] += dh
            for k in trained:
                g = grads[k] / len(batch) + (wd * ref[k] if k[0] == "W" else 0)
                vel[k] = mu * vel[k] - lr * g
                ref[k] = ref[k] + vel[k]
    # float32 vs float64 over 15 momentum steps: weights of O(0.5) agree to ~1e-5
    for k in ("W1", "b1", "W2", "b2"):
        np.testing.assert_allclose(net.params()[k], ref[k], atol=5e-5, err_msg=k)
    assert len(hist) == epochs and hist[-1].loss < hist[0].loss


def test_standardizer_is_welford():
    X = np.random.default_rng(4).normal(3, 2, (50, 24)).astype(np.float32)
    s = Standardizer(24)
    s.update_many(X)
    np.testing.assert_allclose(s.mean, X.astype(np.float64).mean(0), rtol=1e-5)
    np.testing.assert_allclose(s.var, X.astype(np.float64).var(0), rtol=1e-4)
    with pytest.raises(ValueError, match="finite"):
        s.update(np.full(24, np.nan))
    assert s.n == 50


def test_network_blob_roundtrip_and_errors():
    net = TwoLayerNet.initial(24, 8, ["x", "y", "z"], seed=2)
    net.norm.update_many(_toy(5)[0])
    blob = weights.encode_mlp(net.to_weights())
    assert len(blob) == weights.mlp_blob_size(3, 24, 8) and weights.blob_version(blob) == 2
    back = TwoLayerNet.from_weights(weights.decode_mlp(blob))
    assert back.to_weights() == net.to_weights()
    with pytest.raises(weights.WeightsFormatError, match="CRC32"):
        weights.decode_mlp(blob[:-5] + bytes([blob[-5] ^ 1]) + blob[-4:])
    with pytest.raises(weights.WeightsFormatError, match="two-layer network"):
        weights.decode(blob)  # the Lab 1 decoder refuses it with a pointer to decode_mlp
    with pytest.raises(weights.WeightsFormatError, match="truncated"):
        weights.decode_mlp(blob[:-8])


def test_summary_feeds_the_network_shape():
    F = np.random.default_rng(0).normal(0, 1, (20, 12)).astype(np.float32)
    assert audio.utterance_summary(F).shape == (24,)
