"""The virtual board without a C++ compiler: one short message with hints for every platform,
and a board already built in the cache still starts."""

from __future__ import annotations

import os

import pytest

from odlkit.board import virtual


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
