"""Every ``(updates[K, D], weights[K]) -> [D]`` aggregation rule in ``fl``, ``attacks`` and ``privacy``
holds to one contract, and the docstrings of those packages only name things that exist.

The contract (what ``odlkit.fl.run_fedavg`` relies on):
* the result is a finite float vector of length D; the inputs are not modified;
* K identical updates (inside every clip norm) aggregate to that update;
* the result lies in the coordinate-wise box spanned by the updates and 0 (means, medians,
  trimmed means and Krum stay inside the updates' box; clipping only shrinks towards 0);
* relabelling the clients (permuting rows and weights together) does not change the result;
* bad input fails the same way for every rule: ``ValueError`` for a 1-D array, for weights of the
  wrong length, for negative weights and for K = 0.
"""

from __future__ import annotations

import importlib
import pkgutil
import re

import numpy as np
import pytest

from odlkit import fl
from odlkit.attacks import robust
from odlkit.privacy import federated


def _rules():
    """(name, factory) for every aggregation rule; a factory gives a fresh rule (DP rules hold state)."""
    return [
        ("fl.weighted_mean", lambda: fl.weighted_mean),
        ("fl.uniform_mean", lambda: fl.uniform_mean),
        ("fl.clipped_mean", lambda: fl.clipped_mean(3.0)),
        ("fl.clipped_mean(uniform)", lambda: fl.clipped_mean(3.0, fl.uniform_mean)),
        ("attacks.coordinate_median", lambda: robust.coordinate_median),
        ("attacks.trimmed_mean", lambda: robust.trimmed_mean(0.2)),
        ("attacks.krum", lambda: robust.krum(2)),
        ("attacks.multi_krum", lambda: robust.krum(2, m=4)),
        ("attacks.norm_clipping(median)", lambda: robust.norm_clipping(None)),
        ("attacks.norm_clipping(3)", lambda: robust.norm_clipping(3.0)),
        ("privacy.DPFedAvg", lambda: federated.DPFedAvg(clip_norm=3.0, noise_multiplier=0.0)),
        ("privacy.AdaptiveClipDPFedAvg", lambda: federated.AdaptiveClipDPFedAvg(
            initial_clip=3.0, noise_multiplier=0.0, count_noise_std=0.0)),
        *[(f"default_aggregators[{name}]", (lambda name=name: robust.default_aggregators(8)[name]))
          for name in robust.default_aggregators(8)],
    ]


RULES = _rules()
IDS = [name for name, _ in RULES]


def _updates(k=8, d=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.5, size=(k, d)), rng.integers(1, 50, size=k).astype(float)


@pytest.mark.parametrize("factory", [f for _, f in RULES], ids=IDS)
def test_rule_returns_a_finite_vector_and_leaves_its_inputs_alone(factory):
    U, w = _updates()
    U0, w0 = U.copy(), w.copy()
    out = np.asarray(factory()(U, w))
    assert out.shape == (U.shape[1],) and np.issubdtype(out.dtype, np.floating) and np.isfinite(out).all()
    np.testing.assert_array_equal(U, U0)
    np.testing.assert_array_equal(w, w0)


@pytest.mark.parametrize("factory", [f for _, f in RULES], ids=IDS)
def test_identical_updates_aggregate_to_that_update(factory):
    u = np.array([0.3, -0.2, 0.1, 0.0, 0.5])  # norm 0.62, inside every clip norm above
    out = factory()(np.tile(u, (8, 1)), np.arange(1, 9, dtype=float))
    np.testing.assert_allclose(out, u, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("factory", [f for _, f in RULES], ids=IDS)
def test_result_stays_in_the_box_of_the_updates_and_zero(factory):
    for seed in range(5):
        U, w = _updates(seed=seed)
        U[0] *= 40  # one boosted client
        out = factory()(U, w)
        lo, hi = np.minimum(U.min(axis=0), 0), np.maximum(U.max(axis=0), 0)
        assert np.all(out >= lo - 1e-6) and np.all(out <= hi + 1e-6), seed


@pytest.mark.parametrize("factory", [f for _, f in RULES], ids=IDS)
def test_relabelling_the_clients_does_not_change_the_result(factory):
    U, w = _updates(seed=3)
    perm = np.random.default_rng(1).permutation(len(U))
    np.testing.assert_allclose(factory()(U[perm], w[perm]), factory()(U, w), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("factory", [f for _, f in RULES], ids=IDS)
def test_bad_input_fails_the_same_way(factory):
    U, w = _updates()
    with pytest.raises(ValueError, match=r"\(K clients, D parameters\)"):
        factory()(U[0], w)
    with pytest.raises(ValueError, match="one entry per client"):
        factory()(U, w[:-1])
    with pytest.raises(ValueError, match=">= 0"):
        factory()(U, -w)
    with pytest.raises(ValueError, match="K = 0"):
        factory()(np.zeros((0, 5)), np.zeros(0))


# ---------------------------------------------------------------- docstrings name what exists
_REF = re.compile(r":(?:func|class|mod|meth|data|attr):`~?(odlkit\.[\w.]+)`")


def _resolve(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


@pytest.mark.parametrize("package", ["odlkit.fl", "odlkit.privacy", "odlkit.attacks"])
def test_docstring_cross_references_resolve(package):
    pkg = importlib.import_module(package)
    names = [package] + [f"{package}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)]
    missing = []
    for name in names:
        mod = importlib.import_module(name)
        for obj in [mod, *vars(mod).values()]:
            if getattr(obj, "__module__", name) != name and obj is not mod:
                continue
            missing += [(name, ref) for ref in _REF.findall(getattr(obj, "__doc__", None) or "") if not _resolve(ref)]
    assert not missing, missing
