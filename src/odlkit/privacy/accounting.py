"""Privacy accounting for DP-SGD / DP-FedAvg with Google's ``dp_accounting`` (0.6).

One DP-SGD step on a batch drawn by Poisson sampling with probability ``q`` is the
sampled Gaussian mechanism; ``steps`` of them compose. Both accountants shipped by
``dp_accounting`` are available:

* ``"rdp"``: Renyi DP (Mironov 2017, Mironov et al. 2019), the classic TF-Privacy choice;
  an upper bound, slightly loose.
* ``"pld"``: privacy loss distributions (Koskela et al. / Doroshenko et al. 2022), tighter.

The functions only build the event and ask the accountant: the numbers are the library's.
"""

from __future__ import annotations

import math

import dp_accounting
from dp_accounting import pld, rdp

from odlkit._quiet import quiet_call

ACCOUNTANTS = ("rdp", "pld")
# Below this noise multiplier the PLD accountant's support explodes (seconds and GBs of RAM
# for sigma=0.05) while epsilon is already in the hundreds: we refuse instead of hanging.
PLD_MIN_NOISE = 0.3


def _check(noise_multiplier=None, sampling_rate=None, steps=None, delta=None):
    if noise_multiplier is not None and not (noise_multiplier >= 0 and math.isfinite(noise_multiplier)):
        raise ValueError(f"noise_multiplier must be a finite number >= 0 (got {noise_multiplier})")
    if sampling_rate is not None and not (0 < sampling_rate <= 1):
        raise ValueError(
            f"sampling_rate must be in (0, 1] (got {sampling_rate}); it is batch_size / dataset_size"
        )
    if steps is not None and (int(steps) != steps or steps < 1):
        raise ValueError(f"steps must be a positive integer (got {steps})")
    if delta is not None and not (0 < delta < 1):
        raise ValueError(f"delta must be in (0, 1) (got {delta}); a common choice is 1 / dataset_size")


def make_accountant(accountant: str = "rdp"):
    """A fresh ``dp_accounting`` accountant by name (``"rdp"`` or ``"pld"``)."""
    if accountant == "rdp":
        return rdp.RdpAccountant()
    if accountant == "pld":
        # 1e-3 discretisation: within ~1e-3 of the exact PLD epsilon, fast enough for a sweep.
        return pld.PLDAccountant(value_discretization_interval=1e-3)
    raise ValueError(f"unknown accountant {accountant!r}; choose one of {ACCOUNTANTS}")


def dpsgd_event(noise_multiplier: float, sampling_rate: float, steps: int) -> dp_accounting.DpEvent:
    """The DP event of ``steps`` Poisson-subsampled Gaussian steps."""
    _check(noise_multiplier, sampling_rate, steps)
    return dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(sampling_rate, dp_accounting.GaussianDpEvent(noise_multiplier)),
        int(steps),
    )


@quiet_call  # dp_accounting's "_compute_log_a_frac failed to converge" (an order skipped; the bound holds)
def compute_epsilon(
    noise_multiplier: float, sampling_rate: float, steps: int, delta: float, accountant: str = "rdp"
) -> float:
    """Epsilon spent by DP-SGD with the given noise multiplier, sampling rate and steps at ``delta``.

    ``noise_multiplier=0`` gives ``inf`` (no privacy).
    """
    _check(noise_multiplier, sampling_rate, steps, delta)
    if noise_multiplier == 0:
        return math.inf
    if accountant == "pld" and noise_multiplier < PLD_MIN_NOISE:
        raise ValueError(
            f"noise_multiplier {noise_multiplier} < {PLD_MIN_NOISE}: the PLD accountant would need huge memory "
            "for a meaningless epsilon (hundreds); use accountant='rdp' for such small noise"
        )
    acc = make_accountant(accountant)
    acc.compose(dpsgd_event(noise_multiplier, sampling_rate, steps))
    return float(acc.get_epsilon(delta))


def steps_for(dataset_size: int, batch_size: int, epochs: float) -> tuple[float, int]:
    """``(sampling_rate, steps)`` for ``epochs`` passes with expected batch ``batch_size``."""
    if dataset_size < 1 or batch_size < 1 or batch_size > dataset_size:
        raise ValueError(f"need 1 <= batch_size <= dataset_size (got {batch_size}, {dataset_size})")
    q = batch_size / dataset_size
    return q, max(1, int(math.ceil(epochs * dataset_size / batch_size)))


@quiet_call
def noise_for_epsilon(
    target_epsilon: float,
    sampling_rate: float,
    steps: int,
    delta: float,
    accountant: str = "rdp",
    tol: float = 1e-3,
) -> float:
    """Smallest noise multiplier (within ``tol``) whose epsilon is <= ``target_epsilon``.

    Uses ``dp_accounting.calibrate_dp_mechanism`` (bisection on the accountant). The search
    starts at 0.05 (RDP) or :data:`PLD_MIN_NOISE` (PLD); if even that noise meets the target,
    that lower end is returned.
    """
    _check(None, sampling_rate, steps, delta)
    if not (target_epsilon > 0 and math.isfinite(target_epsilon)):
        raise ValueError(f"target_epsilon must be a finite number > 0 (got {target_epsilon})")
    lower = PLD_MIN_NOISE if accountant == "pld" else 0.05
    if compute_epsilon(lower, sampling_rate, steps, delta, accountant) <= target_epsilon:
        return lower
    return float(
        dp_accounting.calibrate_dp_mechanism(
            lambda: make_accountant(accountant),
            lambda sigma: dpsgd_event(sigma, sampling_rate, steps),
            target_epsilon,
            delta,
            bracket_interval=dp_accounting.LowerEndpointAndGuess(lower, max(1.0, 2 * lower)),
            tol=tol,
        )
    )
