"""The hidden tests of chapter 5 reject plausible wrong solutions and solutions that call the kit.

Runs each exercise's test cell (visible + hidden part) of the instructor notebook in a fresh
namespace against: the instructor's solution (must pass), wrong implementations a student could
plausibly write (each must fail with an AssertionError), and a solution that delegates to the
kit's implementation (must fail with DelegationError). Numpy only, a few seconds.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat
import numpy as np
import pytest
import scipy.stats  # noqa: F401 - loaded before threadpool_limits so its BLAS is limited too
import sklearn.linear_model  # noqa: F401
from threadpoolctl import threadpool_limits

from odlkit.exercises import DelegationError, no_delegation
from odlkit.grading.notebooks import grade_id

NB = Path(__file__).resolve().parents[1] / "autograder/source/ch05_poisoning_and_attacks/ch05_poisoning_and_attacks.ipynb"
CELLS = {grade_id(c): c.source for c in nbformat.read(str(NB), 4).cells if grade_id(c)}


def run_tests(exercise: str, solution_source: str) -> None:
    ns = {"np": np, "no_delegation": no_delegation}
    exec(compile(textwrap.dedent(solution_source), f"<{exercise} solution>", "exec"), ns)
    with threadpool_limits(1):  # as the notebook does: small fits are slower with many BLAS threads
        exec(compile(CELLS[f"{exercise}_tests"], f"<{exercise}_tests>", "exec"), ns)


SOLUTION_CELL = {"ex1": "ex1_flip", "ex2": "ex2_trimmed_mean", "ex3": "ex3_krum", "ex4": "ex4_cusum",
                 "ex5": "ex5_pgd", "ex6": "ex6_invert"}

WRONG = {
    "ex1": {
        "may keep the same label": """
            def flip_random(y, fraction, n_classes, seed):
                r = np.random.default_rng(seed); y = np.asarray(y); out = y.copy()
                idx = r.choice(len(y), int(round(fraction * len(y))), replace=False)
                out[idx] = r.integers(0, n_classes, size=len(idx))
                return out""",
        "with replacement": """
            def flip_random(y, fraction, n_classes, seed):
                r = np.random.default_rng(seed); y = np.asarray(y); out = y.copy()
                idx = r.integers(0, len(y), int(round(fraction * len(y))))
                out[idx] = (y[idx] + r.integers(1, n_classes, size=len(idx))) % n_classes
                return out""",
        "always the next class": """
            def flip_random(y, fraction, n_classes, seed):
                r = np.random.default_rng(seed); y = np.asarray(y); out = y.copy()
                idx = r.choice(len(y), int(round(fraction * len(y))), replace=False)
                out[idx] = (y[idx] + 1) % n_classes
                return out""",
        "modifies the input": """
            def flip_random(y, fraction, n_classes, seed):
                r = np.random.default_rng(seed)
                idx = r.choice(len(y), int(round(fraction * len(y))), replace=False)
                y[idx] = (y[idx] + r.integers(1, n_classes, size=len(idx))) % n_classes
                return y""",
        "ignores the seed": """
            def flip_random(y, fraction, n_classes, seed):
                r = np.random.default_rng(); y = np.asarray(y); out = y.copy()
                idx = r.choice(len(y), int(round(fraction * len(y))), replace=False)
                out[idx] = (y[idx] + r.integers(1, n_classes, size=len(idx))) % n_classes
                return out""",
    },
    "ex2": {
        "trims whole clients by norm": """
            def trimmed_mean_aggregate(updates, weights, beta):
                U = np.asarray(updates, float)
                if U.ndim != 2 or not 0 <= beta < 0.5: raise ValueError
                b = int(beta * len(U)); order = np.argsort(np.linalg.norm(U, axis=1))
                return U[order[: len(U) - 2 * b]].mean(0)""",
        "rounds instead of floor": """
            def trimmed_mean_aggregate(updates, weights, beta):
                U = np.asarray(updates, float)
                if U.ndim != 2 or not 0 <= beta < 0.5: raise ValueError
                b = int(round(beta * len(U)))
                return np.sort(U, axis=0)[b: len(U) - b].mean(0)""",
        "weighted by sample counts": """
            def trimmed_mean_aggregate(updates, weights, beta):
                U = np.asarray(updates, float)
                if U.ndim != 2 or not 0 <= beta < 0.5: raise ValueError
                b = int(beta * len(U)); idx = np.argsort(U, axis=0)[b: len(U) - b]
                w = np.asarray(weights, float)[idx]
                return (np.take_along_axis(U, idx, 0) * w).sum(0) / w.sum(0)""",
        "trims only the top": """
            def trimmed_mean_aggregate(updates, weights, beta):
                U = np.asarray(updates, float)
                if U.ndim != 2 or not 0 <= beta < 0.5: raise ValueError
                b = int(beta * len(U))
                return np.sort(U, axis=0)[: len(U) - 2 * b].mean(0)""",
        "no input check": """
            def trimmed_mean_aggregate(updates, weights, beta):
                U = np.atleast_2d(np.asarray(updates, float)); b = int(beta * len(U))
                return np.sort(U, axis=0)[b: len(U) - b].mean(0)""",
    },
    "ex3": {
        "unsquared distances": """
            def krum_select(updates, f):
                U = np.asarray(updates, float); K = len(U)
                if K <= 2 * f + 2: raise ValueError
                d = np.sqrt(((U[:, None] - U[None]) ** 2).sum(2)); np.fill_diagonal(d, np.inf)
                return int(np.argmin(np.sort(d, 1)[:, : K - f - 2].sum(1)))""",
        "counts itself as a neighbour": """
            def krum_select(updates, f):
                U = np.asarray(updates, float); K = len(U)
                if K <= 2 * f + 2: raise ValueError
                d = ((U[:, None] - U[None]) ** 2).sum(2)
                return int(np.argmin(np.sort(d, 1)[:, : K - f - 2].sum(1)))""",
        "all neighbours": """
            def krum_select(updates, f):
                U = np.asarray(updates, float); K = len(U)
                if K <= 2 * f + 2: raise ValueError
                return int(np.argmin(((U[:, None] - U[None]) ** 2).sum(2).sum(1)))""",
        "K - f - 1 neighbours": """
            def krum_select(updates, f):
                U = np.asarray(updates, float); K = len(U)
                if K <= 2 * f + 2: raise ValueError
                d = ((U[:, None] - U[None]) ** 2).sum(2); np.fill_diagonal(d, np.inf)
                return int(np.argmin(np.sort(d, 1)[:, : K - f - 1].sum(1)))""",
        "only checks K > f + 2": """
            def krum_select(updates, f):
                U = np.asarray(updates, float); K = len(U)
                if K <= f + 2: raise ValueError
                d = ((U[:, None] - U[None]) ** 2).sum(2); np.fill_diagonal(d, np.inf)
                return int(np.argmin(np.sort(d, 1)[:, : K - f - 2].sum(1)))""",
    },
    "ex4": {
        "no reset after an alarm": """
            def cusum_alarms(stream, mu0, sigma, k, h):
                s, out = 0.0, []
                for x in stream:
                    s = max(0.0, s + (x - mu0) / sigma - k); out.append(s > h)
                return np.array(out, bool)""",
        "no clamp at zero": """
            def cusum_alarms(stream, mu0, sigma, k, h):
                s, out = 0.0, []
                for x in stream:
                    s = s + (x - mu0) / sigma - k; a = s > h; s = 0.0 if a else s; out.append(a)
                return np.array(out, bool)""",
        ">= instead of >": """
            def cusum_alarms(stream, mu0, sigma, k, h):
                s, out = 0.0, []
                for x in stream:
                    s = max(0.0, s + (x - mu0) / sigma - k); a = s >= h; s = 0.0 if a else s; out.append(a)
                return np.array(out, bool)""",
        "slack not in sigma units": """
            def cusum_alarms(stream, mu0, sigma, k, h):
                s, out = 0.0, []
                for x in stream:
                    s = max(0.0, s + (x - mu0 - k) / sigma); a = s > h; s = 0.0 if a else s; out.append(a)
                return np.array(out, bool)""",
    },
    "ex5": {
        "FGSM with eps (one step)": """
            def pgd_attack(grad_fn, X, y, eps, alpha, steps):
                X = np.asarray(X, float); return X + eps * np.sign(grad_fn(X, y))""",
        "no projection": """
            def pgd_attack(grad_fn, X, y, eps, alpha, steps):
                a = np.asarray(X, float).copy()
                for _ in range(steps): a = a + alpha * np.sign(grad_fn(a, y))
                return a""",
        "gradient always at the original input": """
            def pgd_attack(grad_fn, X, y, eps, alpha, steps):
                X = np.asarray(X, float); a = X.copy()
                for _ in range(steps): a = np.clip(a + alpha * np.sign(grad_fn(X, y)), X - eps, X + eps)
                return a""",
        "raw gradient instead of its sign": """
            def pgd_attack(grad_fn, X, y, eps, alpha, steps):
                X = np.asarray(X, float); a = X.copy()
                for _ in range(steps): a = np.clip(a + alpha * grad_fn(a, y), X - eps, X + eps)
                return a""",
        "descends the loss": """
            def pgd_attack(grad_fn, X, y, eps, alpha, steps):
                X = np.asarray(X, float); a = X.copy()
                for _ in range(steps): a = np.clip(a - alpha * np.sign(grad_fn(a, y)), X - eps, X + eps)
                return a""",
    },
    "ex6": {
        "only the class weight row (no -W^T p)": """
            def invert_linear(W, b, c, steps, lr, l2, clip=(0.0, 1.0)):
                W = np.asarray(W, float); x = np.zeros(W.shape[1])
                for _ in range(steps):
                    x = x + lr * (W[c] - 2 * l2 * x)
                    if clip is not None: x = np.clip(x, *clip)
                return x""",
        "penalty without the factor 2": """
            def invert_linear(W, b, c, steps, lr, l2, clip=(0.0, 1.0)):
                W, b = np.asarray(W, float), np.asarray(b, float); x = np.zeros(W.shape[1]); e = np.eye(len(b))[c]
                for _ in range(steps):
                    z = W @ x + b; p = np.exp(z - z.max()); p /= p.sum()
                    x = x + lr * (W.T @ (e - p) - l2 * x)
                    if clip is not None: x = np.clip(x, *clip)
                return x""",
        "never clips": """
            def invert_linear(W, b, c, steps, lr, l2, clip=(0.0, 1.0)):
                W, b = np.asarray(W, float), np.asarray(b, float); x = np.zeros(W.shape[1]); e = np.eye(len(b))[c]
                for _ in range(steps):
                    z = W @ x + b; p = np.exp(z - z.max()); p /= p.sum()
                    x = x + lr * (W.T @ (e - p) - 2 * l2 * x)
                return x""",
        "unstable softmax": """
            def invert_linear(W, b, c, steps, lr, l2, clip=(0.0, 1.0)):
                W, b = np.asarray(W, float), np.asarray(b, float); x = np.zeros(W.shape[1]); e = np.eye(len(b))[c]
                for _ in range(steps):
                    z = W @ x + b; p = np.exp(z); p /= p.sum()
                    x = x + lr * (W.T @ (e - p) - 2 * l2 * x)
                    if clip is not None: x = np.clip(x, *clip)
                return x""",
    },
}

# ex5 is absent: the kit's pgd/fgsm take a Keras model, not a gradient function, so they are no
# drop-in (the test still watches them).
DELEGATING = {
    "ex1": """
        from odlkit.attacks import flip_labels as fl
        def flip_random(y, fraction, n_classes, seed):
            return fl(y, fraction, n_classes, seed=seed)[0]""",
    "ex2": """
        from odlkit.attacks.robust import trimmed_mean
        def trimmed_mean_aggregate(updates, weights, beta):
            if np.ndim(updates) != 2 or not 0 <= beta < 0.5: raise ValueError
            return trimmed_mean(beta)(updates, weights)""",
    "ex3": """
        from odlkit.attacks import krum_scores as ks
        def krum_select(updates, f):
            if len(updates) <= 2 * f + 2: raise ValueError
            return int(np.argmin(ks(updates, f)))""",
    "ex4": """
        from odlkit.attacks import CUSUM
        def cusum_alarms(stream, mu0, sigma, k, h):
            return CUSUM(k=k, h=h, mu0=mu0, sigma=sigma).run(stream)""",
    "ex6": """
        from odlkit.attacks.inversion import invert_linear_head
        def invert_linear(W, b, c, steps, lr, l2, clip=(0.0, 1.0)):
            return invert_linear_head(W, b, c, steps=steps, lr=lr, l2=l2, clip=clip)""",
}


@pytest.mark.parametrize("exercise", sorted(SOLUTION_CELL))
def test_the_instructor_solution_passes(exercise):
    run_tests(exercise, CELLS[SOLUTION_CELL[exercise]])


@pytest.mark.parametrize("exercise,wrong", [(e, w) for e in sorted(WRONG) for w in WRONG[e]])
def test_a_plausible_wrong_solution_fails(exercise, wrong):
    with pytest.raises(AssertionError) as err:
        run_tests(exercise, WRONG[exercise][wrong])
    assert not isinstance(err.value, DelegationError)


@pytest.mark.parametrize("exercise", sorted(DELEGATING))
def test_a_solution_that_calls_the_kit_fails(exercise):
    with pytest.raises(DelegationError, match="DELEGATES TO THE KIT"):
        run_tests(exercise, DELEGATING[exercise])


def test_the_kits_linear_inversion_is_the_exercise_and_checks_its_input():
    # the demo's fallback (odlkit.attacks.inversion.invert_linear_head) must compute what exercise 6 asks
    from odlkit.attacks.inversion import invert_linear_head

    ns = {"np": np}
    exec(CELLS["ex6_invert"], ns)
    r = np.random.default_rng(3)
    for clip in (None, (0.0, 1.0)):
        W, b = r.normal(size=(5, 9)), r.normal(size=5)
        assert np.allclose(invert_linear_head(W, b, 2, steps=20, lr=0.2, l2=0.05, clip=clip),
                           ns["invert_linear"](W, b, 2, 20, 0.2, 0.05, clip=clip), atol=1e-12)
    with pytest.raises(ValueError, match="out of range"):
        invert_linear_head(W, b, 5)
    with pytest.raises(ValueError, match="n_classes"):
        invert_linear_head(W, b[:3], 0)
