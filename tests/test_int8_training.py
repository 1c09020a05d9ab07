"""ODLEngine's int8 path (odl_int8.h): the full-integer backbone against TensorFlow Lite's own
reference kernels, and int8 head training with and without quantization-aware scaling (QAS)
against a numpy reference of the same update.

* Forward: the .tflite that ``to_tflite(backbone, X, int8=True)`` converts is read by
  ``odlkit.export.int8`` into the board's int8 layer list; the engine's int8 output of every
  layer must equal, bit for bit, the tensor that ``tf.lite.Interpreter`` with
  ``OpResolverType.BUILTIN_REF`` (the reference kernels, not XNNPACK or the optimized ones)
  computes on the same int8 inputs, except the dense layer's rounding ties, where TensorFlow's
  reference rounds once and TensorFlow Lite Micro twice; the features equal TensorFlow Lite
  Micro's interpreter bit for bit.
* Training: the int8 head (int8 W per tensor, int32 b, a float latent copy, momentum) trained
  by the engine equals ``_numpy_qhead_train`` (float32 numpy, the same data order from the
  engine's xorshift32, the same SGD-with-momentum rule and QAS factors 1/s_W and 1/(s_W s_x),
  or s_W and s_W s_x for naive int8): the int8 weights bit for bit except at a rounding tie,
  the latents within 1e-3 quanta, the per-epoch loss within 1e-5 relative. Why not exact: the
  reference's softmax is numpy's exp in float64, the engine's its own float32 exp (odl_head.cpp,
  ~2e-7 relative), so the gradients differ by ulps; momentum (x10) and 24 steps of latents up to
  127 (ulp 7.6e-6) carry that to ~2e-4 quanta (measured), far from the 0.5 that flips a weight.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "engine"))
from enginebuild import HERE, LIB_SRC, gxx  # noqa: E402

pytestmark = pytest.mark.xdist_group("engine")

N_FORWARD = 120
LATENT_TOL = 1e-3  # quanta: 1/500 of the 0.5 that flips an int8 weight (see the module docstring)


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory):
    pytest.importorskip("tensorflow")
    from odlkit.data import imu_windows
    from odlkit.export.int8 import int8_backbone, write_int8_header
    from odlkit.export.tflite import to_tflite
    from odlkit.pretrain import load_backbone

    d = tmp_path_factory.mktemp("int8")
    backbone, meta = load_backbone()
    ds = imu_windows("basic_motions")
    X = ((ds.X - np.asarray(meta["input_mean"])) / np.asarray(meta["input_std"])).astype(np.float32)
    tfl = to_tflite(backbone, X[::3], int8=True)
    qm = int8_backbone(backbone, tfl)
    write_int8_header(qm, d / "odl_int8_model_data.h")
    exe = gxx([HERE / "int8_cli.cpp", LIB_SRC / "odl_int8.cpp", LIB_SRC / "odl_head.cpp", LIB_SRC / "odl_kernels.cpp"],
              d / "int8_cli", includes=[d])
    return exe, tfl, qm, X, ds.y


def _reference_layers(tfl, qm, Xq):
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_content=tfl, experimental_preserve_all_tensors=True,
                                 experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    out = []
    for x in Xq:
        interp.set_tensor(inp, x[None])
        interp.invoke()
        out.append([np.asarray(interp.get_tensor(q.tensor)).reshape(-1) for q in qm.layers])
    return out


def _engine_layers(exe, qm, Xq):
    import subprocess

    stdin = struct.pack("<I", len(Xq)) + np.ascontiguousarray(Xq, np.int8).tobytes()
    p = subprocess.run([str(exe), "forward"], input=stdin, capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    sizes = []
    T, C = qm.input_len, qm.input_channels
    from odlkit.export.c_header import CONV1D, DENSE, DEPTHWISE, GAP, MAXPOOL

    for q in qm.layers:
        T = {CONV1D: T - q.kernel + 1, DEPTHWISE: T - q.kernel + 1, MAXPOOL: T // max(q.kernel, 1), GAP: 1, DENSE: 1}[q.type]
        C = q.out_channels
        sizes.append(T * C)
    buf = np.frombuffer(p.stdout, np.int8)
    assert buf.size == len(Xq) * sum(sizes)
    out, at = [], 0
    for _ in Xq:
        layers = []
        for n in sizes:
            layers.append(buf[at : at + n])
            at += n
        out.append(layers)
    return out


def test_int8_forward_equals_tflite_reference_kernels_at_every_layer(int8_model):
    """Every layer equals BUILTIN_REF bit for bit, except FULLY_CONNECTED on rounding ties: there
    TensorFlow's reference kernel rounds once ((x m + 2^(30-shift)) >> (31-shift)), while TFLite
    Micro (the board's runtime, checked exactly below) and every other layer round twice (gemmlowp);
    the engine follows TFLite Micro, so it may differ from BUILTIN_REF there by 1, on ties only."""
    from odlkit.export.c_header import DENSE

    exe, tfl, qm, X, _ = int8_model
    idx = np.random.default_rng(0).choice(len(X), N_FORWARD, replace=False)
    Xq = qm.quantize_input(X[idx])
    ref = _reference_layers(tfl, qm, Xq)
    got = _engine_layers(exe, qm, Xq)
    for k, q in enumerate(qm.layers):
        r = np.stack([ref[i][k] for i in range(len(Xq))]).astype(np.int64)
        g = np.stack([got[i][k] for i in range(len(Xq))]).astype(np.int64)
        if q.type != DENSE:
            diff = np.argwhere(r != g)
            assert diff.size == 0, f"layer {k} ({q.name}): {len(diff)} int8 values differ from BUILTIN_REF, e.g. {diff[:3]}"
            continue
        # the dense layer: its input equals BUILTIN_REF's (checked above), so recompute its int32
        # sums here and require every difference to be a tie that the two rounding forms split
        x = np.stack([ref[i][k - 1] for i in range(len(Xq))]).astype(np.int64) - q.in_zero
        acc = x @ q.weights.astype(np.int64).T + q.bias
        m, sh = q.multiplier[None, :], q.shift[None, :]
        single = np.clip(((acc * m + (1 << (30 - sh))) >> (31 - sh)) + q.out_zero, q.act_min, q.act_max)
        np.testing.assert_array_equal(single, r)  # this is how BUILTIN_REF rounds
        differ = r != g
        assert np.abs(r - g).max() <= 1 and differ.mean() < 0.005, f"{differ.sum()} dense outputs differ"


def _numpy_qhead_train(Xq, y, W, b, xs, xz, epochs, batch, lr, mu, qas, seed=1):
    """The engine's int8 head update in float32 numpy (odl_int8.h): per-tensor s_W, latents in
    quanta, gradients of the real weights times 1/s_W, 1/(s_W s_x) (QAS) or s_W, s_W s_x (naive),
    SGD with momentum on the latents, Wq = round(clip(latent, -127, 127))."""
    from odlkit.head import EngineShuffle

    f32 = np.float32
    W, b = np.asarray(W, f32), np.asarray(b, f32)
    m = f32(np.max(np.abs(W)))
    m = m if m > 0 else np.sqrt(f32(6) / f32(W.shape[0] + W.shape[1]))  # a zero head: Glorot's bound
    s = f32(m) / f32(127)
    sb = f32(s * f32(xs))
    latW = np.clip(np.rint(W / s), -127, 127).astype(f32)
    latb = np.rint(b / sb).astype(f32)
    Wq, bq = latW.astype(np.int64), latb.astype(np.int64)
    kw = f32(1) / s if qas else s
    kb = f32(1) / sb if qas else sb
    vW, vb = np.zeros_like(latW), np.zeros_like(latb)
    n = len(Xq)
    xr_all = (f32(xs) * (Xq.astype(np.int64) - xz).astype(f32)).astype(f32)
    losses = []
    for order in EngineShuffle(seed).orders(n, epochs):
        tot = 0.0
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            gW, gb = np.zeros_like(latW), np.zeros_like(latb)
            for i in idx:
                acc = Wq @ (Xq[i].astype(np.int64) - xz) + bq
                z = acc.astype(f32) * sb
                p = np.exp((z - z.max()).astype(np.float64))
                p = (p / p.sum()).astype(f32)
                tot += float(np.log(np.exp((z - z.max()).astype(np.float64)).sum()) - (z[y[i]] - z.max()))
                p[y[i]] -= f32(1)
                gb = (gb + p).astype(f32)
                gW = (gW + p[:, None] * xr_all[i][None, :]).astype(f32)
            inv_m = f32(1) / f32(len(idx))
            vW = (f32(mu) * vW - f32(lr) * (gW * f32(inv_m * kw))).astype(f32)
            vb = (f32(mu) * vb - f32(lr) * (gb * f32(inv_m * kb))).astype(f32)
            latW = np.clip(latW + vW, -127, 127).astype(f32)
            latb = (latb + vb).astype(f32)
            Wq, bq = np.rint(latW).astype(np.int64), np.rint(latb).astype(np.int64)
        losses.append(tot / n)
    return dict(s=s, Wq=Wq, bq=bq, latW=latW, latb=latb, loss=np.array(losses))


def _engine_qhead_train(exe, Xq, y, W, b, xs, xz, epochs, batch, lr, mu, qas, seed=1):
    import subprocess

    n, fd = Xq.shape
    nc = W.shape[0]
    stdin = (struct.pack("<IHHfi", n, nc, fd, xs, xz) + np.ascontiguousarray(Xq, np.int8).tobytes()
             + np.asarray(y, "<u2").tobytes() + np.asarray(W, "<f4").tobytes() + np.asarray(b, "<f4").tobytes())
    p = subprocess.run([str(exe), "train", str(epochs), str(batch), repr(lr), repr(mu), str(int(qas)), str(seed)],
                       input=stdin, capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr.decode()
    buf = p.stdout
    log = np.frombuffer(buf[: 8 * epochs], "<f4").reshape(epochs, 2)
    at = 8 * epochs
    s = np.frombuffer(buf[at : at + 4], "<f4")[0]
    at += 4
    Wq = np.frombuffer(buf[at : at + nc * fd], np.int8).reshape(nc, fd)
    at += nc * fd
    bq = np.frombuffer(buf[at : at + 4 * nc], "<i4")
    at += 4 * nc
    latW = np.frombuffer(buf[at : at + 4 * nc * fd], "<f4").reshape(nc, fd)
    at += 4 * nc * fd
    latb = np.frombuffer(buf[at : at + 4 * nc], "<f4")
    return dict(s=s, Wq=Wq, bq=bq, latW=latW, latb=latb, loss=log[:, 0], acc=log[:, 1])


def _int8_features(tfl, Xq):
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_content=tfl,
                                 experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    i, o = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
    out = []
    for x in Xq:
        interp.set_tensor(i, x[None])
        interp.invoke()
        out.append(np.array(interp.get_tensor(o))[0])
    return np.stack(out)


@pytest.mark.parametrize("qas", [True, False], ids=["qas", "naive"])
def test_int8_head_step_matches_numpy_reference(int8_model, qas):
    exe, tfl, qm, X, labels = int8_model
    rng = np.random.default_rng(5)
    idx = np.sort(rng.choice(len(X), 48, replace=False))
    F = _int8_features(tfl, qm.quantize_input(X[idx]))
    y = labels[idx].astype(np.int64)
    nc = int(y.max()) + 1
    W = rng.normal(0, 0.1, (nc, qm.feature_dim)).astype(np.float32)
    b = rng.normal(0, 0.05, nc).astype(np.float32)
    args = (F, y, W, b, qm.feature_scale, qm.feature_zero, 4, 8, 0.05, 0.9, qas)
    eng = _engine_qhead_train(exe, *args)
    ref = _numpy_qhead_train(*args)
    assert eng["s"] == ref["s"]
    np.testing.assert_allclose(eng["latW"], ref["latW"], rtol=0, atol=LATENT_TOL)
    np.testing.assert_allclose(eng["latb"], ref["latb"], rtol=0, atol=LATENT_TOL * max(1.0, np.abs(ref["latb"]).max() / 127))
    # int8 weights equal except where the latent sits within the tolerance of a rounding boundary
    frac = np.abs(np.abs(ref["latW"] - np.floor(ref["latW"])) - 0.5)
    differ = eng["Wq"] != ref["Wq"]
    assert np.all(frac[differ] < LATENT_TOL), f"{differ.sum()} int8 weights differ away from a rounding tie"
    np.testing.assert_allclose(eng["loss"], ref["loss"], rtol=1e-5)
    changed = np.mean(eng["Wq"] != np.clip(np.rint(W / ref["s"]), -127, 127))
    if qas:  # QAS moves the latents by whole quanta: most int8 weights change
        assert changed > 0.5
    else:  # naive int8 moves them s_W^2 as far (s_W ~ 2e-3): almost none changes
        assert changed < 0.02


def test_int8_path_under_qemu_with_board_flags_equals_host(int8_model, tmp_path):
    """The benchmark program (tests/engine/qemu/bench_int8.cpp: int8 forward of 48 windows, int8
    head training with QAS and naive) built with the Nano 33 BLE's flags and run under qemu
    prints the same feature and weight hashes as its host build."""
    from enginebuild import missing_arm_tools

    if missing_arm_tools():
        pytest.skip(f"missing {missing_arm_tools()}")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import device_int8

    from odlkit.export.int8 import write_int8_header

    exe, tfl, qm, X, labels = int8_model
    write_int8_header(qm, tmp_path / "odl_int8_model_data.h")
    n_classes = int(labels.max()) + 1
    W0, b0 = np.zeros((qm.feature_dim, n_classes), np.float32), np.zeros(n_classes, np.float32)
    idx = np.random.default_rng(0).choice(len(X), device_int8.N_BENCH, replace=False)
    out = device_int8.instructions(tmp_path, qm, qm.quantize_input(X[idx]), labels[idx], W0, b0)
    assert out["host_equals_qemu"]
    assert out["int8_qas_instructions_per_step"] > 0 and out["int8_forward_instructions_per_window"] > 0


def test_int8_features_equal_tflite_micro_on_int8_inputs(int8_model):
    """The features equal TensorFlow Lite Micro's interpreter (the runtime a board runs a .tflite
    with) bit for bit, given the same int8 windows with raw=True (which must pass int8 inputs
    through unchanged: tflm_predict quantized them once more before); LiteRT's built-in kernels
    round the dense layer once, so they may differ there by 1 on ties."""
    pytest.importorskip("tflite_micro")
    from odlkit.export.tflite import tflite_predict, tflm_predict

    exe, tfl, qm, X, _ = int8_model
    Xq = qm.quantize_input(X[1::3])
    got = np.stack([layers[-1] for layers in _engine_layers(exe, qm, Xq)])
    np.testing.assert_array_equal(tflm_predict(tfl, Xq, raw=True), got)
    lite = tflite_predict(tfl, Xq, raw=True).astype(np.int64)
    assert np.abs(lite - got).max() <= 1 and np.mean(lite != got) < 0.005


# ---------------------------------------------------------------- the int8 path on the protocol ---

PROTO_PER_CLASS = 6  # recorded windows per class: 18 samples, 5 steps of batch 4 per epoch
PROTO_TRAIN = dict(epochs=4, batch_size=4, lr=0.01, momentum=0.9, seed=1)


@pytest.fixture(scope="module")
def int8_board_cli(tmp_path_factory):
    """int8_cli built with the Lab 1 sketch's own headers (odl_model_data.h, odl_int8_model_data.h:
    the firmware's int8 backbone, no TensorFlow needed): the board's path from a raw window."""
    from odlkit.board.virtual import SKETCHES_DIR

    d = tmp_path_factory.mktemp("int8_board")
    return gxx([HERE / "int8_cli.cpp", LIB_SRC / "odl_int8.cpp", LIB_SRC / "odl_head.cpp", LIB_SRC / "odl_kernels.cpp"],
               d / "int8_cli", includes=[SKETCHES_DIR / "lab1_motion"])


def _replayed_windows(board, classes, n):
    """The windows RECORD <class> n=<n> plays back: the first n of each class in the replay file's
    RECORD pool, in file order (the virtual board's sensor, arduino_sketches/virtual_board/main.cpp)."""
    argv = board._t.argv
    path = argv[argv.index("--replay") + 1]
    got = {c: [] for c in classes}
    with open(path) as f:
        f.readline()
        for line in f:
            tag, name, rest = line.split(" ", 2)
            if tag == "r" and name in got and len(got[name]) < n:
                got[name].append(np.array(rest.split(), np.float32))
    return [w for c in classes for w in got[c]]


def _cli_features(exe, windows):
    import subprocess

    stdin = struct.pack("<I", len(windows)) + np.ascontiguousarray(np.stack(windows), "<f4").tobytes()
    p = subprocess.run([str(exe), "windows"], input=stdin, capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    xs, xz = struct.unpack_from("<fi", p.stdout)
    return np.frombuffer(p.stdout[8:], np.int8).reshape(len(windows), -1), float(xs), int(xz)


@pytest.mark.parametrize("qas", [True, False], ids=["qas", "naive"])
def test_int8_training_through_the_protocol_equals_the_cli_and_numpy(int8_board_cli, qas):
    """TRAIN q=int8 on the virtual board (the Lab 1 firmware's build with the int8 path) trains the
    same int8 head as int8_cli (the trainer alone, fed the int8 features int8_cli computes from the
    same raw windows) bit for bit, and as the numpy reference (_numpy_qhead_train) within its
    tolerance; GETW returns its real values s_W Wq, s_W s_x bq; INFO reports the mode; PREDICT
    equals the softmax of the int8 logits; a float TRAIN puts the board back to float."""
    from odlkit.board import Board

    classes = ["standing", "walking", "running"]
    with Board.virtual(int8=True) as board:
        for c in classes:
            board.record(c, n=PROTO_PER_CLASS)
        res = board.train(q="int8", qas=qas, **PROTO_TRAIN)
        info = board.info()
        w = board.get_weights()
        pred = board.predict("walking")
        F, xs, xz = _cli_features(int8_board_cli, _replayed_windows(board, classes, PROTO_PER_CLASS))
        y = np.repeat(np.arange(3), PROTO_PER_CLASS)
        W0, b0 = np.zeros((3, F.shape[1]), np.float32), np.zeros(3, np.float32)  # Lab 1's initial head
        t = PROTO_TRAIN
        args = (F, y, W0, b0, xs, xz, t["epochs"], t["batch_size"], t["lr"], t["momentum"], qas)
        cli = _engine_qhead_train(int8_board_cli, *args, seed=t["seed"])
        ref = _numpy_qhead_train(*args, seed=t["seed"])
        assert info["q"] == "int8" and info["qas"] == int(qas) and info["int8_ram"] > 0
        assert info["steps"] == t["epochs"] * 5 and res.epochs == t["epochs"]
        s, sb = np.float32(cli["s"]), np.float32(cli["s"]) * np.float32(xs)
        np.testing.assert_array_equal(w.W, (s * cli["Wq"].astype(np.float32)).T)
        np.testing.assert_array_equal(w.b, sb * cli["bq"].astype(np.float32))
        np.testing.assert_allclose([h["loss"] for h in res.history], cli["loss"], rtol=1e-5)
        assert s == ref["s"]
        frac = np.abs(np.abs(ref["latW"] - np.floor(ref["latW"])) - 0.5)
        differ = cli["Wq"] != ref["Wq"]
        assert np.all(frac[differ] < LATENT_TOL), f"{differ.sum()} int8 weights differ away from a rounding tie"
        if qas:
            assert np.mean(cli["Wq"] != 0) > 0.5  # trained: not the zero head it started from
        # PREDICT: the held-out window's int8 features through the int8 head
        Fp = _cli_features(int8_board_cli, _predict_window(board, "walking"))[0][0]
        z = (cli["Wq"].astype(np.int64) @ (Fp.astype(np.int64) - xz) + cli["bq"]).astype(np.float32) * sb
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        np.testing.assert_allclose(pred.probabilities, p, rtol=1e-5, atol=1e-6)
        board.train(q="float", epochs=1, lr=2e-4, batch_size=8, seed=1)
        assert board.info()["q"] == "float" and board.info()["qas"] == 0


def _predict_window(board, cls):
    argv = board._t.argv
    with open(argv[argv.index("--replay") + 1]) as f:
        f.readline()
        for line in f:
            tag, name, rest = line.split(" ", 2)
            if tag == "p" and name == cls:
                return [np.array(rest.split(), np.float32)]
    raise AssertionError(f"no held-out {cls} window")


def test_int8_train_arguments_are_checked_and_change_nothing():
    """Bad q / qas values and combinations are BAD_ARG with a message saying what is allowed, and
    leave the board as it was (float mode, nothing trained); a firmware without the int8 path
    says so."""
    from odlkit.board import Board, BoardError

    bad = {("q=int4",): "q must be float or int8", ("qas=1",): "qas= is only for q=int8",
           ("q=float", "qas=0"): "qas= is only for q=int8", ("q=int8", "qas=2"): "qas must be 0 or 1",
           ("q=int8", "plan=bias"): "plan=head", ("q=int8", "mode=bias"): "mode=full"}  # fmt: skip
    with Board.virtual(int8=True) as board:
        board.record("walking", n=2)
        board.record("running", n=2)
        before = board.get_weights()
        for args, msg in bad.items():
            with pytest.raises(BoardError) as e:
                board._request("TRAIN", *args)
            assert e.value.name == "BAD_ARG" and msg in e.value.board_message, (args, e.value)
        assert board.info()["q"] == "float" and board.info()["steps"] == 0
        np.testing.assert_array_equal(board.get_weights().W, before.W)
    with Board.virtual() as board:
        board.record("walking", n=2)
        board.record("running", n=2)
        with pytest.raises(BoardError, match="no int8 path") as e:
            board.train(q="int8")
        assert e.value.name == "BAD_ARG" and board.info()["int8_ram"] == 0
    with pytest.raises(ValueError, match="qas"):
        Board.train(None, qas=True)  # the client checks before sending
