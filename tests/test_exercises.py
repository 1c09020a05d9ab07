"""odlkit.exercises: delegation is caught however the kit function is reached; fallbacks say so."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from odlkit import clipping
from odlkit.exercises import DELEGATION_MARK, DelegationError, no_delegation, yours_or_kit


def honest_clip(x, c):
    n = np.linalg.norm(x)
    return x * min(1.0, c / n) if n > 0 else x


def test_an_own_implementation_passes_and_returns_its_value():
    with no_delegation(clipping.clip_l2, exercise="ex1") as watch:
        got = honest_clip(np.array([3.0, 4.0]), 1.0)
    assert watch.called == []
    np.testing.assert_allclose(got, [0.6, 0.8])


@pytest.mark.parametrize("how", ["direct", "alias", "helper", "thread"])
def test_delegation_is_caught_through_aliases_helpers_and_threads(how):
    alias = clipping.clip_l2

    def via_helper(x):
        return alias(x, 1.0)

    def run():
        x = np.array([3.0, 4.0])
        if how == "direct":
            return clipping.clip_l2(x, 1.0)
        if how == "alias":
            return alias(x, 1.0)
        if how == "helper":
            return via_helper(x)
        out = []
        t = threading.Thread(target=lambda: out.append(alias(x, 1.0)))
        t.start()
        t.join()
        return out[0]

    with pytest.raises(DelegationError, match=DELEGATION_MARK) as info:
        with no_delegation(clipping.clip_l2, exercise="ex1"):
            run()
    assert "ex1" in str(info.value) and "clip_l2" in str(info.value)


def test_methods_and_classes_are_watched():
    class Detector:
        def run(self, x):
            return x

    with pytest.raises(DelegationError, match="Detector.run"):
        with no_delegation(Detector):
            Detector().run(1)
    with pytest.raises(DelegationError):
        with no_delegation(Detector.run):
            Detector().run(1)


def test_profile_hook_is_removed_and_errors_pass_through():
    import sys

    before = sys.getprofile()
    with pytest.raises(ZeroDivisionError):
        with no_delegation(clipping.clip_l2):
            1 / 0  # noqa: B018
    assert sys.getprofile() is before
    with pytest.raises(ValueError, match="at least one"):
        no_delegation()
    with pytest.raises(TypeError, match="Python functions"):
        no_delegation(len)


def test_yours_or_kit_falls_back_once_and_says_so(capsys):
    def unsolved(x, c):
        raise NotImplementedError()

    f = yours_or_kit(unsolved, clipping.clip_l2, exercise="Exercise 1")
    np.testing.assert_allclose(f(np.array([3.0, 4.0]), 1.0), [0.6, 0.8])
    f(np.array([3.0, 4.0]), 1.0)
    out = capsys.readouterr().out
    assert out.count("Exercise 1 is not solved yet") == 1 and "clip_l2" in out
    g = yours_or_kit(honest_clip, clipping.clip_l2, exercise="Exercise 1")
    np.testing.assert_allclose(g(np.array([0.3, 0.4]), 1.0), [0.3, 0.4])
    assert capsys.readouterr().out == ""
