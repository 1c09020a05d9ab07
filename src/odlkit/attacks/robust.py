"""Robust aggregation: aggregators that a few malicious clients cannot drag far.

Same shape as :mod:`odlkit.fl.aggregators` (``(updates[K, D], weights[K]) -> [D]``), so they
plug into :func:`odlkit.fl.run_fedavg`. Norm clipping is :func:`odlkit.fl.clipped_mean`
(re-exported here), which itself calls :func:`odlkit.clipping.clip_l2`.

* coordinate-wise median (Yin et al. 2018): breaks down only past 50% attackers, per coordinate;
* trimmed mean (Yin et al. 2018): drop the ``beta`` fraction largest and smallest per coordinate;
* Krum / multi-Krum (Blanchard et al. 2017): pick the update(s) closest to their
  ``K - f - 2`` nearest neighbours; assumes at most ``f`` attackers.

Robust rules ignore sample-size weights (a liar can claim any size); they only validate them.
"""

from __future__ import annotations

import numpy as np

from odlkit.clipping import clip_l2
from odlkit.fl.aggregators import check_updates, clipped_mean, weighted_mean


def coordinate_median(updates, weights=None) -> np.ndarray:
    """Coordinate-wise median of the client updates."""
    updates, _ = check_updates(updates, weights)
    return np.median(updates, axis=0).astype(updates.dtype)


def trimmed_mean(beta: float = 0.1):
    """Aggregator: per coordinate, drop the ``floor(beta K)`` smallest and largest values, average the rest."""
    if not 0 <= beta < 0.5:
        raise ValueError(f"beta must be in [0, 0.5) (got {beta}): it is the fraction trimmed at each end")

    def aggregate(updates, weights=None):
        updates, _ = check_updates(updates, weights)
        k = len(updates)
        b = int(np.floor(beta * k))
        s = np.sort(updates, axis=0)
        return s[b : k - b].mean(axis=0).astype(updates.dtype)

    aggregate.__name__ = f"trimmed_mean({beta:g})"
    return aggregate


def krum_scores(updates, f: int) -> np.ndarray:
    """Krum score of each update: sum of squared distances to its ``K - f - 2`` nearest neighbours."""
    u = np.asarray(updates, dtype=np.float64)
    k = len(u)
    m = k - f - 2
    if m < 1:
        raise ValueError(f"Krum needs K > f + 2 clients (got K={k}, f={f}): lower f or select more clients")
    # ||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b (one matrix product) cancels catastrophically when
    # the updates share a large offset (1e7 x their spread loses every digit); distances do not
    # change under a shift, so shift by the coordinate-wise median first (robust: a far-away
    # attacker cannot drag the centre away from the honest updates, as it would drag a mean).
    u = u - np.median(u, axis=0)
    sq = np.sum(u * u, axis=1)
    d = np.maximum(sq[:, None] + sq[None, :] - 2 * u @ u.T, 0.0)
    np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)[:, :m].sum(axis=1)


def krum(f: int, m: int = 1):
    """Aggregator: (multi-)Krum. ``m=1`` returns the single most central update, ``m>1`` averages the m best."""
    if f < 0 or m < 1:
        raise ValueError(f"need f >= 0 and m >= 1 (got f={f}, m={m})")

    def aggregate(updates, weights=None):
        updates, _ = check_updates(updates, weights)
        best = np.argsort(krum_scores(updates, f), kind="stable")[: min(m, len(updates))]
        aggregate.selected = best
        return updates[best].mean(axis=0).astype(updates.dtype)

    aggregate.__name__ = f"krum(f={f})" if m == 1 else f"multi_krum(f={f},m={m})"
    aggregate.selected = None
    return aggregate


def norm_clipping(max_norm: float | None = None):
    """Aggregator: clip each update to L2 norm ``max_norm`` then FedAvg (:func:`odlkit.fl.clipped_mean`).

    ``max_norm=None`` clips to the median norm of the round's updates (no tuning needed; a
    boosted update is cut back to a typical size, though its direction still counts).
    """
    if max_norm is not None:
        return clipped_mean(max_norm)

    def aggregate(updates, weights=None):
        updates, weights = check_updates(updates, weights)
        med = float(np.median(np.linalg.norm(updates, axis=1)))
        return weighted_mean(clip_l2(updates, med, axis=1) if med > 0 else updates, weights)

    aggregate.__name__ = "norm_clipping(median)"
    return aggregate


def default_aggregators(k: int, max_attack_fraction: float = 0.3) -> dict:
    """The aggregators compared in chapter 5, configured for ``k`` clients per round."""
    f = max(0, min(k - 3, int(np.ceil(max_attack_fraction * k))))
    return {
        "fedavg": weighted_mean,
        "norm_clip": norm_clipping(None),
        "median": coordinate_median,
        "trimmed_mean": trimmed_mean(max_attack_fraction),
        "krum": krum(f),
        "multi_krum": krum(f, m=max(1, k - f)),
    }
