"""Tests for odlkit.attacks: poisoning, malicious clients, robust aggregation, detection, adversarial, inversion."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from odlkit.attacks import detection, poisoning, robust, validation
from odlkit.attacks.malicious import MaliciousPool, malicious_update


@pytest.fixture(scope="module")
def digits():
    from odlkit.data import load

    ds = load("digits")
    return ds.X.astype(np.float32), ds.y


# ---------------------------------------------------------------- poisoning
def test_flip_labels_random_and_targeted():
    y = np.repeat(np.arange(5), 40)
    yp, idx = poisoning.flip_labels(y, 0.25, 5, seed=1)
    assert len(idx) == 50 and np.all(yp[idx] != y[idx])
    mask = np.ones(len(y), bool)
    mask[idx] = False
    np.testing.assert_array_equal(yp[mask], y[mask])
    assert yp.max() < 5 and yp.min() >= 0
    yt, idt = poisoning.flip_labels(y, 0.5, 5, mode="targeted", source=2, target=4, seed=0)
    assert len(idt) == 20 and np.all(y[idt] == 2) and np.all(yt[idt] == 4)
    assert np.sum(yt != y) == 20
    with pytest.raises(ValueError, match="source"):
        poisoning.flip_labels(y, 0.5, mode="targeted", source=1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        poisoning.flip_labels(y, 1.5)


def test_insert_points_appends_target_labelled_copies(digits):
    X, y = digits
    Xn, yn, idx = poisoning.insert_points(X, y, 30, target=7, source=1)
    assert len(Xn) == len(X) + 30 and np.all(yn[idx] == 7)
    np.testing.assert_array_equal(Xn[: len(X)], X)
    # inserted points are jittered copies of class-1 examples (nearest real example is a 1), not exact copies
    d = ((Xn[idx, None, :] - X[None]) ** 2).sum(-1)
    assert np.mean(y[np.argmin(d, axis=1)] == 1) > 0.9
    assert d.min() > 0


def test_imu_trigger_and_backdoor_poison():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 50, 6)).astype(np.float32)
    y = rng.integers(0, 4, 100)
    trig = poisoning.imu_trigger(channel=2, start=40, width=5, amplitude=3.0)
    assert trig.shape == (50, 6) and trig.sum() == 15.0
    Xp, yp, idx = poisoning.backdoor_poison(X, y, 0.2, target=0, trigger=trig, seed=0)
    assert np.all(y[idx] != 0) and np.all(yp[idx] == 0)
    np.testing.assert_allclose(Xp[idx] - X[idx], np.broadcast_to(trig, (len(idx), 50, 6)))
    untouched = np.setdiff1d(np.arange(100), idx)
    np.testing.assert_array_equal(Xp[untouched], X[untouched])

    # a predictor that has learnt the trigger: ASR 1; one that ignores it: ASR 0
    def backdoored(Z):
        return np.where(Z[:, 40:45, 2].mean(1) > 1.5, 0, 1)

    assert poisoning.attack_success_rate(backdoored, X, y, 0, trig) == 1.0
    assert poisoning.attack_success_rate(lambda Z: np.ones(len(Z), int), X, y, 0, trig) == 0.0
    with pytest.raises(ValueError, match="does not fit"):
        poisoning.imu_trigger(length=50, start=48, width=5)


# ---------------------------------------------------------------- robust aggregation
def _honest_and_attack(k=30, n_bad=9, d=40, seed=0):
    rng = np.random.default_rng(seed)
    U = rng.normal(0.5, 0.1, size=(k, d))
    U[:n_bad] = -50.0  # attackers far away, all in the same place
    return U, np.ones(k), rng


def test_median_and_trimmed_mean_resist_outliers_fedavg_does_not():
    U, w, _ = _honest_and_attack()
    honest = U[9:].mean(0)
    np.testing.assert_allclose(robust.coordinate_median(U, w), np.median(U, axis=0))
    assert np.max(np.abs(robust.coordinate_median(U, w) - honest)) < 0.15
    assert np.max(np.abs(robust.trimmed_mean(0.3)(U, w) - honest)) < 0.1
    assert np.max(np.abs(U.mean(0) - honest)) > 10
    np.testing.assert_allclose(robust.trimmed_mean(0.0)(U, w), U.mean(0), rtol=1e-6)


def test_krum_scores_brute_force_and_selection():
    U, w, rng = _honest_and_attack(k=12, n_bad=3)
    U[:3] = U[:3] + rng.normal(size=U[:3].shape)  # not identical, else they'd be each other's neighbours at 0
    f = 3
    ref = []
    for i in range(12):
        d = sorted(np.sum((U[i] - U[j]) ** 2) for j in range(12) if j != i)
        ref.append(sum(d[: 12 - f - 2]))
    np.testing.assert_allclose(robust.krum_scores(U, f), ref, rtol=1e-9)
    agg = robust.krum(f)
    out = agg(U, w)
    assert agg.selected[0] >= 3 and np.allclose(out, U[agg.selected[0]])
    multi = robust.krum(f, m=9)
    multi(U, w)
    assert set(multi.selected) == set(range(3, 12))
    with pytest.raises(ValueError, match="K > f \\+ 2"):
        robust.krum(10)(U, w)


def test_krum_selection_equals_direct_distances_under_a_large_common_offset():
    # issue 15: with an offset of 1e7 x the spread, the Gram-matrix form of the distances chose a
    # different update than the direct sum of squared differences in 2 of these 20 trials
    rng = np.random.default_rng(0)
    k, d, f = 20, 50, 4
    for trial in range(20):
        spread = rng.uniform(0.01, 1.0)
        U = 1e7 * spread * rng.normal(size=d) + spread * rng.normal(size=(k, d))
        direct = np.array([sorted(np.sum((U[i] - U[j]) ** 2) for j in range(k) if j != i)[: k - f - 2]
                           for i in range(k)]).sum(axis=1)  # the definition, one pair at a time
        agg = robust.krum(f)
        agg(U, np.ones(k))
        assert agg.selected[0] == np.argmin(direct), trial
        np.testing.assert_allclose(robust.krum_scores(U, f), direct, rtol=1e-6)


def test_norm_clipping_bounds_a_boosted_client():
    U, w, _ = _honest_and_attack(k=10, n_bad=0)
    V = U.copy()
    V[0] *= 1000
    agg = robust.norm_clipping(None)
    med = np.median(np.linalg.norm(V, axis=1))
    assert np.linalg.norm(agg(V, w) - agg(U, w)) <= 2 * med / 10 + 1e-6
    fixed = robust.norm_clipping(1.0)
    assert np.linalg.norm(fixed(V, w)) <= 1.0 + 1e-6


def test_malicious_update_kinds():
    d = np.array([[1.0, -2.0, 3.0]])
    np.testing.assert_allclose(malicious_update(d, "sign_flip", 2.0), -2 * d)
    np.testing.assert_allclose(malicious_update(d, "scaled", 3.0), 3 * d)
    g = malicious_update(d, "gaussian", 1.0, np.random.default_rng(0))
    assert np.linalg.norm(g) == pytest.approx(np.linalg.norm(d), rel=1e-5)
    with pytest.raises(ValueError, match="unknown attack"):
        malicious_update(d, "nope")


def test_malicious_pool_rewrites_only_attackers(digits):
    from odlkit.fl import ClientPool, SoftmaxRegression

    X, y = digits
    model = SoftmaxRegression(64, 10)
    parts = np.array_split(np.arange(600), 6)
    make = lambda: ClientPool(model, [(X[p], y[p]) for p in parts])  # noqa: E731
    w0 = model.init(0)
    cfg = {"round": 1, "local_epochs": 1, "lr": 0.5, "batch_size": 32, "seed": 0}
    honest = make().fit_many(np.arange(6), w0, cfg)[0].weights
    bad = MaliciousPool(make(), [1, 4], kind="sign_flip", boost=3.0).fit_many(np.arange(6), w0, cfg)[0].weights
    np.testing.assert_allclose(bad[[0, 2, 3, 5]], honest[[0, 2, 3, 5]])
    np.testing.assert_allclose(bad[[1, 4]] - w0, -3.0 * (honest[[1, 4]] - w0), rtol=1e-4, atol=1e-6)


def test_robustness_table_median_beats_fedavg_under_sign_flip(digits):
    from odlkit.attacks.experiments import fl_robustness_table

    X, y = digits
    aggs = {"fedavg": robust.weighted_mean, "median": robust.coordinate_median}
    rows = fl_robustness_table(X[:1200], y[:1200], X[1200:], y[1200:], attack="sign_flip",
                               fractions=(0.0, 0.3), aggregators=aggs, n_clients=10, rounds=10)
    acc = {(r["fraction"], r["aggregator"]): r["accuracy"] for r in rows}
    assert acc[(0.0, "fedavg")] > 0.85 and acc[(0.0, "median")] > 0.85
    assert acc[(0.3, "median")] > acc[(0.3, "fedavg")] + 0.2


# ---------------------------------------------------------------- detection
def test_pca_and_cluster_flag_malicious_updates():
    rng = np.random.default_rng(0)
    honest = rng.normal(0, 1, size=(40, 100)) + 3.0
    attack = -4.0 * (rng.normal(0, 1, size=(8, 100)) + 3.0)  # sign-flipped, boosted
    U = np.vstack([honest, attack])
    truth = np.r_[np.zeros(40, bool), np.ones(8, bool)]
    for flags in (detection.pca_flags(U), detection.cluster_flags(U)):
        pr = detection.precision_recall(flags, truth)
        assert pr["precision"] >= 0.85 and pr["recall"] >= 0.85, pr
    # a clean population: clustering flags nothing, PCA at most a couple
    assert detection.cluster_flags(honest).sum() == 0
    assert detection.pca_flags(honest).sum() <= 2


def test_cusum_false_alarms_and_delay():
    rng = np.random.default_rng(1)
    ref = rng.normal(0, 1, 200)
    clean = rng.normal(0, 1, 600)
    c = detection.CUSUM(k=0.5, h=5.0).fit(ref)
    assert c.run(clean).sum() <= 2  # ARL0 ~ 900 steps for h=5, k=0.5
    shifted = np.r_[rng.normal(0, 1, 300), rng.normal(1.0, 1, 200)]
    alarms = detection.CUSUM(k=0.5, h=5.0).fit(ref).run(shifted)
    first = np.flatnonzero(alarms[300:])
    assert len(first) and first[0] < 30  # ~10 steps expected for a 1-sigma shift
    with pytest.raises(RuntimeError, match="fit"):
        detection.CUSUM().update(1.0)


def test_precision_recall_values():
    pr = detection.precision_recall([1, 1, 0, 0], [1, 0, 1, 0])
    assert pr["precision"] == 0.5 and pr["recall"] == 0.5


# ---------------------------------------------------------------- validation
def test_centroid_validator_catches_flipped_labels(digits):
    X, y = digits
    v = validation.CentroidValidator(quantile=0.95).fit(X[:1000], y[:1000])
    yp, idx = poisoning.flip_labels(y[1000:], 0.2, 10, seed=0)
    flags = v.flag(X[1000:], yp)
    truth = np.zeros(len(yp), bool)
    truth[idx] = True
    pr = detection.precision_recall(flags, truth)
    assert pr["recall"] > 0.8 and pr["precision"] > 0.7, pr
    assert flags[~truth].mean() < 0.12  # ~5% by construction on clean data, a new split
    with pytest.raises(ValueError, match="not seen"):
        v.distance(X[:2], np.array([0, 11]))


# ---------------------------------------------------------------- adversarial + inversion (TensorFlow)
@pytest.fixture(scope="module")
def linear_model(digits):
    from odlkit.config import seed_everything
    from odlkit.models import build_mlp, compile_classifier

    seed_everything(0)
    X, y = digits
    m = build_mlp(64, 10, hidden=(), seed=0)
    compile_classifier(m, 1e-2)
    m.fit(X[:1400], y[:1400], epochs=15, batch_size=64, verbose=0)
    return m


def test_fgsm_and_pgd(linear_model, digits):
    from odlkit.attacks.adversarial import accuracy, fgsm, pgd

    X, y = digits
    Xt, yt = X[1400:], y[1400:]
    clean = accuracy(linear_model, Xt, yt)
    adv = fgsm(linear_model, Xt, yt, 0.1)
    assert np.max(np.abs(adv - Xt)) <= 0.1 + 1e-6
    a_f = accuracy(linear_model, adv, yt)
    a_p = accuracy(linear_model, pgd(linear_model, Xt, yt, 0.1, steps=10), yt)
    assert clean > 0.85 and a_f < clean - 0.3 and a_p <= a_f + 0.02
    # random sign noise of the same size barely hurts: the attack uses the gradient
    rnd = Xt + 0.1 * np.sign(np.random.default_rng(0).normal(size=Xt.shape)).astype(np.float32)
    assert accuracy(linear_model, rnd, yt) > clean - 0.1


def test_model_inversion_recovers_class_prototypes(linear_model, digits):
    from odlkit.attacks.inversion import invert_class, prototype_similarity

    X, y = digits
    means = np.stack([X[y == c].mean(0) for c in range(10)])
    hits = sum(
        int(np.argmax(prototype_similarity(invert_class(linear_model, c, (64,), steps=150, lr=0.05, clip=(0, 1)), means)) == c)
        for c in range(10)
    )
    assert hits >= 8, hits  # chance is 1 of 10


# ---------------------------------------------------------------- nested classifier (backbone + head models)
@pytest.fixture(scope="module")
def nested_classifier():
    import keras

    from odlkit.models import build_backbone, build_classifier, build_head

    # float64 layers, so a central difference with a small step is exact to ~1e-8 (ReLU and
    # max-pool kinks are not crossed at h = 1e-4; in float32 the rounding of the loss would be
    # ~1e-7 / h and force a step that crosses them)
    policy, floatx = keras.config.dtype_policy(), keras.config.floatx()
    keras.config.set_dtype_policy("float64")
    keras.config.set_floatx("float64")  # the Input layers too, or they cast the windows to float32
    try:
        clf = build_classifier(build_backbone((30, 3), feature_dim=8, seed=1), build_head(8, 4, seed=2))
    finally:
        keras.config.set_dtype_policy(policy)
        keras.config.set_floatx(floatx)
    X = np.random.default_rng(0).normal(size=(6, 30, 3)).astype(np.float32)
    return clf, X, np.array([0, 1, 2, 3, 0, 1])


def test_softmax_is_seen_through_nested_models(nested_classifier):
    import keras

    from odlkit.keras_utils import outputs_probabilities

    clf, _, _ = nested_classifier
    assert isinstance(clf.layers[-1], keras.Model)  # what fooled model.layers[-1].activation
    assert outputs_probabilities(clf)
    inp = keras.Input((5,))
    logits_head = keras.Model(inp, keras.layers.Dense(3)(inp))
    inp2 = keras.Input((5,))
    assert not outputs_probabilities(keras.Model(inp2, logits_head(inp2)))
    inp3 = keras.Input((5,))
    assert outputs_probabilities(keras.Model(inp3, keras.layers.Softmax()(logits_head(inp3))))


def test_fgsm_gradient_equals_central_finite_differences_on_nested_classifier(nested_classifier):
    from odlkit.attacks.adversarial import input_gradient

    clf, X, y = nested_classifier

    def mean_nll(x):  # the model outputs probabilities: cross-entropy is -log p_y, computed here
        p = np.asarray(clf(x, training=False), np.float64)
        return float(np.mean(-np.log(p[np.arange(len(y)), y])))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = input_gradient(clf, X, y)
    assert not [w for w in caught if "from_logits" in str(w.message)], [str(w.message) for w in caught]
    rng = np.random.default_rng(1)
    for _ in range(3):  # directional derivatives along random directions: many coordinates at once
        v = rng.normal(size=X.shape)
        h = 1e-4
        fd = (mean_nll(X + h * v) - mean_nll(X - h * v)) / (2 * h)
        # float64 model: the difference is exact to ~1e-8 relative (measured); the returned gradient
        # is float32 (1e-7); differentiating a double softmax would give a different number altogether
        assert np.sum(g * v) == pytest.approx(fd, rel=1e-5), (np.sum(g * v), fd)
