"""L2 clipping: the one implementation used by DP-SGD, DP-FedAvg and clipped aggregation.

numpy only (no TensorFlow import), so boards, FL servers and notebooks can all call it.
"""

from __future__ import annotations

import numpy as np


def clip_l2(x, max_norm, axis=-1):
    """Scale each slice of ``x`` along ``axis`` so that its L2 norm is at most ``max_norm``.

    Slices already inside the ball are returned unchanged (factor ``min(1, max_norm / norm)``).
    ``max_norm=np.inf`` disables clipping. ``axis=None`` clips the whole array as one vector.
    Returns a new float array; ``x`` is not modified.
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    max_norm = float(max_norm)
    if not max_norm > 0 or np.isnan(max_norm):
        raise ValueError(f"clip_l2: max_norm must be > 0 (got {max_norm}); use np.inf to disable clipping")
    if np.isinf(max_norm):
        return x.copy()
    norms = np.sqrt(np.sum(np.square(x, dtype=np.float64), axis=axis, keepdims=True))
    factor = np.minimum(1.0, max_norm / np.maximum(norms, 1e-300))
    return (x * factor).astype(x.dtype, copy=False)
