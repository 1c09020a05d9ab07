"""The chapter-5 robustness experiment: FedAvg vs robust aggregators under malicious clients.

Runs :func:`odlkit.fl.run_fedavg` (the one FedAvg loop) with a :class:`MaliciousPool` for each
(attack fraction, aggregator) and reports clean test accuracy and, for backdoors, the attack
success rate. Numpy models from :mod:`odlkit.fl.models`, so a full table takes seconds.
"""

from __future__ import annotations

import numpy as np

from odlkit.attacks.malicious import MaliciousPool
from odlkit.attacks.poisoning import add_trigger, backdoor_poison, flip_labels
from odlkit.attacks.robust import default_aggregators


def corner_trigger(n_features: int = 64, side: int = 8, size: int = 2, value: float = 1.0) -> np.ndarray:
    """A bright ``size`` x ``size`` patch in the bottom-right corner of a flattened ``side`` x ``side`` image."""
    t = np.zeros((side, side), np.float32)
    t[-size:, -size:] = value
    if t.size != n_features:
        raise ValueError(f"{side}x{side} image has {t.size} pixels, not {n_features}")
    return t.ravel()


def fl_robustness_table(X, y, X_test, y_test, attack: str = "sign_flip", fractions=(0.0, 0.1, 0.2, 0.3),
                        aggregators=None, n_clients: int = 20, rounds: int = 20, lr: float = 0.5,
                        local_epochs: int = 1, boost: float | None = None, trigger=None, target: int = 0,
                        seed: int = 0, progress: bool = False) -> list[dict]:
    """Rows ``{attack, fraction, aggregator, accuracy, asr}``; ``asr`` is NaN unless ``attack='backdoor'``.

    Every client takes part in every round (so a fraction of attackers is that fraction of each
    round). Attacks: ``sign_flip`` (send ``-boost`` x the honest update), ``scaled`` (train on
    randomly relabelled data, boost the update), ``backdoor`` (train with half the local data
    triggered and relabelled ``target``, boost), ``gaussian`` (noise). ``boost`` defaults to 4 for
    sign flips / noise and to ``n_clients / n_attackers`` for scaled/backdoor updates (model
    replacement, Bagdasaryan et al. 2020).
    """
    from odlkit.fl import ClientPool, SoftmaxRegression, run_fedavg

    X = np.asarray(X, np.float32).reshape(len(y), -1)
    X_test = np.asarray(X_test, np.float32).reshape(len(y_test), -1)
    n_classes = int(max(y.max(), y_test.max())) + 1
    model = SoftmaxRegression(X.shape[1], n_classes)
    parts = np.array_split(np.random.default_rng(seed).permutation(len(y)), n_clients)
    if attack == "backdoor" and trigger is None:
        trigger = corner_trigger(X.shape[1])
    rows = []
    iterator = [(f, name) for f in fractions for name in (aggregators or default_aggregators(n_clients))]
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc=f"{attack} table")
    for frac, name in iterator:
        agg = (aggregators or default_aggregators(n_clients))[name]
        n_bad = int(round(frac * n_clients))
        bad = np.arange(n_bad)  # partition is random, so the first clients are a random subset
        train = []
        for k, p in enumerate(parts):
            Xk, yk = X[p], y[p]
            if attack == "backdoor" and k < n_bad:
                Xk, yk, _ = backdoor_poison(Xk, yk, 0.5, target, trigger, mode="set", seed=seed + k)
            if attack == "scaled" and k < n_bad:
                yk, _ = flip_labels(yk, 1.0, n_classes, seed=seed + k)
            train.append((Xk, yk))
        b = boost if boost is not None else (4.0 if attack in ("sign_flip", "gaussian") else n_clients / max(1, n_bad))
        pool = MaliciousPool(ClientPool(model, train), bad, kind=attack, boost=b, seed=seed)
        w, _ = run_fedavg(pool, model.init(seed), rounds=rounds, lr=lr, local_epochs=local_epochs,
                          aggregator=agg, eval_clients=False, seed=seed)
        acc = model.accuracy(w, X_test, y_test) if np.all(np.isfinite(w)) else float("nan")
        asr = float("nan")
        if attack == "backdoor":
            keep = y_test != target
            asr = float(np.mean(model.predict(w, add_trigger(X_test[keep], trigger, "set")) == target))
        rows.append({"attack": attack, "fraction": float(frac), "aggregator": name, "accuracy": float(acc), "asr": asr})
    return rows


def format_table(rows, value: str = "accuracy") -> str:
    """Aggregators as rows, attacker fractions as columns."""
    fracs = sorted({r["fraction"] for r in rows})
    names = list(dict.fromkeys(r["aggregator"] for r in rows))
    lines = [f"{value:>14s} " + " ".join(f"{int(100 * f):>6d}%" for f in fracs)]
    for n in names:
        vals = {r["fraction"]: r[value] for r in rows if r["aggregator"] == n}
        lines.append(f"{n:>14s} " + " ".join(f"{vals[f]:7.3f}" for f in fracs))
    return "\n".join(lines)
