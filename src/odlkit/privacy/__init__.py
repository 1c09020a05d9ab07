"""Differential privacy for on-device and federated learning (chapter 4).

* :mod:`~odlkit.privacy.dpsgd`: DP-SGD for small Keras models (:class:`DPSGD`, :func:`privatize`).
* :mod:`~odlkit.privacy.accounting`: epsilon for a run and noise for a target epsilon
  (``dp_accounting`` RDP and PLD accountants).
* :mod:`~odlkit.privacy.membership`: membership inference (loss threshold, shadow models, TPR at low FPR,
  label-free thresholds).
* :mod:`~odlkit.privacy.federated`: DP-FedAvg aggregators (fixed and adaptive clipping).
* :mod:`~odlkit.privacy.secagg`: secure aggregation with pairwise additive masks.

TensorFlow is imported lazily (only by :class:`DPSGD`).
"""

from odlkit.privacy.accounting import compute_epsilon, dpsgd_event, noise_for_epsilon, steps_for
from odlkit.privacy.dpsgd import DPSGD, poisson_batches, privatize, sgd_step_fn
from odlkit.privacy.federated import AdaptiveClipDPFedAvg, DPFedAvg
from odlkit.privacy.membership import (
    apply_threshold,
    attack_metrics,
    loss_threshold_attack,
    per_example_loss,
    shadow_model_attack,
    threshold_at_fpr,
    tpr_at_fpr,
)
from odlkit.privacy.secagg import SecureAggregator, decode, encode, mask_update, pairwise_seeds

__all__ = [
    "DPSGD", "AdaptiveClipDPFedAvg", "DPFedAvg", "SecureAggregator", "apply_threshold", "attack_metrics",
    "compute_epsilon",
    "decode", "dpsgd_event", "encode", "loss_threshold_attack", "mask_update", "noise_for_epsilon",
    "pairwise_seeds", "per_example_loss", "poisson_batches", "privatize", "sgd_step_fn",
    "shadow_model_attack", "steps_for", "threshold_at_fpr", "tpr_at_fpr",
]
