"""L2-norm clipping: the one implementation that DP-SGD, DP-FedAvg and clipped aggregation call."""

from __future__ import annotations

import numpy as np


def clip_l2(x: np.ndarray, max_norm: float, axis: int | tuple[int, ...] | None = -1) -> np.ndarray:
    """Scale each slice of ``x`` along ``axis`` down to an L2 norm of at most ``max_norm``.

    Slices already inside the ball are returned unchanged (factor ``min(1, C / ||x||)``).
    ``axis=None`` clips the whole array as one vector; for per-example clipping of a batch of
    flattened gradients ``g`` of shape (batch, dim) use ``clip_l2(g, C, axis=1)``.
    """
    if not np.isfinite(max_norm) or max_norm <= 0:
        raise ValueError(f"max_norm must be a positive finite number, got {max_norm!r}")
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    norms = np.sqrt(np.sum(np.square(x), axis=axis, keepdims=axis is not None))
    factor = np.minimum(1.0, max_norm / np.maximum(norms, np.finfo(x.dtype).tiny))
    return x * factor.astype(x.dtype)


def l2_norms(x: np.ndarray, axis: int | tuple[int, ...] | None = -1) -> np.ndarray:
    """L2 norms of the slices of ``x`` along ``axis`` (the quantity ``clip_l2`` bounds)."""
    return np.sqrt(np.sum(np.square(np.asarray(x, dtype=np.float64)), axis=axis))
