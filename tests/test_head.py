"""odlkit.head: the numpy twin of the device head (loss, gradient, SGD, data order)."""

import numpy as np
import pytest

from odlkit.head import (
    EngineShuffle,
    Head,
    rng_seed_shuffle,
    softmax,
    softmax_cross_entropy,
    softmax_cross_entropy_grad,
    xorshift32,
    xorshift32_orders,
)


@pytest.fixture(scope="module")
def digits():
    """Real data with 64 features, the size of the backbone's embedding."""
    from sklearn.datasets import load_digits  # imported here: collection stays cheap

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    return X[:600], y[:600].astype(np.int64), X[600:900], y[600:900].astype(np.int64)


def test_softmax_rows_sum_to_one_and_is_stable():
    z = np.array([[1000.0, 1000.0, -1000.0], [0.0, 1.0, 2.0]], dtype=np.float32)
    p = softmax(z)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(p[0], [0.5, 0.5, 0.0], atol=1e-7)


def test_cross_entropy_matches_definition():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(7, 4)).astype(np.float32)
    y = rng.integers(0, 4, size=7)
    ref = -np.mean(np.log(np.exp(z) / np.exp(z).sum(1, keepdims=True))[np.arange(7), y])
    assert softmax_cross_entropy(z, y) == pytest.approx(ref, rel=1e-5)


def test_gradient_matches_finite_differences(digits):
    """Central differences in float64 of L(W, b) = CE + wd/2 ||W||^2; float32 analytic grad.

    Tolerance 2e-3 relative: the analytic gradient is computed in float32 (as on the device),
    finite differences with step 1e-3 carry O(h^2) ~ 1e-6 error, float32 rounding dominates.
    """
    X, y = digits[0][:16].astype(np.float64), digits[1][:16]
    rng = np.random.default_rng(1)
    W = rng.normal(scale=0.1, size=(64, 10))
    b = rng.normal(scale=0.1, size=10)
    wd = 0.01

    def full_loss(W, b):
        z = X @ W + b
        z = z - z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        return -logp[np.arange(len(y)), y].mean() + 0.5 * wd * np.sum(W * W)

    _, dW, db = softmax_cross_entropy_grad(W, b, X, y, weight_decay=wd)
    h = 1e-3
    num_dW = np.zeros_like(W)
    for i, j in [(0, 0), (10, 3), (33, 9), (63, 5), (20, 1), (40, 7)]:
        E = np.zeros_like(W)
        E[i, j] = h
        num_dW[i, j] = (full_loss(W + E, b) - full_loss(W - E, b)) / (2 * h)
        assert dW[i, j] == pytest.approx(num_dW[i, j], rel=2e-3, abs=1e-6)
    for j in range(10):
        E = np.zeros_like(b)
        E[j] = h
        num = (full_loss(W, b + E) - full_loss(W, b - E)) / (2 * h)
        assert db[j] == pytest.approx(num, rel=2e-3, abs=1e-6)


def test_bad_inputs_raise_clear_errors():
    head = Head.zeros(4, 3)
    with pytest.raises(ValueError, match="labels must be in"):
        head.fit(np.zeros((2, 4)), np.array([0, 3]))
    with pytest.raises(ValueError, match="expected features of shape"):
        head.fit(np.zeros((2, 5)), np.array([0, 1]))
    with pytest.raises(ValueError, match="mode must be"):
        head.fit(np.zeros((2, 4)), np.array([0, 1]), mode="last")
    with pytest.raises(ValueError, match="permutations"):
        head.fit(np.zeros((3, 4)), np.array([0, 1, 2]), epochs=1, order=[[0, 0, 1]])
    with pytest.raises(ValueError, match="no samples"):
        head.fit(np.zeros((0, 4)), np.zeros(0, dtype=int))


def test_xorshift_orders_are_deterministic_permutations():
    a = xorshift32_orders(37, 4, seed=1)
    b = xorshift32_orders(37, 4, seed=1)
    c = xorshift32_orders(37, 4, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    for row in a:
        assert sorted(row.tolist()) == list(range(37))
    assert not np.array_equal(a[0], a[1])  # reshuffled every epoch


def test_engine_shuffle_state_carries_over_between_train_calls():
    """Two train calls of 2 epochs on the board draw the same stream as one call of 4 epochs,
    except that ``order`` restarts from 0..n-1 at each call."""
    sh = EngineShuffle(seed=7)
    first = sh.orders(20, 2)
    second = sh.orders(20, 2)
    np.testing.assert_array_equal(first, xorshift32_orders(20, 2, seed=7))
    assert not np.array_equal(second, first)
    # state after the first call = state after 2 epochs of n=20 (19 draws each)
    state = rng_seed_shuffle(7)
    for _ in range(2 * 19):
        state, _ = xorshift32(state)
    sh2 = EngineShuffle(7)
    sh2.state = state
    np.testing.assert_array_equal(sh2.orders(20, 2), second)


def test_rng_seed_matches_engine_formula():
    assert rng_seed_shuffle(1) == (2654435761 + 1) & 0xFFFFFFFF
    assert rng_seed_shuffle(0) == 1
    # xorshift32 of 1: 1 ^ 1<<13 = 8193; ^ >>17 = 8193; ^ <<5 = 8193 ^ 262176 = 270369
    assert xorshift32(1) == (270369, 270369)


def test_head_learns_digits(digits):
    Xtr, ytr, Xte, yte = digits
    head = Head.zeros(64, 10)
    hist = head.fit(Xtr, ytr, epochs=15, lr=0.1, momentum=0.9, batch_size=16, seed=3)
    assert hist[-1].loss < hist[0].loss
    acc = head.evaluate(Xte, yte)["accuracy"]
    assert acc > 0.85, acc


def test_bias_only_mode_keeps_W_frozen(digits):
    Xtr, ytr = digits[0], digits[1]
    head = Head.random(64, 10, seed=0)
    W0 = head.W.copy()
    head.fit(Xtr, ytr, epochs=2, lr=0.05, mode="bias")
    np.testing.assert_array_equal(head.W, W0)
    assert np.any(head.b != 0)


def test_add_class_keeps_old_rows(digits):
    head = Head.random(64, 3, seed=0, class_names=["a", "b", "c"])
    W0, b0 = head.W.copy(), head.b.copy()
    assert head.add_class("d") == 3
    assert head.W.shape == (64, 4) and head.class_names == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(head.W[:, :3], W0)
    np.testing.assert_array_equal(head.b[:3], b0)
    assert np.all(head.W[:, 3] == 0) and head.b[3] == 0


def test_matches_keras_sgd_momentum(digits):
    """Same init, same sequential batches, Keras SGD(momentum) vs Head.fit.

    Keras updates v = mu*v - lr*g; w += v, the same form as the device and Head. Both run in
    float32; tolerance 1e-4 absolute on weights of size ~0.1-1 after 3 epochs (~110 updates)
    covers float32 summation-order differences (matmul vs. loops).
    """
    keras = pytest.importorskip("keras")
    Xtr, ytr = digits[0][:300], digits[1][:300]
    head = Head.random(64, 10, seed=5)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")])
    model.layers[0].set_weights([head.W.copy(), head.b.copy()])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9), loss="sparse_categorical_crossentropy")
    model.fit(Xtr, ytr, epochs=3, batch_size=8, shuffle=False, verbose=0)
    head.fit(Xtr, ytr, epochs=3, lr=0.05, momentum=0.9, batch_size=8, order="sequential")
    Wk, bk = model.layers[0].get_weights()
    np.testing.assert_allclose(head.W, Wk, atol=1e-4)
    np.testing.assert_allclose(head.b, bk, atol=1e-4)


def test_weight_decay_shrinks_weights(digits):
    Xtr, ytr = digits[0], digits[1]
    a, b = Head.zeros(64, 10), Head.zeros(64, 10)
    a.fit(Xtr, ytr, epochs=5, lr=0.05, weight_decay=0.0)
    b.fit(Xtr, ytr, epochs=5, lr=0.05, weight_decay=0.05)
    assert np.linalg.norm(b.W) < 0.8 * np.linalg.norm(a.W)


def test_callback_can_stop_early(digits):
    head = Head.zeros(64, 10)
    seen = []
    hist = head.fit(digits[0], digits[1], epochs=10, callback=lambda log: seen.append(log.epoch) or log.epoch < 3)
    assert seen == [1, 2, 3] and len(hist) == 3
