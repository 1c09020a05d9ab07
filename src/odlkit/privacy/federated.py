"""Differential privacy in federated averaging (client-level DP).

Aggregators here have the shape used by :mod:`odlkit.fl`:
``aggregate(updates: ndarray[K, D], weights: ndarray[K]) -> ndarray[D]``.
They are callables (objects with ``__call__``) because they carry a seed and, for adaptive
clipping, state across rounds.

* :class:`DPFedAvg` (McMahan et al. 2018, "Learning differentially private recurrent
  language models"): clip each *client update* to L2 norm ``C``, average with uniform
  weights, add ``N(0, (z C / K)^2)`` per coordinate. One client changes the average by at
  most ``C / K``, so ``z`` is the noise multiplier of a Gaussian mechanism per round; the
  round-level sampling rate is ``clients_per_round / n_clients`` for the accountant.
* :class:`AdaptiveClipDPFedAvg` (Andrew et al. 2021, "Differentially private learning with
  adaptive clipping"): the clip norm follows a target quantile ``gamma`` of the update norms,
  ``C <- C * exp(-eta_C * (b - gamma))`` with ``b`` the (noised) fraction of clients whose
  norm was <= C. The noised count is a second Gaussian mechanism on the same clients (noise
  multiplier ``2 sigma_b`` for sensitivity 1/2), so the update's noise multiplier is raised to
  ``z_delta = (z^-2 - (2 sigma_b)^-2)^(-1/2)``: the two together compose to one Gaussian
  mechanism with multiplier ``z`` (Andrew et al., Thm. 1; Flower's
  ``compute_adaptive_noise_params``), which is what the epsilon for ``z`` assumes.

Uniform weights are deliberate: sample-size weights would let one client with many
examples dominate and break the ``C / K`` sensitivity bound. The ``weights`` argument is
accepted for the interface and ignored.
"""

from __future__ import annotations

import math

import numpy as np

from odlkit.clipping import clip_l2
from odlkit.validation import check_updates


def _check_updates(updates, weights=None):
    u, _ = check_updates(updates, weights)
    u = np.asarray(u, dtype=np.float64)
    if not np.all(np.isfinite(u)):
        raise ValueError("updates contain NaN or inf: drop or fix the client before aggregating")
    return u


class DPFedAvg:
    """Client-level DP aggregation: clip each update to ``clip_norm``, average, add Gaussian noise."""

    def __init__(self, clip_norm: float, noise_multiplier: float, seed: int = 0):
        if not clip_norm > 0 or not math.isfinite(clip_norm):
            raise ValueError(f"clip_norm must be a finite number > 0 (got {clip_norm})")
        if noise_multiplier < 0:
            raise ValueError(f"noise_multiplier must be >= 0 (got {noise_multiplier})")
        self.clip_norm = float(clip_norm)
        self.noise_multiplier = float(noise_multiplier)
        self.rng = np.random.default_rng(seed)
        self.history: list[dict] = []

    def noise_std(self, n_clients: int) -> float:
        """Per-coordinate std of the noise on the averaged update."""
        return self.noise_multiplier * self.clip_norm / n_clients

    def __call__(self, updates, weights=None):
        u = _check_updates(updates, weights)
        k = u.shape[0]
        norms = np.linalg.norm(u, axis=1)
        clipped = clip_l2(u, self.clip_norm, axis=1)
        mean = clipped.mean(axis=0)
        noise = self.rng.normal(0.0, self.noise_std(k), size=mean.shape) if self.noise_multiplier > 0 else 0.0
        self.history.append(
            {"clip_norm": self.clip_norm, "frac_clipped": float(np.mean(norms > self.clip_norm)),
             "median_norm": float(np.median(norms))}
        )
        return (mean + noise).astype(np.float32)


class AdaptiveClipDPFedAvg(DPFedAvg):
    """DP-FedAvg whose clip norm tracks the ``target_quantile`` of client update norms.

    Each round the server also gets, from each client, the bit ``||u_k|| <= C``; the count is
    noised with std ``count_noise_std`` (Andrew et al. use K/20, the default) and the clip norm
    moves geometrically: ``C <- C * exp(-clip_lr * (b - target_quantile))``.

    ``noise_multiplier`` is the multiplier ``z`` of the whole round (give it to the accountant);
    the update itself gets the larger :meth:`update_noise_multiplier` so that the noised count is
    paid for. It needs ``z < 2 * count_noise_std``: a less noisy count would use up the whole
    budget.
    """

    def __init__(
        self,
        initial_clip: float = 0.1,
        noise_multiplier: float = 1.0,
        target_quantile: float = 0.5,
        clip_lr: float = 0.2,
        count_noise_std: float | None = None,
        seed: int = 0,
    ):
        super().__init__(initial_clip, noise_multiplier, seed)
        if not 0 < target_quantile < 1:
            raise ValueError(f"target_quantile must be in (0, 1) (got {target_quantile})")
        if count_noise_std is not None and not (count_noise_std >= 0 and math.isfinite(count_noise_std)):
            raise ValueError(f"count_noise_std must be a finite number >= 0 or None for K/20 (got {count_noise_std})")
        self.target_quantile = float(target_quantile)
        self.clip_lr = float(clip_lr)
        self.count_noise_std = count_noise_std

    def count_std(self, n_clients: int) -> float:
        """Std of the noise on the clipped count (``count_noise_std``, default ``n_clients / 20``)."""
        return n_clients / 20 if self.count_noise_std is None else float(self.count_noise_std)

    def update_noise_multiplier(self, n_clients: int) -> float:
        """``z_delta = (z^-2 - (2 sigma_b)^-2)^(-1/2)``: the update's share of the round's multiplier ``z``."""
        z = self.noise_multiplier
        if z == 0:
            return 0.0
        sd = self.count_std(n_clients)
        if z >= 2 * sd:
            raise ValueError(
                f"noise_multiplier {z} needs count_noise_std > {z / 2:g} (got {sd:g} for {n_clients} clients): "
                "the noised count would use the whole privacy budget; raise count_noise_std, select more "
                "clients or lower noise_multiplier"
            )
        return (z**-2 - (2 * sd) ** -2) ** -0.5

    def noise_std(self, n_clients: int) -> float:
        """Per-coordinate std of the noise on the averaged update: ``z_delta * C / K``."""
        return self.update_noise_multiplier(n_clients) * self.clip_norm / n_clients

    def __call__(self, updates, weights=None):
        u = _check_updates(updates, weights)
        k = u.shape[0]
        below = np.linalg.norm(u, axis=1) <= self.clip_norm
        out = super().__call__(u, weights)
        self.history[-1]["update_noise_multiplier"] = self.update_noise_multiplier(k)
        sd = self.count_std(k)
        b = (below.sum() + (self.rng.normal(0.0, sd) if sd > 0 else 0.0)) / k
        self.clip_norm = float(self.clip_norm * math.exp(-self.clip_lr * (b - self.target_quantile)))
        return out
