"""odlkit.tiny: the training-memory calculator against hand counts, and the techniques on small
Keras models (bias-only, lite residual, QAS, pruning masks, sparse selection, online learners)."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from lazy_imports import lazy_module  # noqa: E402

keras = lazy_module("keras")

from odlkit.tiny import (  # noqa: E402
    add_lite_residual,
    dense_backward_bytes,
    grad_weight_ratios,
    head_training_bytes,
    head_training_memory,
    layerwise_train,
    qas_scale_gradient,
    quant_scale,
    resolve_plan,
    select_under_budget,
    select_variables,
    train,
    training_memory,
)
from odlkit.tiny.classical import NearestClassMean, online_curves  # noqa: E402
from odlkit.tiny.compression import PCACompressor, bytes_per_sample, quantize_int8  # noqa: E402
from odlkit.tiny.pruning import magnitude_prune, pruned_training_memory  # noqa: E402


def small_cnn(seed=0):
    """Input (10, 2) -> Conv1D(4, 3) (8, 4) -> ReLU -> MaxPool(2) (4, 4) -> GAP (4) -> Dense(3)."""
    init = keras.initializers.GlorotUniform(seed=seed)
    inp = keras.Input((10, 2))
    x = keras.layers.Conv1D(4, 3, kernel_initializer=init, bias_initializer="zeros", name="conv")(inp)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.MaxPooling1D(2, name="pool")(x)
    x = keras.layers.GlobalAveragePooling1D(name="gap")(x)
    out = keras.layers.Dense(3, kernel_initializer=init, name="dense")(x)
    return keras.Model(inp, out)


# --- memory calculator: hand counts for small_cnn, batch 2 -------------------------------------
# params: conv kernel 3*2*4 = 24, conv bias 4, dense kernel 4*3 = 12, dense bias 3 -> 43
# stored activations (float32):
#   conv input 2*10*2 = 40 floats = 160 B (only if the conv kernel is updated)
#   relu mask 2*8*4 = 64 bits = 8 B, pool argmax 2*4*4 = 32 bits = 4 B (if a gradient reaches them)
#   dense input 2*4 = 8 floats = 32 B, loss probabilities 2*3 floats = 24 B

def test_full_finetune_hand_count():
    r = training_memory(small_cnn(), "full", "sgd", batch_size=2)
    assert r.total_params == 43 and r.updated_params == 43
    assert r.trainable_weight_bytes == 172 and r.frozen_weight_bytes == 0
    assert r.gradient_bytes == 172 and r.optimizer_bytes == 0
    assert r.activation_bytes == 160 + 8 + 4 + 32 + 24
    assert r.total_bytes == 172 + 172 + 228


def test_last_layer_hand_count():
    r = training_memory(small_cnn(), "last", "sgd", batch_size=2)
    assert r.updated_params == 15
    assert r.frozen_weight_bytes == 28 * 4 and r.trainable_weight_bytes == 60
    assert r.gradient_bytes == 60
    assert r.activation_bytes == 32 + 24  # no gradient reaches the relu or the pool


def test_bias_only_hand_count():
    r = training_memory(small_cnn(), "bias", "sgd", batch_size=2)
    assert resolve_plan(small_cnn(), "bias") == {"conv": ("bias",), "dense": ("kernel", "bias")}
    assert r.updated_params == 4 + 15
    assert r.gradient_bytes == 19 * 4
    assert r.activation_bytes == 8 + 4 + 32 + 24  # no conv input: the bias gradient does not need it


def test_peak_hand_count():
    """The peak of one step adds the working buffers to the stored state (batch 2, float32).

    forward: conv reads x (2*10*2*4 = 160 B) and writes 2*8*4*4 = 256 B -> 416 B live, the
    largest moment; relu in place; pool 256 + 128 (+ bits); gap 128 + 32; dense 32 + 24.
    backward of "bias" (down to the conv bias): dense dx 32 beside dy 24; gap dx 128 beside 32;
    pool dx 256 beside dy 128 + the relu mask 8 B still stored -> 392 B.
    """
    m = small_cnn()
    last = training_memory(m, "last", "sgd", batch_size=2)
    assert last.peak_activation_bytes == 416 and last.peak_moment == "forward conv"
    assert last.ram_bytes == 60 + 60 + 416
    bias = training_memory(m, "bias", "sgd", batch_size=2)
    assert bias.backward_working_bytes == 128 + 256
    assert bias.peak_activation_bytes == 416
    # streamed: one sample at a time, whatever the batch
    s = training_memory(m, "bias", "sgd", batch_size=2, execution="streamed")
    assert s.peak_activation_bytes == 80 + 128 == training_memory(m, "bias", "sgd", 1).peak_activation_bytes
    assert s.forward_arena_bytes == 2 * 32 * 4  # two halves of the largest activation (conv out)
    with pytest.raises(ValueError, match="execution"):
        training_memory(m, "bias", execution="pipelined")


@pytest.mark.parametrize(("opt", "slots"), [("sgd", 0), ("momentum", 1), ("adam", 2)])
def test_optimizer_state(opt, slots):
    r = training_memory(small_cnn(), "full", opt, batch_size=2)
    assert r.optimizer_bytes == 43 * 4 * slots


def test_int8_hand_count():
    r = training_memory(small_cnn(), "full", "sgd", batch_size=2, precision="int8")
    # kernels int8 + one float scale each; biases int32
    assert r.weight_bytes == (24 + 4) + 4 * 4 + (12 + 4) + 3 * 4
    assert r.gradient_bytes == 172  # gradients stay float32
    assert r.activation_bytes == 40 + 8 + 4 + 8 + 24  # activations int8, masks bits, loss float


def test_sparse_plan_and_batch_scaling():
    m = small_cnn()
    r1 = training_memory(m, {"conv": "bias", "dense": ("kernel", "bias")}, batch_size=1)
    r4 = training_memory(m, {"conv": "bias", "dense": ("kernel", "bias")}, batch_size=4)
    assert r1.gradient_bytes == r4.gradient_bytes == 19 * 4
    # 1 sample: relu 32 bits -> 4 B, pool 16 bits -> 2 B, dense input 16 B, loss 12 B
    assert r1.activation_bytes == 4 + 2 + 16 + 12
    assert r4.activation_bytes == 16 + 8 + 64 + 48


def test_head_count_matches_keras_dense():
    inp = keras.Input((64,))
    m = keras.Model(inp, keras.layers.Dense(4, activation="softmax")(inp))
    for batch in (1, 8):
        r = training_memory(m, "full", "momentum", batch_size=batch)
        h = head_training_memory(64, 4, batch=batch, momentum=True)
        assert (r.weight_bytes, r.gradient_bytes, r.optimizer_bytes, r.activation_bytes) == (
            h.weight_bytes, h.gradient_bytes, h.optimizer_bytes, h.activation_bytes)
        assert head_training_bytes(64, 4, batch=batch) == r.total_bytes
    assert head_training_bytes(64, 4, batch=1, momentum=False) == 2 * 260 * 4 + (64 + 4) * 4


def test_dense_backward_bytes():
    assert dense_backward_bytes(64, 4, batch=8) == (8 * 64 + 64 * 4 + 4) * 4
    assert dense_backward_bytes(64, 4, batch=8, update_kernel=False) == 4 * 4
    with pytest.raises(ValueError, match="batch"):
        dense_backward_bytes(64, 4, batch=0)


def test_calculator_errors_are_clear():
    m = small_cnn()
    with pytest.raises(ValueError, match="unknown strategy"):
        training_memory(m, "everything")
    with pytest.raises(ValueError, match="optimizer"):
        training_memory(m, "full", "rmsprop")
    with pytest.raises(ValueError, match="not layers with parameters"):
        training_memory(m, {"nope": "bias"})
    with pytest.raises(ValueError, match="lite_residual"):
        training_memory(m, "bias+lite_residual")
    inp = keras.Input((10, 2))
    odd = keras.Model(inp, keras.layers.Dense(3)(keras.layers.LSTM(4)(inp)))
    with pytest.raises(ValueError, match="LSTM"):
        training_memory(odd, "full")
    inp = keras.Input((10, 2))
    nested = keras.Model(inp, keras.layers.Dense(3)(keras.layers.Flatten()(small_cnn()(inp))))
    with pytest.raises(ValueError, match="flat_classifier"):
        training_memory(nested, "full")


# --- techniques -------------------------------------------------------------------------------

def toy_data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(0, 0.5, (n, 10, 2)).astype(np.float32)
    X[:, :, 0] += y[:, None] - 1.0
    return X, y


def test_bias_only_training_changes_only_biases():
    m = small_cnn()
    X, y = toy_data()
    before = {v.path: v.numpy().copy() for v in m.weights}
    train(m, X, y, "bias", epochs=2, batch_size=16, lr=0.05)
    after = {v.path: v.numpy() for v in m.weights}
    changed = {p for p in before if not np.array_equal(before[p], after[p])}
    assert changed == {v.path for v in select_variables(m, "bias")}
    assert any(p.endswith("conv/bias") for p in changed)
    assert not any(p.endswith("conv/kernel") for p in changed)


def test_lite_residual_starts_equal_and_is_cheaper_than_full():
    m = small_cnn()
    lite = add_lite_residual(m, reduction=2)  # branch: conv to 2 channels, then 1x1 to 4
    X, _ = toy_data(8)
    np.testing.assert_allclose(lite.predict(X, verbose=0), m.predict(X, verbose=0), atol=1e-6)
    full = training_memory(lite, "full", batch_size=8)
    bl = training_memory(lite, "bias+lite_residual", batch_size=8)
    bias = training_memory(lite, "bias", batch_size=8)
    assert bias.activation_bytes < bl.activation_bytes < full.activation_bytes
    # the branch conv stores its pooled input (half length): 8 * 5 * 2 floats instead of 8 * 10 * 2,
    # plus its ReLU mask: 8 * 5 * 2 output elements -> 80 bits
    conv_row = [r for r in bl.layers if r.name == "lite_residual_conv0"][0]
    assert conv_row.activation_bytes == 8 * 5 * 2 * 4 + (8 * 5 * 2 + 7) // 8


def test_qas_scaling_restores_the_float_ratio():
    assert qas_scale_gradient(np.array([2.0]), 0.5)[0] == pytest.approx(8.0)
    with pytest.raises(ValueError):
        qas_scale_gradient(np.ones(2), 0.0)
    m = small_cnn()
    X, y = toy_data(32)
    for r in grad_weight_ratios(m, X, y):
        # |w_q| = |w|/s up to rounding (at most 0.5 per element), so 10% tolerance
        assert r["int8_naive"] / r["float"] == pytest.approx(r["scale"] ** 2, rel=0.1)
        assert r["int8_qas"] == pytest.approx(r["float"], rel=0.1)


def test_naive_int8_update_is_lost_to_rounding_qas_is_not():
    X, y = toy_data()
    naive, qas = small_cnn(), small_cnn()
    k0 = naive.get_layer("dense").kernel.numpy().copy()
    s = quant_scale(k0)
    train(naive, X, y, "last", epochs=2, batch_size=16, lr=0.05, optimizer="sgd", weight_quant="naive")
    train(qas, X, y, "last", epochs=2, batch_size=16, lr=0.05, optimizer="sgd", weight_quant="qas")
    k_naive = naive.get_layer("dense").kernel.numpy()
    k_qas = qas.get_layer("dense").kernel.numpy()
    q0 = np.clip(np.round(k0 / s), -127, 127)
    np.testing.assert_allclose(k_naive, s * q0, atol=1e-6)  # every int8 weight kept its value
    assert np.abs(k_qas / s - q0).max() >= 1  # QAS moved int8 weights by whole steps
    np.testing.assert_allclose(k_qas / s, np.round(k_qas / s), atol=1e-4)  # still on the int8 grid


def test_pruning_masks_are_kept_and_memory_shrinks():
    m = small_cnn()
    masks = magnitude_prune(m, 0.5)
    (path,) = masks
    assert path.endswith("conv/kernel") and masks[path].sum() == 12
    X, y = toy_data()
    train(m, X, y, "full", epochs=1, batch_size=16, lr=0.05, masks=masks)
    assert np.all(m.get_layer("conv").kernel.numpy()[masks[path] == 0] == 0)
    dense = training_memory(m, "full", "momentum", 2).as_dict()
    sp = pruned_training_memory(m, masks, "full", "momentum", 2)
    assert dense["gradients"] - sp["gradients"] == 12 * 4
    assert dense["optimizer_state"] - sp["optimizer_state"] == 12 * 4
    assert sp["weights"] == dense["weights"] - 24 * 4 + 12 * 6
    assert sp["activations"] == dense["activations"]


def test_select_under_budget_respects_budget():
    import pandas as pd

    m = small_cnn()
    contrib = pd.DataFrame([
        {"layer": "dense", "part": "last only", "gain": 0.0},
        {"layer": "conv", "part": "bias", "gain": 0.05},
        {"layer": "conv", "part": "kernel+bias", "gain": 0.10},
    ])
    last = training_memory(m, "last", "momentum", 2).ram_bytes
    bias = training_memory(m, {"dense": ("kernel", "bias"), "conv": "bias"}, "momentum", 2).ram_bytes
    full = training_memory(m, "full", "momentum", 2).ram_bytes
    plan, gain, mem = select_under_budget(m, contrib, full, batch_size=2)
    assert plan["conv"] == ("kernel", "bias") and gain == pytest.approx(0.10) and mem == full
    plan, gain, mem = select_under_budget(m, contrib, full - 1, batch_size=2)
    assert plan["conv"] == ("bias",) and mem == bias <= full - 1
    plan, gain, mem = select_under_budget(m, contrib, last, batch_size=2)
    assert plan == {"dense": ("kernel", "bias")} and gain == 0.0
    with pytest.raises(ValueError, match="budget"):
        select_under_budget(m, contrib, last - 1, batch_size=2)


# --- classical learners, compression -----------------------------------------------------------

def test_nearest_class_mean_matches_batch_means():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = np.repeat([0, 1], 20)
    ncm = NearestClassMean(3).partial_fit(X[:15], y[:15]).partial_fit(X[15:], y[15:])
    np.testing.assert_allclose(ncm.means_[:2], [X[y == 0].mean(0), X[y == 1].mean(0)])
    assert set(ncm.predict(rng.normal(size=(50, 3)))) <= {0, 1}  # class 2 never seen
    with pytest.raises(ValueError, match="labels"):
        ncm.partial_fit(X[:2], np.array([0, 5]))


def test_online_curves_learn_separable_data():
    from odlkit.tiny.classical import default_learners

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    X = (rng.normal(size=(300, 8)) + 3 * np.eye(3, 8)[y]).astype(np.float32)
    df = online_curves(default_learners(8, 3), X[:200], y[:200], X[200:], y[200:], chunk=20, n_classes=3)
    final = df.groupby("learner")["accuracy"].last()
    assert len(final) == 4 and (final > 0.85).all()


def test_compression_helpers():
    assert bytes_per_sample((50, 6)) == 1200 and bytes_per_sample(16, "int8") == 16
    q, s = quantize_int8(np.array([[-1.0, 0.5, 1.0]]))
    assert q.dtype == np.int8 and q.tolist() == [[-127, 64, 127]] and s == pytest.approx(1 / 127)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 5)) @ np.diag([10, 5, 1, 0.1, 0.1])
    p = PCACompressor(2).fit(X)
    assert p.transform(X).shape == (100, 2) and p.explained_variance > 0.9
    with pytest.raises(ValueError, match="k="):
        PCACompressor(10).fit(X)


def test_layerwise_train_peak_is_one_stage():
    m = small_cnn()
    X, y = toy_data()
    df = layerwise_train(m, X, y, X, y, epochs_per_stage=1, batch_size=32, progress=False)
    assert list(df.layer) == ["dense", "conv"]
    assert df.ram_bytes.iloc[0] == training_memory(m, "last", "momentum", 32).ram_bytes
    assert df.ram_bytes.max() == training_memory(m, "full", "momentum", 32).ram_bytes  # 2 layers: stage 2 = full
    assert len(layerwise_train(m, X, y, X, y, epochs_per_stage=1, max_stages=1, progress=False)) == 1


@pytest.mark.slow
def test_recompute_saves_measured_memory():
    # 8 conv blocks of 32 x 512 x 32 floats (2 MiB each): storing them all is ~18 MiB; with 3
    # recomputed segments ~14 MiB by the model count. The measured peaks include TensorFlow's own
    # scratch, so only the direction is asserted, with a 2 MiB margin over noise.
    from odlkit.tiny import recompute_benchmark

    r = recompute_benchmark(n_blocks=8, channels=32, length=512, batch=32, repeats=1)
    assert r["recompute"]["stored_activation_bytes_model"] < r["plain"]["stored_activation_bytes_model"]
    assert r["recompute"]["peak_bytes"] + 2 * 2**20 < r["plain"]["peak_bytes"]


def test_flat_classifier_copies_the_backbone_and_counts_its_layers():
    from odlkit.models import build_backbone
    from odlkit.tiny import flat_classifier

    bb = build_backbone(seed=1)
    flat = flat_classifier(bb, 4, seed=0)
    X = np.random.default_rng(0).normal(size=(5, 50, 6)).astype(np.float32)
    feats = keras.Model(flat.inputs, flat.get_layer(bb.layers[-1].name).output)
    np.testing.assert_allclose(feats(X, training=False), bb(X, training=False), atol=1e-5)
    assert flat.layers[-1].name == "head" and flat.output_shape == (None, 4)
    r = training_memory(flat, "last", "momentum", batch_size=1)
    assert r.updated_params == 64 * 4 + 4 and r.total_params == bb.count_params() + 260


def test_qas_bias_scale_is_the_product_of_weight_and_input_scales():
    """A bias stored as b = s_W s_x b_q: |g_bq| / |b_q| = (s_W s_x)^2 |g_b| / |b| (hand check)."""
    s_w, s_x = 0.02, 0.5
    b = np.array([0.3, -0.1])
    g_b = np.array([0.01, 0.02])
    b_q, g_bq = b / (s_w * s_x), g_b * (s_w * s_x)  # chain rule: db/db_q = s_W s_x
    ratio_float = np.linalg.norm(g_b) / np.linalg.norm(b)
    scaled = qas_scale_gradient(g_bq, s_w, input_scale=s_x)
    assert np.isclose(np.linalg.norm(scaled) / np.linalg.norm(b_q), ratio_float)
    assert not np.isclose(np.linalg.norm(qas_scale_gradient(g_bq, s_w)) / np.linalg.norm(b_q), ratio_float)
    with pytest.raises(ValueError, match="input"):
        qas_scale_gradient(g_bq, s_w, input_scale=0.0)
