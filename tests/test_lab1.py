"""Lab 1 host logic against the real virtual board (the sketch's C++ compiled for the host)."""

import numpy as np
import pytest

from odlkit.board import Board
from odlkit.head import Head
from odlkit.labs import lab1

CLASSES = ["standing", "walking", "running"]


@pytest.fixture()
def board():
    with Board.virtual(dataset="basic_motions") as b:
        yield b


def test_host_twin_matches_the_board_over_two_training_calls(board):
    """The numpy head replays the board's training (data order, momentum reset, bias-only mode).

    Tolerance: 1e-4 absolute on the weights (they reach |W| ~ 1e-1..1e1 on features of size
    ~10): the C++ loops and numpy's matmul add float32 products in different orders, which
    leaves ~1e-6 relative differences per step; after ~25 updates they stay far below 1e-4.
    Accuracies on the stored samples must agree within 1 point.
    """
    for c in CLASSES:
        board.record(c, n=8)
    w0 = board.get_weights()
    calls = [dict(epochs=6, lr=0.01, momentum=0.9, weight_decay=1e-3, batch_size=5),
             dict(epochs=3, lr=0.02, momentum=0.5, batch_size=7, mode="bias")]
    for c in calls:
        board.train(**c)
    w1 = board.get_weights()
    F, y, sess = lab1.board_features(board)
    assert F.shape == (24, 64) and sorted(set(y.tolist())) == [0, 1, 2]
    twin = lab1.host_twin(w0, w1, F, y, calls, seed=1, sessions=sess)
    assert twin.max_abs_diff < 1e-4, twin.summary()
    assert abs(twin.board_accuracy - twin.host_accuracy) <= 0.01
    assert twin.agreement == 1.0
    ev = board.evaluate()
    assert ev.accuracy == pytest.approx(twin.board_accuracy, abs=1e-6)
    # the parity is not trivial: a wrong data order gives clearly different weights
    wrong = Head.from_weights(w0)
    wrong.fit(F, y, order="sequential", **{k: v for k, v in calls[0].items() if k != "mode"})
    assert np.abs(wrong.W - Head.from_weights(w1).W).max() > 1e-3


def test_twin_follows_sessions_without_replay(board):
    for c in CLASSES:
        board.record(c, n=5)
    board.train(epochs=4, lr=0.01)
    assert board.add_class("badminton") == 3
    board.reset("session")
    board.record("badminton", n=5)
    board.record("running", n=3)
    w0 = board.get_weights()
    call = dict(epochs=4, lr=0.002, batch_size=3, use_replay=False)
    board.train(**call)
    w1 = board.get_weights()
    F, y, sess = lab1.board_features(board)
    assert (sess == sess.max()).sum() == 8
    # the first call (15 samples, 4 epochs) advanced the board's shuffle stream
    twin = lab1.host_twin(w0, w1, F, y, [call], seed=1, sessions=sess, earlier_calls=[(15, 4)])
    assert twin.max_abs_diff < 1e-4, twin.summary()
    assert twin.head.W.shape == (64, 4)
    # without the earlier call the order differs and so do the weights
    off = lab1.host_twin(w0, w1, F, y, [dict(call, replay=False)], seed=1, sessions=sess)
    assert off.max_abs_diff > 1e-3


def test_virtual_raw_source_is_what_the_board_learned_from(board):
    """Windows saved on the host (``VirtualRawSource``) give the board's stored features when
    run through the host backbone. Tolerance 1e-3 relative: the board runs the float backbone
    with BatchNorm folded (different float32 rounding than Keras)."""
    from odlkit.pretrain import load_backbone

    src = lab1.virtual_raw_source()
    for c in ["walking", "standing"]:
        board.record(c, n=3)
    X = np.concatenate([src("walking", 3), src("standing", 3)])
    backbone, meta = load_backbone()
    F_host = lab1.embed(backbone, meta, X)
    F_board, y, _ = lab1.board_features(board)
    assert y.tolist() == [1, 1, 1, 0, 0, 0]
    np.testing.assert_allclose(F_board, F_host, rtol=1e-3, atol=1e-3 * np.abs(F_host).max())


def test_heldout_accuracy_and_budget(board):
    for c in CLASSES:
        board.record(c, n=10)
    untrained = lab1.heldout_accuracy(board, CLASSES, per_class=4)
    assert untrained["confusion"].sum() == 12
    board.train(epochs=15, lr=0.005)
    trained = lab1.heldout_accuracy(board, CLASSES, per_class=8)
    assert trained["accuracy"] >= 0.75, trained
    assert set(trained["per_class"]) == set(CLASSES)
    budget = lab1.memory_budget(board.info())
    mem = budget["memory"]
    assert mem["head: W, b, velocity, gradient"] == budget["expected"]["head"]
    assert mem["training store (replay buffer)"] == budget["expected"]["store"]
    assert mem["engine total (static)"] >= mem["training store (replay buffer)"] + mem["head: W, b, velocity, gradient"]
    assert budget["time"]["stored samples"] == 30


def test_generic_vs_personal_on_two_subjects():
    res = lab1.generic_vs_personal(subjects=[2, 10])
    assert res["subjects"].tolist() == [2, 10]
    for k in ("generic", "personal", "combined"):
        assert np.all((res[k] >= 0) & (res[k] <= 1))
    # chance is 1/7: both models must learn something
    assert res["generic"].mean() > 0.3 and res["combined"].mean() > 0.3


def test_open_board_falls_back_to_virtual(capsys):
    b = lab1.open_board()
    try:
        assert b.kind == "virtual"
        assert "virtual board" in capsys.readouterr().out
    finally:
        b.close()


def test_window_statistics_rejects_flat_input():
    with pytest.raises(ValueError, match="steps, channels"):
        lab1.window_statistics(np.zeros((4, 6)))


def test_device_training_estimate_scales_instructions():
    bench = {"batch": 8, "rows": [
        {"features": 64, "classes": 4, "batch": 8, "train_step_instructions": 1000, "inference_instructions": 10},
        {"features": 64, "classes": 8, "batch": 8, "train_step_instructions": 2000, "inference_instructions": 20},
    ]}
    est = lab1.device_training_estimate(bench, n_samples=17, epochs=10, n_classes=5, mhz=50)
    assert est["training steps"] == 30  # ceil(17 / 8) = 3 batches x 10 epochs
    assert est["instructions"] == 60000  # the 8-class row: the smallest one that fits 5 classes
    assert est["estimated ms at 50 MHz"] == pytest.approx(1.2)
    with pytest.raises(ValueError, match="no row"):
        lab1.device_training_estimate(bench, 8, 1, n_classes=9)


def test_time_split_keeps_overlapping_windows_apart():
    y = np.array([0] * 10 + [1] * 6)
    tr, te = lab1.time_split(y, 0.5)
    assert tr.tolist() == [0, 1, 2, 3, 4, 10, 11, 12]
    assert te.tolist() == [6, 7, 8, 9, 14, 15]  # windows 5 and 13 overlap the last training ones
    assert not set(tr) & set(te)


def test_personalization_run_end_to_end_on_the_virtual_board():
    r = lab1.personalization_run(n_per_class=10, lr=2e-4, epochs=30)
    assert r["twin_max_abs_diff"] < 1e-4 and r["twin_accuracy_gap"] <= 0.01
    # three activities, 45 held-out windows each, chance 1/3
    assert r["heldout_accuracy"] >= 0.8, r
    assert r["with_new_class_accuracy"] >= 0.6, r
    assert set(r["with_new_class_per_class"]) == {"standing", "walking", "running", "badminton"}


def test_plan_comparison_trains_what_fits_and_reports_what_does_not():
    """Each plan on a fresh board of the Lab 1 firmware: bias-only trains (the engine's INFO), the
    two-layer sparse update is refused by the 64 KiB plan buffer and comes back as fits=False with
    no accuracy; too many windows for the window store is a clear error before any board starts."""
    import math

    from odlkit.sketches import get_sketch

    rows = lab1.plan_comparison(n_per_class=2, epochs=1, heldout_per_class=2, runs=(("bias", None), ("sparse", 2)),
                                progress=False)
    bias, k2 = rows
    assert bias["fits"] and bias["board"] == "lab1" and bias["steps"] == 1  # 6 windows, batch 8, one epoch
    assert bias["plan_ram"] > 0 and bias["plan_cap"] == get_sketch("lab1_motion").plan_bytes
    assert 0.0 <= bias["heldout_accuracy"] <= 1.0 and bias["label"] == "bias"
    assert not k2["fits"] and "does not fit" in k2["refused"] and math.isnan(k2["heldout_accuracy"])
    assert k2["label"] == "sparse k=2"
    with pytest.raises(ValueError, match="exceed the 64 windows"):
        lab1.plan_comparison(n_per_class=22, progress=False)
    with pytest.raises(ValueError, match="plan_bytes goes with plans=True"):
        Board.virtual(plan_bytes=4096)


def test_device_plan_times_names_rows_like_the_comparison(tmp_path):
    p = tmp_path / "plans.json"
    p.write_text('{"rows": [{"plan": "head", "k": 0, "ms_at_64MHz_cpi1": 0.2}, '
                 '{"plan": "sparse", "k": 2, "ms_at_64MHz_cpi1": 96.0}]}')
    times = lab1.device_plan_times(p)
    assert set(times) == {"head", "sparse k=2"} and times["sparse k=2"]["ms_at_64MHz_cpi1"] == 96.0
    assert lab1.device_plan_times(tmp_path / "missing.json") is None
