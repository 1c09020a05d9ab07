"""Modules that a test file needs, imported when a test first uses them, not when pytest collects.

Both pytest-xdist workers import every test file at collection, so a module-level ``import keras``
made each worker import TensorFlow before running any test (measured: ``import odlkit.models``
took 200 s on the 2 loaded cores of 2026-12-01), including in ``make test-fast`` runs that
deselect the tests needing it. ``keras = lazy_module("keras")`` at module level costs nothing:
the first attribute access (``keras.layers``) imports it, once, as a normal import.
"""

from __future__ import annotations

import importlib
import importlib.util

import pytest


class _LazyModule:
    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str):
        # pytest's collection probes every module-level object for private markers
        # (``_fixture_function_marker``, ``__test__``, ...): those must not import the module
        if attr.startswith("_"):
            raise AttributeError(attr)
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str, skip_if_missing: bool = True):
    """``name``, imported at first use; like ``pytest.importorskip`` the file is skipped if it is missing."""
    top = name.split(".", 1)[0]
    if skip_if_missing and importlib.util.find_spec(top) is None:
        pytest.skip(f"could not import {top!r}", allow_module_level=True)
    return _LazyModule(name)
