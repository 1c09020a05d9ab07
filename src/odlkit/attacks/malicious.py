"""Malicious federated clients: sign flipping, scaled (boosted) updates, backdoors.

:class:`MaliciousPool` wraps any client pool of :mod:`odlkit.fl` (``ClientPool`` or
``LoopPool``): honest clients train as usual; the attackers' returned weights are rewritten
(from their honest-looking local training, on poisoned data for a backdoor). The server
in :func:`odlkit.fl.run_fedavg` cannot tell the difference, which is the point.
"""

from __future__ import annotations

import numpy as np

KINDS = ("sign_flip", "scaled", "backdoor", "gaussian")


def malicious_update(delta, kind: str, boost: float = 1.0, rng=None):
    """Turn an honest update ``delta`` (D,) or (k, D) into a malicious one.

    * ``sign_flip``: ``-boost * delta`` (gradient ascent: pushes the model away from the optimum);
    * ``scaled`` / ``backdoor``: ``boost * delta`` (model replacement: the attacker's direction,
      amplified so it survives averaging with honest clients);
    * ``gaussian``: random noise with the norm of ``boost * delta`` (a broken or lazy client).
    """
    delta = np.asarray(delta, dtype=np.float32)
    if kind == "sign_flip":
        return -boost * delta
    if kind in ("scaled", "backdoor"):
        return boost * delta
    if kind == "gaussian":
        rng = rng or np.random.default_rng(0)
        z = rng.standard_normal(delta.shape).astype(np.float32)
        n = np.linalg.norm(delta, axis=-1, keepdims=True) / np.maximum(np.linalg.norm(z, axis=-1, keepdims=True), 1e-12)
        return boost * z * n
    raise ValueError(f"unknown attack kind {kind!r}; choose one of {KINDS}")


class MaliciousPool:
    """A client pool where the clients in ``malicious_ids`` send ``malicious_update(...)``."""

    def __init__(self, pool, malicious_ids, kind: str = "sign_flip", boost: float = 1.0, seed: int = 0):
        if kind not in KINDS:
            raise ValueError(f"unknown attack kind {kind!r}; choose one of {KINDS}")
        self.pool = pool
        self.malicious = np.asarray(sorted(set(int(i) for i in malicious_ids)), dtype=np.int64)
        if len(self.malicious) and (self.malicious.min() < 0 or self.malicious.max() >= len(pool)):
            raise ValueError(f"malicious_ids must be client indices in [0, {len(pool)})")
        self.kind, self.boost = kind, float(boost)
        self.rng = np.random.default_rng(seed)
        self.sent: list[tuple[np.ndarray, np.ndarray]] = []  # (ids, is_malicious) per round, for detectors

    def __len__(self) -> int:
        return len(self.pool)

    @property
    def sizes(self):
        return self.pool.sizes

    def fit_many(self, ids, weights, config):
        res, failures = self.pool.fit_many(ids, weights, config)
        W = np.array(res.weights, dtype=np.float32, copy=True)
        mal = np.isin(res.ids, self.malicious)
        if mal.any():
            W[mal] = weights[None, :] + malicious_update(W[mal] - weights[None, :], self.kind, self.boost, self.rng)
        self.sent.append((res.ids.copy(), mal))
        res.weights = W
        return res, failures

    def evaluate_many(self, ids, weights):
        return self.pool.evaluate_many(ids, weights)
