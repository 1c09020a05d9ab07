"""Aggregators: how the server combines K client updates into one.

An aggregator is a plain function ``(updates: ndarray[K, D], weights: ndarray[K]) -> ndarray[D]``.
``updates[k]`` is client k's model delta ``w_k^{t+1} - w^t`` and ``weights[k]`` its number of
training samples ``n_k``. FedAvg is :func:`weighted_mean`::

    w^{t+1} = w^t + sum_k (n_k / n) (w_k^{t+1} - w^t) = sum_k (n_k / n) w_k^{t+1}

Anything with that signature plugs into :func:`odlkit.fl.run_fedavg`, whichever client pool
trains the round (any :class:`odlkit.fl.Pool`: :class:`odlkit.fl.ClientPool`, which trains all K clients as one batched numpy
computation, or :class:`odlkit.fl.LoopPool`, one client at a time, or the boards of Lab 3): robust aggregators (median,
trimmed mean, Krum) and DP-FedAvg (clip + noise) from the privacy and attacks chapters are
written the same way, and ``tests/test_aggregators.py`` holds every one of them to that contract.
(:mod:`odlkit.fl.flower` runs Flower's own ``FedAvg`` strategy, not these functions.)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from odlkit.clipping import clip_l2
from odlkit.validation import check_updates

Aggregator = Callable[[np.ndarray, np.ndarray], np.ndarray]
__all__ = ["Aggregator", "ServerOptimizer", "check_updates", "clipped_mean", "uniform_mean", "weighted_mean"]


def weighted_mean(updates, weights) -> np.ndarray:
    """FedAvg: ``sum_k (n_k / n) updates[k]`` with ``n = sum_k n_k``."""
    updates, weights = check_updates(updates, weights)
    return ((weights / weights.sum()) @ updates).astype(updates.dtype)


def uniform_mean(updates, weights) -> np.ndarray:
    """Every client counts the same, whatever its size (ignores ``weights`` except for validation)."""
    updates, weights = check_updates(updates, weights)
    return updates.mean(axis=0)


def clipped_mean(max_norm: float, base: Aggregator = weighted_mean) -> Aggregator:
    """Aggregator that first clips each client's update to L2 norm ``max_norm`` (``odlkit.clipping.clip_l2``).

    Bounds how far one client can move the model: the first step of DP-FedAvg and a cheap
    defence against scaled (boosted) malicious updates.
    """
    if not np.isfinite(max_norm) or max_norm <= 0:
        raise ValueError(f"max_norm must be a positive finite number, got {max_norm!r}")

    def aggregate(updates, weights):
        updates, weights = check_updates(updates, weights)
        return base(clip_l2(updates, max_norm, axis=1), weights)

    aggregate.__name__ = f"clipped_mean({max_norm:g})"
    return aggregate


class ServerOptimizer:
    """Applies the aggregated update to the global model: plain FedAvg or FedAvgM.

    ``w <- w + lr * v`` with ``v <- momentum * v + delta``. ``lr=1, momentum=0`` is FedAvg;
    ``momentum > 0`` is FedAvgM (Hsu et al. 2019), which smooths the zig-zag of non-IID rounds.
    """

    def __init__(self, lr: float = 1.0, momentum: float = 0.0):
        if lr <= 0:
            raise ValueError(f"server lr must be > 0, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"server momentum must be in [0, 1), got {momentum}")
        self.lr, self.momentum, self.velocity = float(lr), float(momentum), None

    def step(self, weights: np.ndarray, delta: np.ndarray) -> np.ndarray:
        if self.momentum:
            self.velocity = delta if self.velocity is None else self.momentum * self.velocity + delta
            delta = self.velocity
        return (weights + self.lr * delta).astype(weights.dtype)
