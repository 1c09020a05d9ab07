"""The grading kernels' cache of the aeon-backed datasets (odlkit.data._grading_cached): the same
Dataset as aeon's loader, field for field and bit for bit, and a changed input is never read stale."""

from __future__ import annotations

import numpy as np
import pytest

from odlkit import config, data


def _same(a: data.Dataset, b: data.Dataset) -> None:
    assert a.name == b.name and a.class_names == b.class_names and a.channels == b.channels
    assert a.sample_rate_hz == b.sample_rate_hz and a.source == b.source
    assert type(a.X) is type(b.X) and len(a.X) == len(b.X)
    for xa, xb in zip(a.X, b.X, strict=True):
        assert xa.dtype == xb.dtype and xa.shape == xb.shape and xa.tobytes() == xb.tobytes()
    assert a.y.dtype == b.y.dtype and np.array_equal(a.y, b.y)
    assert (a.groups is None) == (b.groups is None)
    if a.groups is not None:
        assert a.groups.dtype == b.groups.dtype and np.array_equal(a.groups, b.groups)
    assert sorted(a.meta) == sorted(b.meta)
    for k in a.meta:
        assert a.meta[k].dtype == b.meta[k].dtype and np.array_equal(a.meta[k], b.meta[k])


@pytest.fixture
def grading_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "GRADING_CACHE_DIR", tmp_path)
    monkeypatch.setattr(config, "GRADING", True)
    data._load_cached.cache_clear()
    yield tmp_path
    data._load_cached.cache_clear()


@pytest.mark.parametrize("name", ["basic_motions", "japanese_vowels"])
def test_cached_equals_aeon(grading_cache, name):
    direct = data._BUILTIN[name]()                 # aeon's loader, as a student's run uses it
    first = data._grading_cached(name)             # loads with aeon and writes the file
    assert len(list(grading_cache.glob(f"{name}-*.npz"))) == 1
    _same(first, direct)
    again = data._grading_cached(name)             # read from the file
    _same(again, direct)
    _same(data.load(name), direct)                 # through load() in a grading kernel


def test_file_read_without_aeon(grading_cache, monkeypatch):
    data._grading_cached("basic_motions")
    # once written, a grading kernel reads it without calling aeon's loader at all
    monkeypatch.setitem(data._BUILTIN, "basic_motions", lambda: pytest.fail("aeon's loader was called"))
    assert len(data._grading_cached("basic_motions")) == 80


def test_key_follows_inputs(grading_cache, monkeypatch, tmp_path_factory):
    key = data._grading_cache_key("basic_motions")
    assert key == data._grading_cache_key("basic_motions")
    assert key != data._grading_cache_key("japanese_vowels")
    # the loader's code is part of the key: another data.py gives another file name
    other = tmp_path_factory.mktemp("code") / "data.py"
    other.write_text(open(data.__file__).read() + "\n# changed\n")
    monkeypatch.setattr(data, "__file__", str(other))
    assert data._grading_cache_key("basic_motions") != key


def test_stale_or_broken_file_is_rewritten(grading_cache):
    direct = data._BUILTIN["basic_motions"]()
    path = grading_cache / f"basic_motions-{data._grading_cache_key('basic_motions')}.npz"
    path.write_bytes(b"not a numpy file")
    _same(data._grading_cached("basic_motions"), direct)
    _same(data._grading_cached("basic_motions"), direct)   # the rewritten file


def test_student_runs_do_not_use_it(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "GRADING_CACHE_DIR", tmp_path)
    monkeypatch.setattr(config, "GRADING", False)
    data._load_cached.cache_clear()
    try:
        data.load("basic_motions")
    finally:
        data._load_cached.cache_clear()
    assert not list(tmp_path.iterdir())
