"""L2-norm clipping: the one implementation that DP-SGD, DP-FedAvg and clipped aggregation call."""

from __future__ import annotations

import numpy as np


def clip_l2(x: np.ndarray, max_norm: float, axis: int | tuple[int, ...] | None = -1) -> np.ndarray:
    """Scale each slice of ``x`` along ``axis`` down to an L2 norm of at most ``max_norm``.

    Slices already inside the ball are returned unchanged (factor ``min(1, C / ||x||)``).
    ``axis=None`` clips the whole array as one vector; for per-example clipping of a batch of
    flattened gradients ``g`` of shape (batch, dim) use ``clip_l2(g, C, axis=1)``.
    ``max_norm=np.inf`` disables clipping. Returns a new array; ``x`` is not modified.
    """
    max_norm = float(max_norm)
    if not max_norm > 0:  # also rejects NaN
        raise ValueError(f"clip_l2: max_norm must be > 0 (got {max_norm}); use np.inf to disable clipping")
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if np.isinf(max_norm):
        return x.copy()
    norms = np.sqrt(np.sum(np.square(x, dtype=np.float64), axis=axis, keepdims=True))
    factor = np.minimum(1.0, max_norm / np.maximum(norms, 1e-300))
    return (x * factor).astype(x.dtype, copy=False)

