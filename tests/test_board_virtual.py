"""The virtual board without a C++ compiler: one short message with hints for every platform,
and a board already built in the cache still starts. SAVE / LOAD across a reboot (a new process
on the same storage file) of trained backbone plans and the int8 head."""

from __future__ import annotations

import os

import numpy as np
import pytest

from odlkit.board import Board, BoardError, virtual


@pytest.fixture
def no_compiler(monkeypatch, tmp_path):
    """PATH without any compiler (the board's executable is started by absolute path)."""
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    return tmp_path


def test_without_a_compiler_the_error_is_one_message_with_every_hint(no_compiler, monkeypatch):
    monkeypatch.setattr(virtual, "BUILD_DIR", no_compiler / "cache")  # nothing built yet
    with pytest.raises(virtual.NoCompilerError) as info:
        virtual.build_virtual_board("lab1_motion")
    msg = str(info.value)
    for hint in ("apt-get install g++", "xcode-select --install", "WSL", "CXX=", "looking for g++, c++, clang++"):
        assert hint in msg, hint
    assert len(msg.splitlines()) <= 10
    # in a notebook, IPython shows only this (no traceback through the kit)
    assert info.value._render_traceback_() == [f"NoCompilerError: {msg}"]
    assert isinstance(info.value, RuntimeError)  # callers catching the old RuntimeError still do


def test_a_cxx_that_does_not_exist_is_named(no_compiler, monkeypatch):
    monkeypatch.setattr(virtual, "BUILD_DIR", no_compiler / "cache")
    monkeypatch.setenv("CXX", "g++-99")
    with pytest.raises(virtual.NoCompilerError, match="CXX='g\\+\\+-99' found none"):
        virtual.build_virtual_board("lab1_motion")


def test_a_virtual_board_built_in_the_cache_works_without_a_compiler(monkeypatch, tmp_path):
    from odlkit.board import Board

    exe = virtual.build_virtual_board("lab1_motion")  # with the compiler (cached by other tests)
    virtual.dataset_replay("basic_motions")           # the replay file is cached too
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert virtual.build_virtual_board("lab1_motion") == exe
    with Board.virtual(dataset="basic_motions") as board:
        assert board.info()["board"] == "virtual"
        assert board.record("walking", n=2) == 2
    assert os.environ["PATH"] == str(tmp_path / "empty-bin")


# ------------------------------------------------------- SAVE / LOAD of trained plans and int8 ---

N_PREDICT = 6  # held-out windows compared before and after a reboot


def _predictions(board):
    return np.stack([board.predict().probabilities for _ in range(N_PREDICT)])


def _trained_board(storage, train):
    """A plans + int8 build (as the Lab 1 firmware) with the user's samples, trained by train(board)."""
    board = Board.virtual(dataset="basic_motions", plans=True, int8=True, storage=storage)
    for c in ("standing", "walking", "running"):
        board.record(c, n=4)
    train(board)
    return board


@pytest.mark.parametrize("how", ["bias", "sparse", "int8", "sparse_then_int8"])
def test_save_keeps_trained_plans_and_the_int8_head_across_a_reboot(tmp_path, how):
    """SAVE stores what was trained beyond the head (a bias / sparse plan's backbone tensors, the
    int8 head with its latent copy); after a reboot (a new process on the same storage file) LOAD
    restores it: the same predictions on the same held-out windows, bit for bit, the same INFO
    plan and q. Without the extension (what SAVE wrote before) the rebooted board would predict
    with the exported backbone: checked to differ, so the test can fail."""
    storage = tmp_path / "flash.bin"
    steps = {"bias": [dict(plan="bias")], "sparse": [dict(plan="sparse", k=1)], "int8": [dict(q="int8", qas=True)],
             "sparse_then_int8": [dict(plan="sparse", k=1), dict(q="int8", qas=True)]}[how]

    def train(b):
        for kw in steps:
            b.train(epochs=3, lr=0.01, batch_size=4, seed=1, **kw)

    with _trained_board(storage, train) as b:
        before, info = _predictions(b), b.info()
        b.save()
    with Board.virtual(dataset="basic_motions", plans=True, int8=True, storage=storage) as b:
        fresh = _predictions(b)  # the rebooted board before LOAD: the exported backbone, float head
        with Board.virtual(dataset="basic_motions", plans=True, int8=True, storage=storage) as c:
            reply = c._request("LOAD")
            after, info_after = _predictions(c), c.info()
    assert not np.array_equal(fresh, before)
    np.testing.assert_array_equal(after, before)
    for k in ("q", "qas", "classes", "names"):
        assert info_after[k] == info[k], k
    # INFO's plan after LOAD: the plan whose tensors the record restored (after sparse then int8,
    # INFO said head before: the int8 head was the last TRAIN, on the exported int8 backbone)
    plan, k = {"bias": ("bias", 0), "sparse": ("sparse", 1), "int8": ("head", 0), "sparse_then_int8": ("sparse", 1)}[how]
    assert (info_after["plan"], info_after["k"]) == (plan, k)
    assert reply.fields["plan"] == plan and reply.fields["q"] == info["q"]


def test_a_record_this_firmware_cannot_hold_is_refused_and_changes_nothing(tmp_path):
    """A saved sparse plan on a firmware without a plan buffer, or an int8 head on one without the
    int8 path: LOAD answers WEIGHTS with the reason, and the head stays as it was; a record whose
    bytes were damaged is never loaded (the slot CRC)."""
    storage = tmp_path / "flash.bin"
    with _trained_board(storage, lambda b: b.train(epochs=2, lr=0.01, batch_size=4, seed=1, plan="sparse", k=1)) as b:
        b.save()
    with Board.virtual(dataset="basic_motions", int8=True, storage=storage) as b:  # no plan buffer
        w = b.get_weights()
        with pytest.raises(BoardError, match="plan") as e:
            b.load()
        assert e.value.name == "WEIGHTS"
        np.testing.assert_array_equal(b.get_weights().W, w.W)
    storage2 = tmp_path / "flash2.bin"
    with _trained_board(storage2, lambda b: b.train(epochs=2, lr=0.01, batch_size=4, seed=1, q="int8")) as b:
        b.save()
    with Board.virtual(dataset="basic_motions", plans=True, storage=storage2) as b:  # no int8 path
        with pytest.raises(BoardError, match="int8") as e:
            b.load()
        assert e.value.name == "WEIGHTS" and b.info()["q"] == "float"
    raw = bytearray(storage.read_bytes())
    raw[16 + 4000] ^= 0x40  # inside the only record (slot 0): its tensors
    storage.write_bytes(bytes(raw))
    with Board.virtual(dataset="basic_motions", plans=True, int8=True, storage=storage) as b:
        with pytest.raises(BoardError) as e:
            b.load()
        assert e.value.name == "STORAGE" and b.info()["plan"] == "head"
