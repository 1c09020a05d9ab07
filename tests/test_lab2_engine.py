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


@pytest.mark.parametrize("plan", ["all", "head"])
def test_gradients_match_finite_differences(plan):
    X, y = _toy(12, 6, 3)
    net = TwoLayerNet.initial(6, 5, ["a", "b", "c"], seed=3)
    net.W2 = np.random.default_rng(1).normal(0, 0.5, net.W2.shape).astype(np.float32)  # a non-zero head
    net.b1 = np.full(5, 0.1, np.float32)
    Z = X / 2
    wd = 0.01
    _, g = net.gradients(Z, y, weight_decay=wd, plan=plan)
    assert set(g) == ({"W1", "b1", "W2", "b2"} if plan == "all" else {"W2", "b2"})
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


@pytest.mark.parametrize("plan", ["all", "head"])
def test_fit_matches_a_per_sample_sgd_momentum_loop(plan):
    X, y = _toy(30, 24, 4)
    net = TwoLayerNet.initial(24, 16, list("abcd"), seed=1)
    net.norm.update_many(X)
    ref = {k: v.astype(np.float64) for k, v in net.params().items()}
    Z = net.norm.transform(X).astype(np.float64)
    epochs, bs, lr, mu, wd = 3, 7, 0.05, 0.9, 1e-3
    hist = net.fit(X, y, epochs=epochs, lr=lr, momentum=mu, weight_decay=wd, batch_size=bs, plan=plan, seed=1)
    vel = {k: np.zeros_like(v) for k, v in ref.items()}
    trained = ["W1", "b1", "W2", "b2"] if plan == "all" else ["W2", "b2"]
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


# ------------------------------------------------------------------ C++ engine vs the references
import shutil  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent / "engine"))
from enginebuild import (  # noqa: E402
    HERE,
    LIB_SRC,
    arm_build,
    c_array,
    gxx,
    missing_arm_tools,
    qemu_run,
    run,
)

LAB2_SOURCES = [LIB_SRC / n for n in ("odl_kernels.cpp", "odl_head.cpp", "odl_blob.cpp", "odl_storage.cpp",
                                      "odl_lpc.cpp", "odl_mlp.cpp")]
MAX_FRAMES, HIDDEN, EPOCHS = 32, 32, 3


def _utterances():
    from odlkit import data

    ds = data.load("japanese_vowels")
    split = np.asarray(ds.meta["split"])
    idx = [i for c in range(3) for i in np.flatnonzero((ds.y == c) & (split == "train"))[:8]]
    return [np.asarray(ds.X[i], np.float32) for i in idx], ds.y[idx].astype(np.int64)


def _audio(tmp):
    """16 kHz: a vowel from espeak-ng (or, without it, an AR(12) signal); 10 kHz: an AR(12) signal."""
    import scipy.signal

    rng = np.random.default_rng(7)
    ar = scipy.signal.lfilter([1.0], [1.0, -1.2, 0.9, -0.3, 0.2, -0.1, 0.05, 0.0, 0.0, 0.0, 0.0, 0.0, 0.01],
                              rng.standard_normal(3200))
    x10 = np.clip(np.round(ar / np.abs(ar).max() * 12000), -32768, 32767).astype(np.int16)
    if shutil.which("espeak-ng"):
        import subprocess
        import wave

        wav = tmp / "aah.wav"
        subprocess.run(["espeak-ng", "-v", "en", "-s", "120", "-w", str(wav), "aah"], check=True, capture_output=True)
        with wave.open(str(wav)) as w:
            fs = w.getframerate()
            v = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64)
        g = np.gcd(16000, fs)
        v = scipy.signal.resample_poly(v, 16000 // g, fs // g)[:4800]
        x16 = np.clip(np.round(v), -32768, 32767).astype(np.int16)
    else:
        x16 = np.clip(np.round(scipy.signal.resample_poly(ar, 8, 5)[:4800] / np.abs(ar).max() * 12000),
                      -32768, 32767).astype(np.int16)
    return x16, x10


@pytest.fixture(scope="module")
def lab2_build(tmp_path_factory):
    d = tmp_path_factory.mktemp("lab2")
    utts, y = _utterances()
    x16, x10 = _audio(d)
    padded = np.zeros((len(utts), MAX_FRAMES * 12), np.float32)
    for i, u in enumerate(utts):
        padded[i, : u.size] = u.reshape(-1)
    text = ["#pragma once", "#include <stdint.h>", f"static const uint16_t kMaxFrames = {MAX_FRAMES};",
            f"static const uint16_t kHidden = {HIDDEN};", f"static const uint16_t kEpochs = {EPOCHS};",
            f"static const uint32_t kUttCount = {len(utts)};",
            f"static const uint16_t kUttFrames[{len(utts)}] = {c_array('f', [len(u) for u in utts], 'int')};",
            f"static const uint16_t kUttLabels[{len(utts)}] = {c_array('y', y, 'int')};",
            f"static const float kUttData[{len(utts)}][{MAX_FRAMES * 12}] = {c_array('x', padded)};",
            f"static const uint32_t kAudio16kCount = {len(x16)};",
            f"static const int16_t kAudio16k[{len(x16)}] = {c_array('a', x16, 'int')};",
            f"static const uint32_t kAudio10kCount = {len(x10)};",
            f"static const int16_t kAudio10k[{len(x10)}] = {c_array('b', x10, 'int')};", ""]
    (d / "lab2_data.h").write_text("\n".join(text))
    srcs = [HERE / "lab2_scenario.cpp", *LAB2_SOURCES]
    host = gxx(srcs, d / "lab2_host", includes=[d, HERE])
    out = run([host]).stdout
    assert "done" in out and "ERROR" not in out, out[-2000:]
    return {"dir": d, "srcs": srcs, "out": out, "utts": utts, "y": y, "x16": x16, "x10": x10}


def _bits(tokens):
    return np.array([int(t, 16) for t in tokens], dtype=np.uint32).view(np.float32)


def _parse(out):
    rec: dict = {"summary": [], "epoch": {"all": [], "head": []}, "net": {}, "f16": [], "f10": []}
    mode = "all"
    for line in out.splitlines():
        t = line.split()
        if not t:
            continue
        if t[0] in ("W1init", "mean", "m2"):
            rec[t[0]] = _bits(t[1:])
        elif t[0] == "summary":
            rec["summary"].append(_bits(t[1:]))
        elif t[0] == "epoch":
            rec["epoch"][mode].append(float(_bits(t[1:])[0]))
        elif t[0] == "net":
            mode = t[1]
            rec["net"][mode] = {}
        elif t[0] in ("W1", "b1", "W2", "b2"):
            rec["net"][mode][t[0]] = _bits(t[1:])
        elif t[0] in ("f16", "f10"):
            rec[t[0]].append((int(t[1]), int(t[2]), _bits(t[4:])))
        elif t[0] == "cycles" and t[1] == "head":  # the head run's epochs follow the "all" net dump
            pass
        if t[0] == "blob":
            rec.setdefault("blob", []).append(line)
    # epochs of the head run are printed before its "net head" line
    return rec


def test_engine_initial_weights_standardizer_and_summaries_are_bit_identical(lab2_build):
    rec = _parse(lab2_build["out"])
    np.testing.assert_array_equal(rec["W1init"], he_uniform_xorshift(24, HIDDEN, seed=1).reshape(-1))
    summaries = np.array([audio.utterance_summary(u) for u in lab2_build["utts"]])
    np.testing.assert_array_equal(np.array(rec["summary"]), summaries)
    s = Standardizer(24)
    s.update_many(summaries)
    np.testing.assert_array_equal(rec["mean"], s.mean)
    np.testing.assert_array_equal(rec["m2"], s.m2)
    assert all("status 0 reload 0" in b for b in rec["blob"])


@pytest.mark.parametrize("plan", ["all", "head"])
def test_engine_training_matches_the_numpy_reference_step_for_step(lab2_build, plan):
    out = lab2_build["out"]
    # the head run's epoch lines come after "net all"
    part = out.split("net all")[1] if plan == "head" else out.split("net all")[0]
    losses = [float(_bits(line.split()[1:])[0]) for line in part.splitlines() if line.startswith("epoch")]
    rec = _parse(out)["net"][plan]
    utts, y = lab2_build["utts"], lab2_build["y"]
    X = np.array([audio.utterance_summary(u) for u in utts])
    net = TwoLayerNet.initial(24, HIDDEN, ["s0", "s1", "s2"], seed=1)
    net.norm.update_many(X)
    hist = net.fit(X, y, epochs=EPOCHS, lr=0.05, momentum=0.9, weight_decay=1e-4, batch_size=8, plan=plan,
                   order="shuffle", seed=1)
    # Same arithmetic in float32; the board sums dot products left to right, numpy/BLAS in blocks:
    # rounding differences of ~1e-7 relative per operation, grown by 9 momentum steps to < 1e-5 here
    # (weights are O(0.5)); 1e-4 leaves room and still catches any wrong term (a missing momentum,
    # decay or ReLU mask changes the weights by > 1e-3).
    for k in ("W1", "b1", "W2", "b2"):
        np.testing.assert_allclose(rec[k], net.params()[k].reshape(-1), atol=1e-4, rtol=0, err_msg=k)
    np.testing.assert_allclose(losses, [h.loss for h in hist], rtol=1e-4)
    if plan == "head":  # the frozen hidden layer did not move
        np.testing.assert_array_equal(rec["W1"], he_uniform_xorshift(24, HIDDEN, seed=1).reshape(-1))


@pytest.mark.parametrize("rate", [16000, 10000])
def test_engine_lpc_matches_the_python_reference(lab2_build, rate):
    rec = _parse(lab2_build["out"])["f16" if rate == 16000 else "f10"]
    pcm = lab2_build["x16"] if rate == 16000 else lab2_build["x10"]
    x = audio.int16_to_float(pcm)
    ref = audio.lpc_cepstra(x, rate_hz=rate)
    xs = audio.resample_16k_to_10k(x) if rate == 16000 else x
    ref_voiced = [audio.voiced(f) for f in audio.frames(xs)]
    assert len(rec) == len(ref) > 30
    board = np.array([c for _, _, c in rec])
    # float32 (board) vs float64 (reference): the windowed frame itself is rounded to float32
    # (6e-8 relative) and Levinson-Durbin amplifies a perturbation of r by the condition number of
    # the 12x12 Toeplitz matrix (~4e4 for the espeak vowel, band-limited by the resampler), so
    # even an exact float32 pipeline differs by ~1.5e-3 (measured in a float32 numpy emulation);
    # 5e-3 on cepstra of O(1) is that bound with room, and far below the spread between speakers
    # (0.1-0.5 per coefficient in JapaneseVowels). A plain (uncompensated) float autocorrelation
    # fails it (errors of 1.2e-2: the reason odl_lpc.cpp uses Kahan summation).
    np.testing.assert_allclose(board, ref, atol=5e-3, rtol=0)
    assert [bool(v) for _, v, _ in rec] == ref_voiced


@pytest.mark.arm
@pytest.mark.skipif(bool(missing_arm_tools()), reason="ARM toolchain or qemu missing")
def test_qemu_board_flags_match_the_host_bit_for_bit(lab2_build):
    """The Nano 33 BLE's own flags (-Os, softfp, GCC's default contraction) under qemu: the same
    training run and the same LPC frames as the host, bit for bit (the library's numerics pragmas)."""
    elf = arm_build(lab2_build["srcs"], lab2_build["dir"] / "lab2.elf", includes=[lab2_build["dir"]], build="board")
    q = qemu_run(elf, timeout=600)
    assert q.returncode == 0 and "done" in q.stdout, q.stdout[-2000:] + q.stderr[-2000:]

    def comparable(out):
        return [line for line in out.splitlines() if not line.startswith(("sizeof", "cycles"))]

    qa, ha = comparable(q.stdout), comparable(lab2_build["out"])
    diff = [(i, x[:60], y[:60]) for i, (x, y) in enumerate(zip(qa, ha, strict=False)) if x != y]
    assert len(qa) == len(ha) and not diff, (len(qa), len(ha), diff[:3])
    cyc = [line for line in q.stdout.splitlines() if line.startswith("cycles")]
    assert len(cyc) == 4 and all(int(line.split()[3 if "train" in line else 2]) > 0 for line in cyc), cyc


# ------------------------------------------------------------------ the virtual board, end to end
from odlkit.board import Board, BoardError  # noqa: E402


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    b = Board.virtual(sketch="lab2_microphone", dataset="japanese_vowels", seed=0,
                      storage=tmp_path_factory.mktemp("lab2flash") / "flash.bin")
    yield b
    b.close()


def test_board_reports_the_network_and_its_ram(board):
    assert board.hello["hidden"] == 32 and board.hello["dim"] == 24 and board.hello["win"] == 32
    info = board.info()
    # net_ram by hand: W1 24x32, b1 32, W2 32x12, b2 12, each with momentum and gradient (x3),
    # plus the per-sample scratch z 24, h 32, dh 32, probs 12
    assert info["net_ram"] == 4 * (3 * (24 * 32 + 32 + 32 * 12 + 12) + 24 + 32 + 32 + 12)
    assert info["norm_ram"] == 4 * 3 * 24 and info["lpc_ram"] > 4 * 256 * 3


def test_board_trains_like_the_host_reference(board):
    board.reset()
    names = [f"speaker{i}" for i in range(1, 10)]
    assert TwoLayerNet.from_weights(board.get_network()).to_weights() == \
        TwoLayerNet.initial(24, 32, names, seed=1).to_weights()  # engine seed 1 = Board.virtual(seed=0)
    for s in ("speaker1", "speaker4", "speaker7"):
        board.record(s, n=6)
    X, y = board.get_features()
    host = TwoLayerNet.initial(24, 32, names, seed=1)
    host.norm.update_many(X)
    net0 = board.get_network()
    np.testing.assert_array_equal(net0.norm_mean, host.norm.mean)  # the standardizer, bit for bit
    np.testing.assert_array_equal(net0.norm_m2, host.norm.m2)
    r = board.train(epochs=4, lr=0.05, momentum=0.9, weight_decay=1e-4, batch_size=4, seed=1, plan="all")
    hist = host.fit(X, y, epochs=4, lr=0.05, momentum=0.9, weight_decay=1e-4, batch_size=4, seed=1)
    dev = board.get_network()
    for k in ("W1", "b1", "W2", "b2"):  # same tolerance and reason as the step-for-step test above
        np.testing.assert_allclose(getattr(dev, k), host.params()[k], atol=1e-4, err_msg=k)
    # losses travel as %.6g text: 1e-4 relative covers that and the float32 rounding differences
    assert [h["loss"] for h in r.history] == pytest.approx([h.loss for h in hist], rel=1e-4)
    assert board.info()["step_us"] >= 0 and r.train_us > 0
    w1 = dev.W1.copy()
    board.train(epochs=2, plan="head", seed=2)
    np.testing.assert_array_equal(board.get_network().W1, w1)  # frozen hidden layer


def test_board_bad_input_is_refused_and_changes_nothing(board):
    before = board.get_network()
    stored = board.info()["stored"]
    with pytest.raises(BoardError) as e:
        board.record("nobody", n=1)
    assert e.value.code == 8 and "unknown class" in str(e.value)
    with pytest.raises(BoardError) as e:
        board.train(mode="bias")
    assert e.value.code == 6 and "mode=bias" in str(e.value)
    bad = board.get_network()
    bad.W1[0, 0] = np.nan
    with pytest.raises(BoardError) as e:
        board.set_network(bad)
    assert e.value.code == 10 and "non-finite" in str(e.value)
    small = TwoLayerNet.initial(24, 16, ["a", "b", "c"]).to_weights()  # hidden 16: not this sketch
    with pytest.raises(BoardError) as e:
        board.set_network(small)
    assert e.value.code == 10 and "does not fit" in str(e.value)
    with pytest.raises(BoardError) as e:  # fewer classes than the stored samples need
        board.set_network(TwoLayerNet.initial(24, 32, ["a", "b"]).to_weights())
    assert e.value.code == 10
    with pytest.raises(BoardError) as e:
        board._request("LPC", "off=6", "data=AAAA")  # not where the stream is
    assert e.value.code == 7 and "out of order" in str(e.value)
    with pytest.raises(BoardError) as e:
        board._request("LPC", "off=0", "data=AAA=")  # 2 bytes... then an odd count
        board._request("LPC", "off=2", "data=AA==")
    assert e.value.code == 7 and "int16" in str(e.value)
    with pytest.raises(BoardError) as e:
        board._request("LPC", "off=2", "rate=10000", "data=AAAA")
    assert e.value.code == 6
    with pytest.raises(BoardError) as e:
        board._request("LPC", "off=0", "rate=8000", "data=AAAA")
    assert e.value.code == 6 and "rate" in str(e.value)
    with pytest.raises(ValueError, match="int16"):
        board.lpc(np.array([40000, 1]))
    assert board.get_network() == before and board.info()["stored"] == stored


def test_board_save_load_and_lpc_on_audio(board, tmp_path):
    net = board.get_network()
    assert board.save() == weights.mlp_blob_size(net.n_classes, 24, 32)
    board.train(epochs=1, seed=3)
    assert board.get_network() != net
    board.load()
    assert board.get_network() == net
    x16, _ = _audio(tmp_path)
    res = board.lpc(x16, rate=16000)
    ref = audio.lpc_cepstra(audio.int16_to_float(x16), rate_hz=16000)
    assert res.ceps.shape == ref.shape and list(res.index) == list(range(len(ref)))
    np.testing.assert_allclose(res.ceps, ref, atol=5e-3)  # the tolerance of the LPC parity test
    assert res.voiced.any()


def test_lab1_sketch_refuses_two_layer_training():
    with Board.virtual(dataset="basic_motions") as b:
        with pytest.raises(BoardError) as e:
            b.train(epochs=1, plan="all")
        assert e.value.code == 6 and "plan=all needs a sketch with a hidden layer" in str(e.value)
        with pytest.raises(BoardError) as e:
            b._request("LPC", "off=0", "data=AAAA")
        assert e.value.code == 8 and "no audio front end" in str(e.value)
        assert "hidden" not in b.hello and "net_ram" not in b.info()


def test_board_gradient_is_one_full_batch_step(board):
    """The board's own gradient, for grading a hand-written backward pass: one step over the whole
    store with lr=1, momentum=0, weight_decay=0 moves every parameter by exactly -gradient."""
    board.reset()
    for s in ("speaker2", "speaker5", "speaker8"):
        board.record(s, n=5)
    board.train(epochs=2, lr=0.05, seed=1)  # away from the zero head, so every gradient is non-zero
    before = board.get_network()
    X, y = board.get_features()
    board.train(epochs=1, lr=1.0, momentum=0.0, weight_decay=0.0, batch_size=len(X), seed=5)
    after = board.get_network()
    host = TwoLayerNet.from_weights(before)
    _, g = host.gradients(host.norm.transform(X), y)
    for k in ("W1", "b1", "W2", "b2"):
        # measured 7e-8: float32 rounding of W - g and of the two summation orders
        np.testing.assert_allclose(getattr(before, k) - getattr(after, k), g[k], atol=1e-6, err_msg=k)
        assert np.abs(g[k]).max() > 1e-3
