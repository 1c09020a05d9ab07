"""odlkit.board against the virtual board: the lab1_motion sketch's C++ (ODLEngine + protocol)
compiled for the host, replaying real basic_motions recordings.

Covers a whole session (hello, record, train, evaluate, predict, get/set weights, features,
save/load, reset, stream), bad frames on the wire, the serial client over a pty, and a
parity check of the board's training against the numpy twin (odlkit.head).
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import tty
import zlib
from pathlib import Path

import numpy as np
import pytest

from odlkit import weights
from odlkit.board import Board, BoardError, BoardNotFoundError, find_serial_port
from odlkit.board.protocol import encode_frame, parse_frame
from odlkit.board.transport import ProcessTransport
from odlkit.board.virtual import build_virtual_board, dataset_replay

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the virtual board needs g++")
CLASSES = ["standing", "walking", "running", "badminton"]


@pytest.fixture(scope="module")
def board():
    with Board.virtual(dataset="basic_motions", seed=0) as b:
        yield b


def raw_exchange(b: Board, data: bytes, probe_seq: int) -> list:
    """Write raw bytes, then an INFO probe; return every frame received up to the probe's reply."""
    b._t.write(data + encode_frame(probe_seq, "INFO"))
    frames = []
    while True:
        line = b._t.readline(10.0)
        assert line is not None, f"no reply within 10 s after {data[:60]!r}: the board hangs"
        if not line.startswith(b"$"):
            continue
        f = parse_frame(line)  # the board's own frames always have a valid CRC
        frames.append(f)
        if f.seq == probe_seq and f.kind in ("OK", "ERR"):
            return frames


def test_importing_odlkit_board_does_not_import_tensorflow():
    code = "import sys, odlkit.board; bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; print(bad)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_hello_and_info(board):
    h = board.hello
    assert h["proto"] == 1 and h["board"] == "virtual" and h["dim"] == 64
    assert (h["win"], h["ch"], h["rate"]) == (50, 6, 25)
    info = board.info()
    assert info["names"][:3] == ["standing", "walking", "running"]
    assert info["engine_ram"] > info["store_ram"] > 0 and info["cap"] == 200
    assert info["tx"] > 0 and info["rx"] > 0


def test_full_session(board):
    board.reset()
    board.add_class("badminton")
    assert board.info()["names"] == CLASSES
    with pytest.raises(BoardError, match="already exists"):
        board.add_class("badminton")
    with pytest.raises(BoardError) as e:
        board.train(epochs=2)
    assert e.value.code == 8 and "RECORD" in str(e.value)  # says what to do
    seen = []
    for c in CLASSES:
        stored = board.record(c, n=6, on_window=lambda i, n, name: seen.append((i, n, name)))
    assert stored == 24 and seen[:2] == [(1, 6, "standing"), (2, 6, "standing")]
    before = board.evaluate()
    assert before.n == 24 and before.confusion.shape == (4, 4) and before.confusion.sum() == 24
    history = []
    res = board.train(epochs=15, lr=0.001, momentum=0.9, batch_size=8, callback=lambda ep, loss, acc: history.append(acc))
    assert res.epochs == 15 and len(res.history) == 15 and len(history) == 15
    assert res.train_us > 0
    after = board.evaluate()
    # before: a zero head predicts class 0 for all (chance, 0.25); after: clearly learned (measured 0.58)
    assert after.accuracy >= before.accuracy + 0.25 and after.accuracy >= 0.5, (before, after)
    # held-out recordings the board never stored
    preds = [board.predict() for _ in range(24)]
    assert all(p.truth in CLASSES and p.probabilities.shape == (4,) for p in preds)
    assert all(abs(float(p.probabilities.sum()) - 1) < 1e-4 for p in preds)
    acc = np.mean([p.name == p.truth for p in preds])
    assert acc >= 0.45, acc  # 4 classes: chance is 0.25 (measured 0.7 on 40 windows)
    p = board.predict("running")
    assert p.truth == "running" and p.forward_us > 0
    info = board.info()
    assert info["stored"] == 24 and info["fwd_us"] > 0 and info["train_us"] > 0


def test_weights_round_trip_and_rejection(board):
    w = board.get_weights()
    assert w.W.shape == (64, board.info()["classes"])
    new = weights.HeadWeights(W=w.W * 0.5 + 0.01, b=w.b - 0.1, class_names=list(w.class_names))
    board.set_weights(new)
    assert board.get_weights() == new  # bit-exact through the protocol
    # a blob with a valid frame CRC but a broken blob CRC is rejected, weights unchanged
    blob = bytearray(weights.encode(w))
    blob[100] ^= 0x01
    with pytest.raises(BoardError) as e:
        for off in range(0, len(blob), 512):
            chunk = base64.b64encode(bytes(blob[off : off + 512])).decode()
            board._request("SETW", f"total={len(blob)}", f"off={off}", f"data={chunk}")
    assert e.value.code == 10 and "crc" in str(e.value).lower()
    assert board.get_weights() == new
    # out-of-order chunk
    with pytest.raises(BoardError) as e:
        board._request("SETW", f"total={len(blob)}", "off=512", "data=QUJD")
    assert e.value.code == 7
    assert board.get_weights() == new
    board.set_weights(w)
    assert board.get_weights() == w


def test_features_match_records(board):
    X, y, sessions = board.get_features(with_sessions=True)
    info = board.info()
    assert X.shape == (info["stored"], 64) and X.dtype == np.float32
    assert np.isfinite(X).all() and (X >= 0).all()  # ReLU features
    assert set(y.tolist()) <= set(range(info["classes"]))
    assert len(sessions) == len(y)


def test_save_load_reset(board, tmp_path):
    w = board.get_weights()
    assert board.save() == len(weights.encode(w))
    board.reset()
    assert board.info()["stored"] == 0
    assert board.get_weights() != w
    assert board.load() == w.n_classes
    assert board.get_weights() == w
    board.reset("samples")
    assert board.info()["stored"] == 0 and board.get_weights() == w


def test_saved_weights_survive_a_restart(tmp_path):
    store = tmp_path / "flash.bin"
    with Board.virtual(storage=store) as b:
        with pytest.raises(BoardError) as e:
            b.load()
        assert e.value.code == 11
        b.add_class("badminton")
        b.record("badminton", n=3)
        b.record("walking", n=3)
        b.train(epochs=3, lr=0.01)
        w = b.get_weights()
        b.save()
    with Board.virtual(storage=store) as b:  # "power cycle"
        assert b.get_weights() != w
        b.load()
        assert b.get_weights() == w


def test_stream_is_edge_impulse_forwarder_format(board):
    x = board.stream(2)
    assert x.shape == (50, 6) and np.isfinite(x).all()
    # the samples are the replayed recording (accel + gyro), not zeros
    assert x.std(axis=0).min() > 0


def test_bad_frames_get_errors_and_never_change_weights(board):
    w = board.get_weights()
    n0 = board.info()["stored"]
    seq = board._seq + 1000  # above the client's (random) sequence
    good = encode_frame(seq, "RESET", "what=all")
    cases = {
        "bad crc": good[:-3] + b"0\n" if good[-2:-1] != b"0" else good[:-3] + b"1\n",
        "lost $": good[1:],
        "lost newline": good[:-1],
        "garbage": b"hello board\n",
        "overlong": b"$" + b"A" * 3000 + b"\n",
        "binary": bytes(range(256)) + b"\n",
        "truncated": good[: len(good) // 2] + b"\n",
    }
    seq += 1000
    for name, data in cases.items():
        seq += 1
        frames = raw_exchange(board, data, seq)
        errs = [f for f in frames if f.kind == "ERR" and f.seq != seq]
        assert errs, f"{name}: no error reply"
        assert frames[-1].kind == "OK", f"{name}: the stream did not resynchronize"
    # valid frames with bad content
    for tokens in (["FOO"], ["TRAIN", "epochs=0"], ["TRAIN", "lr=nan"], ["RECORD"], ["RECORD", "nosuch"],
                   ["ADDCLASS", "has*star"], ["GETW", "off=999999"], ["TRAIN", "epochs=3", "epochs=3"],
                   ["RESET", "what=everything"], ["SETW", "total=5", "off=0", "data=QUJD"]):  # fmt: skip
        seq += 1
        if "*" in " ".join(tokens):
            body = f"{seq} {' '.join(tokens)}".encode()
            data = b"$" + body + b" *" + f"{zlib.crc32(body):08x}".encode() + b"\n"
        else:
            data = encode_frame(seq, *tokens)
        seq += 1
        frames = raw_exchange(board, data, seq)
        assert frames[0].kind == "ERR" and frames[0].code in (3, 5, 6, 7, 8), (tokens, frames[0])
    # out-of-order seq (a replayed old frame)
    frames = raw_exchange(board, encode_frame(5, "RESET"), seq + 1)
    assert frames[0].kind == "ERR" and frames[0].code == 4
    # an echoed reply is ignored, not answered (no echo loop)
    frames = raw_exchange(board, encode_frame(seq + 2, "OK", "INFO"), seq + 3)
    assert len(frames) == 1 and frames[0].kind == "OK"
    board._seq = seq + 10
    # noise without a newline just before a request: rejected, and the request still succeeds
    board._t.write(b"noise")
    assert board.info()["stored"] == n0
    assert board.get_weights() == w and board.info()["stored"] == n0


def test_host_numpy_twin_trains_the_same_head():
    """Board training vs odlkit.head on the features the board stored (same data order).

    Tolerance: the C++ loops and numpy's matmul sum the same float32 products in different
    orders, so weights agree to rounding (~1e-6 relative per step), amplified over 10 epochs of
    momentum SGD: atol 1e-4 on weights of size ~0.1-1.
    """
    from odlkit.head import Head

    with Board.virtual(seed=0) as b:  # engine seed = seed + 1 = 1
        b.add_class("badminton")
        for c in CLASSES:
            b.record(c, n=5)
        w0 = b.get_weights()
        X, y = b.get_features()
        b.train(epochs=10, lr=0.005, momentum=0.9, weight_decay=0.001, batch_size=8)
        w_board = b.get_weights()
    head = Head.from_weights(w0)
    head.fit(X, y, epochs=10, lr=0.005, momentum=0.9, weight_decay=0.001, batch_size=8, order="shuffle", seed=1)
    w_host = head.to_weights()
    assert np.abs(w_board.W - w0.W).max() > 1e-3  # training moved the weights
    np.testing.assert_allclose(w_board.W, w_host.W, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(w_board.b, w_host.b, atol=1e-4, rtol=1e-4)


def test_serial_client_over_a_pty():
    """Board.serial against the virtual board attached to a pseudo-terminal: pyserial for real."""
    exe = build_virtual_board("lab1_motion")
    replay = dataset_replay("basic_motions")
    master, slave = os.openpty()
    tty.setraw(slave)  # no echo / newline translation before pyserial configures the port
    proc = subprocess.Popen([str(exe), "--replay", str(replay)], stdin=master, stdout=master, stderr=subprocess.DEVNULL)
    os.close(master)
    try:
        with Board.serial(port=os.ttyname(slave), timeout=10) as b:
            assert b.kind == "serial" and b.hello["board"] == "virtual"
            b.record("walking", n=2)
            b.record("standing", n=2)
            assert b.train(epochs=2, lr=0.01).epochs == 2
            w = b.get_weights()
            b.set_weights(w)
            assert b.get_weights() == w
            assert b.stream(1).shape == (25, 6)
            with pytest.raises(ConnectionError, match="busy"):  # a second program on the same port
                Board.serial(port=os.ttyname(slave), timeout=2)
    finally:
        os.close(slave)
        proc.kill()
        proc.wait(timeout=10)


def test_clear_errors_without_a_board():
    try:
        port = find_serial_port()
    except BoardNotFoundError as e:
        assert "plug it in" in str(e) and "Board.virtual" in str(e)
    except BoardError:
        pytest.skip("several Arduino boards are plugged in")
    else:
        pytest.skip(f"an Arduino is plugged in at {port}")
    with pytest.raises(ConnectionError, match="cannot open serial port"):
        Board.serial(port="/dev/does-not-exist")


def test_wrong_firmware_is_reported():
    t = ProcessTransport(["sh", "-c", "echo 'Hello from another sketch'; cat > /dev/null"])
    with pytest.raises(BoardError, match="ODLEngine sketch"):
        Board(t, "serial", timeout=1.0, connect_attempts=1)
    assert t.proc.poll() is not None  # closed on failure


def test_virtual_board_from_a_dataset_object():
    """Board.virtual with an odlkit.data.Dataset instead of a name (e.g. a student's own recordings)."""
    from odlkit import data

    ds = data.imu_windows("basic_motions")
    two = ds.select_classes(["walking", "running"])
    with Board.virtual(dataset=two, seed=3) as b:
        b.record("walking", n=2)
        p = b.predict("running")
        assert p.truth == "running"
        with pytest.raises(BoardError) as e:
            b.record("standing")  # a class of the head, but not in this replay
        assert e.value.code == 12 and "walking" in str(e.value)


def test_closed_board_raises(board):
    b = Board.virtual()
    b.close()
    b.close()  # idempotent
    with pytest.raises(BoardError, match="closed"):
        b.info()


@pytest.mark.slow
def test_committed_model_header_is_up_to_date():
    """arduino_sketches/lab1_motion/odl_model_data.h matches the committed backbone (needs TensorFlow)."""
    res = subprocess.run(
        [sys.executable, "-m", "odlkit.export.sketch_headers", "lab1_motion", "--check"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr[-2000:]


@pytest.mark.arm
@pytest.mark.skipif(shutil.which("arm-none-eabi-g++") is None, reason="needs arm-none-eabi-g++")
def test_sketch_compiles_for_the_nano33ble():
    """The real mbed core + both IMU libraries, with the board's flags, warnings as errors."""
    root = Path(__file__).resolve().parents[1]
    check = root.parent / "shared" / "arduino-nano33ble" / "compile-check"
    if not check.exists():
        pytest.skip(f"{check} not found")
    res = subprocess.run(
        [str(check), "arduino_sketches/lab1_motion", "arduino_sketches/ODLEngine"],
        cwd=root, capture_output=True, text=True, timeout=600, env={**os.environ, "WERROR": "1"},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert "compile-check: ok" in res.stdout


class LossyTransport:
    """Wraps a transport and corrupts bytes in both directions (flip or drop), like a bad cable."""

    def __init__(self, inner, rate: float, seed: int = 0) -> None:
        self.inner, self.rate = inner, rate
        self.rng = np.random.default_rng(seed)
        self.damaged = 0

    def _damage(self, data: bytes) -> bytes:
        b = bytearray(data)
        hits = np.flatnonzero(self.rng.random(len(b)) < self.rate)
        for i in sorted(hits, reverse=True):
            self.damaged += 1
            if self.rng.random() < 0.5:
                b[i] ^= 1 << int(self.rng.integers(8))
            else:
                del b[i]
        return bytes(b)

    def write(self, data: bytes) -> None:
        self.inner.write(self._damage(data))

    def readline(self, timeout: float):
        line = self.inner.readline(timeout)
        return None if line is None else self._damage(line)

    def close(self) -> None:
        self.inner.close()


def test_noisy_line_never_returns_wrong_data():
    """Random byte damage in both directions: every call returns correct data or raises a
    BoardError / WeightsFormatError; the connection recovers at the next frame."""
    exe = build_virtual_board("lab1_motion")
    replay = dataset_replay("basic_motions")
    inner = ProcessTransport([str(exe), "--replay", str(replay)])
    lossy = LossyTransport(inner, rate=0.0, seed=1)
    b = Board(lossy, "virtual", timeout=0.5)
    try:
        b.add_class("badminton")
        for c in CLASSES:
            b.record(c, n=2)
        b.train(epochs=3, lr=0.001)
        truth_w, truth_names = b.get_weights(), b.info()["names"]
        lossy.rate = 3e-4  # ~10 % of INFO replies and ~50 % of GETW transfers hit
        ok = failed = 0
        for k in range(120):
            try:
                if k % 4 == 0:
                    assert b.get_weights() == truth_w
                else:
                    assert b.info()["names"] == truth_names
                ok += 1
            except (BoardError, weights.WeightsFormatError):
                failed += 1
        print(f"noisy line: {lossy.damaged} damaged bytes, {ok} calls ok, {failed} raised")
        assert lossy.damaged > 20, lossy.damaged  # the line really was noisy
        assert ok >= 80, (ok, failed)  # retries of read-only commands recover most calls
        lossy.rate = 0.0
        assert b.get_weights() == truth_w and b.info()["stored"] == 8  # state intact
    finally:
        b.close()
