"""Fuzzing the board's protocol parser/dispatcher (the real C++, in the virtual board).

Properties checked after every fuzzed input:
- the board stays alive and answers a probe frame (no crash, no hang: 10 s limit per probe);
- every corrupted or random line gets an ERR reply and no OK (corruption is always detected);
- rejected input never changes the head weights or the stored samples (GETW/INFO compared).

Amounts: hypothesis 500 examples per strategy (100 in quick mode) over 3 strategies, plus a bulk
run of 20000 single-byte mutations of valid frames (2000 in quick mode) checked one by one, and
a libFuzzer harness (tests/protocol/fuzz_protocol.cpp, ASan + UBSan, 100000 runs, 20000 in
quick mode; needs clang) that also fuzzes frame bodies with correct CRCs.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from odlkit.board import Board, BoardError, cxxflags
from odlkit.board.protocol import encode_frame, parse_frame
from odlkit.config import QUICK, quick

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the virtual board needs g++")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "engine"))
from buildcache import compile_cached  # noqa: E402

N_HYP = quick(full=500, quick=100)
N_BULK = quick(full=20000, quick=2000)
COMMANDS = ["HELLO", "INFO", "RECORD", "ADDCLASS", "TRAIN", "PREDICT", "EVAL", "GETW", "SETW", "GETF",
            "SAVE", "LOAD", "RESET", "STREAM", "LPC"]  # fmt: skip
# Valid frames of every command: the seeds the mutations start from.
SEED_FRAMES = [
    ["HELLO"], ["INFO"], ["RECORD", "walking", "n=2"], ["ADDCLASS", "wave"], ["PREDICT", "running"],
    ["TRAIN", "epochs=2", "lr=0.01", "mom=0.9", "wd=0", "batch=4", "mode=full", "replay=1"], ["EVAL"],
    ["GETW", "off=0"], ["GETF", "i=0"], ["SAVE"], ["LOAD"], ["RESET", "what=all"], ["STREAM", "s=1"],
    ["SETW", "total=1124", "off=0", "data=T0RMVwEAAAAEAEAAUAQAAA=="],
    ["TRAIN", "epochs=1", "plan=head"], ["LPC", "off=0", "rate=16000", "data=AAABAAIAAwA="],
    ["TRAIN", "epochs=1", "q=int8", "qas=0"],
]  # fmt: skip


class Harness:
    """The virtual board plus a probe that checks liveness, errors and state after each input."""

    def __init__(self) -> None:
        self.board = Board.virtual(dataset="basic_motions", seed=0, timeout=10)
        b = self.board
        b.add_class("badminton")
        for c in ["standing", "walking", "running", "badminton"]:
            b.record(c, n=3)
        b.train(epochs=2, lr=0.001)
        self.weights = b.get_weights()
        self.stored = b.info()["stored"]
        self.seq = b._seq + 1000  # above the client's (random) sequence

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def send(self, data: bytes) -> list:
        """Send raw bytes then an INFO probe; return all frames up to the probe's reply."""
        probe = self.next_seq()
        t = self.board._t
        t.write(data + b"\n" + encode_frame(probe, "INFO"))
        frames = []
        while True:
            line = t.readline(10.0)
            assert line is not None, f"board hangs after {data[:80]!r}"
            if not line.startswith(b"$"):
                continue  # STREAM samples
            f = parse_frame(line)
            frames.append(f)
            if f.seq == probe and f.kind in ("OK", "ERR"):
                assert f.kind == "OK", f"probe failed after {data[:80]!r}: {f}"
                return frames[:-1]

    def state_unchanged(self) -> bool:
        self.board._seq = self.next_seq()
        ok = self.board.get_weights() == self.weights and self.board.info()["stored"] == self.stored
        self.seq = self.board._seq
        return ok


@pytest.fixture(scope="module")
def harness():
    h = Harness()
    yield h
    h.board.close()


def valid_body(seq: int, tokens: list[str]) -> bytes:
    return encode_frame(seq, *tokens).rstrip(b"\n")


def mutate(frame: bytes, rng: random.Random) -> bytes:
    """One random single-byte corruption: flip bits, replace, delete or insert a byte.

    Never inserts before the leading '$' (junk before an intact frame is resynchronized and
    the frame then correctly executes: covered in test_board.py)."""
    b = bytearray(frame)
    i = rng.randrange(1, len(b)) if len(b) > 1 else 0
    op = rng.randrange(4)
    if op == 0:
        b[i] ^= rng.randrange(1, 256)
    elif op == 1:
        b[i] = rng.randrange(256) if rng.random() < 0.5 else rng.choice(b"$* =\n\r0aZ")
        if b[i] == frame[i]:
            b[i] ^= 0x01
    elif op == 2:
        del b[i]
    else:
        b.insert(i, rng.randrange(256))
    return bytes(b)


@settings(max_examples=N_HYP, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=1, max_size=1500).filter(lambda d: d.strip(b" \r\t\n")))
def test_random_bytes_get_errors(harness, data):
    frames = harness.send(data)
    assert frames, f"no reply to {data[:80]!r}"
    assert all(f.kind == "ERR" for f in frames), frames


@settings(max_examples=N_HYP, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(idx=st.integers(0, len(SEED_FRAMES) - 1), seed=st.integers(0, 2**32 - 1), n_mut=st.integers(1, 4))
def test_mutated_frames_are_rejected(harness, idx, seed, n_mut):
    rng = random.Random(seed)
    frame = valid_body(harness.next_seq(), SEED_FRAMES[idx])
    bad = frame
    for _ in range(n_mut):
        bad = mutate(bad, rng)
    if bad.strip(b" \r\t\n") == b"" or frame in bad:
        return  # nothing left, or mutations that cancelled out
    frames = harness.send(bad)
    assert frames and all(f.kind == "ERR" for f in frames), (bad, frames)
    assert harness.state_unchanged()


token_chars = st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="$*")


@settings(max_examples=N_HYP, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cmd=st.sampled_from(COMMANDS + ["FOO", "hello", "OKAY"]),
    args=st.lists(
        st.one_of(
            st.text(token_chars, min_size=1, max_size=20),
            st.builds(lambda k, v: f"{k}={v}",
                      st.sampled_from(["n", "epochs", "lr", "mom", "wd", "batch", "mode", "replay", "off", "i",
                                       "total", "data", "what", "s", "x", "layers", "rate"]),
                      st.one_of(st.integers(-5, 10**10).map(str), st.text(token_chars, min_size=0, max_size=12),
                                st.sampled_from(["nan", "inf", "-0", "1e-45", "0x10", "full", "bias", "all", "head",
                                                 "16000", "AAAA", "AAA="]))),  # fmt: skip
        ),
        max_size=17,
    ),
)
def test_valid_crc_random_arguments(harness, cmd, args):
    """Frames with a correct CRC but arbitrary arguments: exactly one final reply, and if it is
    an error, nothing changed. (Commands that succeed may legitimately change state; then the
    harness adopts the new state.)"""
    if cmd == "STREAM":
        args = [a for a in args if not a.startswith("s=")] + ["s=1"]  # bounded output
    if cmd == "RECORD":
        args = [a for a in args if not a.startswith("n=")]
    seq = harness.next_seq()
    try:
        frame = encode_frame(seq, cmd, *args)
    except ValueError:
        return  # longer than a line: covered by the raw-bytes tests
    frames = [f for f in harness.send(frame.rstrip(b"\n")) if f.kind != "EV"]
    assert len(frames) == 1 and frames[0].seq == seq, frames
    if frames[0].kind == "ERR":
        assert harness.state_unchanged(), (cmd, args, frames[0])
    else:
        harness.board._seq = harness.next_seq()
        harness.weights = harness.board.get_weights()
        harness.stored = harness.board.info()["stored"]
        harness.seq = harness.board._seq


def test_bulk_single_byte_mutations(harness):
    """N_BULK mutated frames, each followed by a probe: every one rejected, board alive, state intact."""
    rng = random.Random(0)
    rejected = 0
    for k in range(N_BULK):
        frame = valid_body(harness.next_seq(), SEED_FRAMES[k % len(SEED_FRAMES)])
        bad = mutate(frame, rng)
        if bad.strip(b" \r\t\n") == b"":
            continue
        frames = harness.send(bad)
        assert frames and all(f.kind == "ERR" for f in frames), (bad, frames)
        rejected += 1
    assert rejected >= N_BULK * 0.99
    assert harness.state_unchanged()


# ------------------------------------------------------------------ Lab 2 (lab2_microphone)
N_LAB2 = quick(full=2000, quick=300)
LAB2_SEEDS = [
    ["RECORD", "speaker1", "n=2"], ["PREDICT", "speaker2"], ["TRAIN", "epochs=1", "plan=all", "batch=4"],
    ["TRAIN", "epochs=1", "plan=head"], ["LPC", "off=0", "rate=16000", "data=AAABAAIAAwA="],
    ["LPC", "off=0", "rate=10000", "data=" + "ABCD" * 100], ["GETW", "off=0"], ["GETF", "i=0"], ["EVAL"],
]  # fmt: skip


class Lab2Harness(Harness):
    def __init__(self) -> None:
        self.board = Board.virtual(sketch="lab2_microphone", seed=0, timeout=10)
        for c in ["speaker1", "speaker2", "speaker3"]:
            self.board.record(c, n=3)
        self.board.train(epochs=2, lr=0.01)
        self.weights = self.board.get_network()
        self.stored = self.board.info()["stored"]
        self.seq = self.board._seq + 1000

    def state_unchanged(self) -> bool:
        self.board._seq = self.next_seq()
        ok = self.board.get_network() == self.weights and self.board.info()["stored"] == self.stored
        self.seq = self.board._seq
        return ok


@pytest.fixture(scope="module")
def lab2_harness():
    h = Lab2Harness()
    yield h
    h.board.close()


def test_lab2_mutated_frames_are_rejected(lab2_harness):
    """Lab 2's commands (RECORD of utterances, TRAIN plan=, LPC audio chunks) mutated one byte at a
    time: every one rejected, the board alive, network and store intact."""
    h = lab2_harness
    rng = random.Random(1)
    for k in range(N_LAB2):
        frame = valid_body(h.next_seq(), LAB2_SEEDS[k % len(LAB2_SEEDS)])
        bad = mutate(frame, rng)
        if bad.strip(b" \r\t\n") == b"":
            continue
        frames = h.send(bad)
        assert frames and all(f.kind == "ERR" for f in frames), (bad, frames)
    assert h.state_unchanged()


@settings(max_examples=quick(full=300, quick=60), deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cmd=st.sampled_from(["TRAIN", "LPC", "SETW", "PREDICT", "RECORD"]),
    args=st.lists(st.builds(lambda k, v: f"{k}={v}",
                            st.sampled_from(["layers", "mode", "epochs", "off", "rate", "data", "total", "n", "x"]),
                            st.one_of(st.sampled_from(["all", "head", "full", "bias", "0", "1", "2", "16000", "10000",
                                                       "8000", "AAAA", "AAA=", "A", "@@", "nan"]),
                                      st.integers(-5, 10**6).map(str))), max_size=6),
)
def test_lab2_valid_crc_random_arguments(lab2_harness, cmd, args):
    """Exactly one final reply; an error changes neither the network nor the store."""
    h = lab2_harness
    if cmd == "RECORD":
        args = ["speaker1", *[a for a in args if not a.startswith("n=")]]
    seq = h.next_seq()
    frames = [f for f in h.send(encode_frame(seq, cmd, *args).rstrip(b"\n")) if f.kind != "EV"]
    assert len(frames) == 1 and frames[0].seq == seq, frames
    if frames[0].kind == "ERR":
        assert h.state_unchanged(), (cmd, args, frames[0])
    else:
        h.board._seq = h.next_seq()
        h.weights = h.board.get_network()
        h.stored = h.board.info()["stored"]
        h.seq = h.board._seq


def _clang() -> str | None:
    for c in ("clang++", "clang++-14", "clang++-15", "clang++-16"):
        if shutil.which(c):
            return c
    return None


# about 25 s in quick mode, 100 s in full mode (then marked slow)
_slow_unless_quick = (lambda f: f) if QUICK else pytest.mark.slow


@_slow_unless_quick
@pytest.mark.skipif(_clang() is None, reason="libFuzzer needs clang (apt-get install clang)")
def test_libfuzzer_harness(tmp_path):
    """Coverage-guided fuzzing of LineAssembler + parse_frame + the dispatcher with ASan/UBSan."""
    _libfuzz(tmp_path, "lab1_motion", SEED_FRAMES, quick(full=100_000, quick=20_000))


# Lab 2's runs are costlier (a TRAIN runs the two-layer network): 30000 runs took 100 s on 2 idle cores
# (330 s loaded), so quick mode does 6000.
@_slow_unless_quick
@pytest.mark.skipif(_clang() is None, reason="libFuzzer needs clang (apt-get install clang)")
def test_libfuzzer_harness_lab2(tmp_path):
    """The same harness on Lab 2's audio engine: utterances of random length, TRAIN plan=, the
    version-2 blob through SETW, LPC audio chunks."""
    _libfuzz(tmp_path, "lab2_microphone", SEED_FRAMES + LAB2_SEEDS, quick(full=30_000, quick=6_000))


def _libfuzz(tmp_path, sketch_name, seeds, runs):
    lib = ROOT / "arduino_sketches" / "ODLEngine" / "src"
    sketch = ROOT / "arduino_sketches" / sketch_name
    exe = tmp_path / "fuzz"
    cmd = [_clang(), *cxxflags.LANGUAGE, *cxxflags.NO_CONTRACTION, "-g", "-O1",
           "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=undefined",
           f"-I{lib}", f"-I{sketch}", str(ROOT / "tests" / "protocol" / "fuzz_protocol.cpp"),
           *map(str, sorted(lib.glob("*.cpp"))), "-o", str(exe)]  # fmt: skip
    res = compile_cached(cmd, timeout=600)  # compiled once per content (tests/engine/buildcache.py)
    assert res.returncode == 0, res.stderr[-3000:]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, tokens in enumerate(seeds):
        frame = encode_frame(i + 1, *tokens)
        (corpus / f"raw{i}").write_bytes(b"\x00" + frame)  # mode 0: bytes as they are
        (corpus / f"body{i}").write_bytes(b"\x01" + frame[1 : frame.rindex(b" *")])  # mode 1: CRC added
    res = subprocess.run([str(exe), f"-runs={runs}", "-max_len=4096", "-timeout=10", str(corpus)],
                         capture_output=True, text=True, timeout=900, env={**os.environ, "ASAN_OPTIONS": "detect_leaks=0"})  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"Done {runs} runs" in res.stderr


# ------------------------------------------------------------------ backbone training plans


def _recorded_virtual_board(**build):
    """A virtual board (built with ``build``'s options) holding 3 windows of 3 classes; closed after."""
    b = Board.virtual(dataset="basic_motions", seed=0, timeout=10, **build)
    for c in ["standing", "walking", "running"]:
        b.record(c, n=3)
    yield b
    b.close()


@pytest.fixture(scope="module")
def plan_board():
    """A virtual board built with a plan buffer and a window store (TRAIN plan=bias|sparse)."""
    yield from _recorded_virtual_board(plans=True)


def _plan_state(b):
    info = b.info()
    return b.get_weights(), {k: info[k] for k in ("stored", "plan", "k", "plan_ram", "steps")}


def _train_or_bad_arg(board, args, state):
    """TRAIN one epoch with these extra arguments: its reply frame, or None after checking that
    a refusal is BAD_ARG (6) and left ``state(board)`` as it was (or the frame did not fit a line)."""
    before = state(board)
    try:
        return board._request("TRAIN", "epochs=1", "lr=0.001", *args)
    except BoardError as e:
        assert e.code == 6, e  # BAD_ARG: samples and classes are there, so no state error
        assert state(board) == before, (args, e)
        return None
    except ValueError:
        return None  # the frame would not fit one line


@settings(max_examples=N_HYP, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    args=st.lists(
        st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["plan", "k", "mode", "batch", "x"]),
                  st.one_of(st.integers(-3, 300).map(str), st.text(token_chars, min_size=0, max_size=8),
                            st.sampled_from(["head", "bias", "sparse", "full", "Bias", "sparse ", "1e0"]))),
        max_size=5,
    ),
)
def test_train_plan_arguments(plan_board, args):
    """TRAIN with random plan=/k= (and neighbours) arguments, correct CRC: one final reply; an
    ERR is code 6 (BAD_ARG) and leaves the head, the store and the plan untouched."""
    f = _train_or_bad_arg(plan_board, args, _plan_state)
    if f is None:
        return
    assert f.int("epochs") == 1
    info = plan_board.info()
    assert info["plan"] in ("head", "bias", "sparse") and info["steps"] >= 1


# ------------------------------------------------------------------ the int8 path (TRAIN q=int8)


@pytest.fixture(scope="module")
def int8_board():
    """A virtual board built with the int8 path (TRAIN q=float|int8 qas=1|0)."""
    yield from _recorded_virtual_board(int8=True)


def _int8_state(b):
    info = b.info()
    return b.get_weights(), {k: info[k] for k in ("stored", "plan", "q", "qas", "int8_ram", "steps")}


@settings(max_examples=N_HYP, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    args=st.lists(
        st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["q", "qas", "plan", "mode", "x"]),
                  st.one_of(st.integers(-3, 3).map(str), st.text(token_chars, min_size=0, max_size=8),
                            st.sampled_from(["int8", "float", "Int8", "int", "int16", "head", "bias", "full",
                                             "0", "1", "01", "true"]))),
        max_size=5,
    ),
)
def test_train_int8_arguments(int8_board, args):
    """TRAIN with random q=/qas= (and neighbours) arguments, correct CRC: one final reply; an ERR
    is code 6 (BAD_ARG) and leaves the head, the store and the mode untouched; an OK reports the
    q and qas it was given in INFO."""
    f = _train_or_bad_arg(int8_board, args, _int8_state)
    if f is None:
        return
    assert f.int("epochs") == 1
    info = int8_board.info()
    q = next((a.split("=", 1)[1] for a in args if a.startswith("q=")), "float")
    assert info["q"] == q, (args, info["q"])
    qas = next((a.split("=", 1)[1] for a in args if a.startswith("qas=")), "1")
    assert info["qas"] == (int(qas) if q == "int8" else 0), args  # a key twice is BAD_ARG
