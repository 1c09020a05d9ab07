"""Input checks shared by every estimator in the kit (scikit-learn's ``utils/validation.py`` is
the model): one function per kind of input, so bad data fails the same way, with the same
message, whichever function it was given to. numpy only (``odlkit.head`` and ``odlkit.board``
use it without TensorFlow).
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_labels", "check_two_layer_shapes", "check_updates", "check_xy"]


def check_labels(y, n_classes: int | None = None) -> np.ndarray:
    """``y`` as a 1-D int64 array of class indices (integral floats accepted, a (n, 1) column raveled)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"labels must be a 1-D array of class indices, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if y.dtype.kind in "fb" and np.all(np.isfinite(y)) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        elif y.size:
            raise ValueError(f"labels must be integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if n_classes is not None and y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must be in [0, {n_classes}) for a head with {n_classes} classes; "
                         f"got range [{y.min()}, {y.max()}]")
    return y


def check_xy(X, y, *, n_classes: int | None = None, ndim: int | None = None, sample_shape=None,
             shape_hint: str = ""):
    """``(X float32, y int64)`` after checking they describe the same labelled samples.

    ``ndim``: required number of dimensions of ``X`` (2 for feature matrices);
    ``sample_shape``: required shape of one sample (a model's input shape without the batch);
    ``shape_hint`` is appended to that error (how to convert the data);
    ``n_classes``: labels must lie in ``[0, n_classes)``.
    """
    X = np.asarray(X, dtype=np.float32)
    if ndim is not None and X.ndim != ndim:
        what = "(n_samples, feature_dim)" if ndim == 2 else f"with {ndim} dimensions"
        raise ValueError(f"X must be a {ndim}-D array {what}, got shape {X.shape}")
    y = check_labels(y)
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} samples but y has {len(y)} labels: give one label per sample")
    if len(X) == 0:
        raise ValueError("no samples: X is empty (record or add samples first)")
    if sample_shape is not None and tuple(X.shape[1:]) != tuple(sample_shape):
        raise ValueError(f"inputs have shape {X.shape[1:]} but the model expects {tuple(sample_shape)}"
                         + (f"; {shape_hint}" if shape_hint else ""))
    return X, check_labels(y, n_classes)


def check_updates(updates, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """``(updates (K, D), weights (K,) float64)`` for an aggregation rule ``(updates, weights) -> [D]``.

    ``weights`` are the clients' sample counts ``n_k``; ``None`` means one each (rules that
    ignore sizes). NaN/inf updates are passed through (a diverged round must show as such in a
    robustness table); rules whose guarantees need finite updates check that themselves.
    """
    updates = np.asarray(updates)
    if updates.ndim != 2:
        raise ValueError(f"updates must be a (K clients, D parameters) array, got shape {updates.shape}")
    weights = np.ones(len(updates)) if weights is None else np.asarray(weights, dtype=np.float64)
    if weights.shape != (updates.shape[0],):
        raise ValueError(f"weights must have one entry per client: expected shape ({updates.shape[0]},), "
                         f"got {weights.shape}")
    if len(weights) == 0:
        raise ValueError("no client updates to aggregate (K = 0): every selected client dropped out?")
    if np.any(weights < 0) or not np.isfinite(weights).all() or weights.sum() <= 0:
        raise ValueError(f"weights must be finite, >= 0 and not all 0 (sample counts n_k), got {weights}")
    return updates, weights


def check_two_layer_shapes(owner: str, W1, b1, W2, b2, n_classes: int, input_dim: int) -> None:
    """The parameters of Lab 2's two-layer network (standardizer -> Dense(H) + ReLU -> Dense(C)) chain:
    W1 (D, H), b1 (H,), W2 (H, C), b2 (C,), with C = ``n_classes`` and D = ``input_dim`` (the
    standardizer's size). ``owner`` names the object in the error (``MlpWeights``, ``TwoLayerNet``)."""
    W1, b1, W2, b2 = (np.asarray(a) for a in (W1, b1, W2, b2))
    if W1.ndim != 2 or W2.ndim != 2:
        raise ValueError(f"{owner}: W1 and W2 must be 2-D, got {W1.shape} and {W2.shape}")
    d, h = W1.shape
    if b1.shape != (h,) or W2.shape != (h, n_classes) or b2.shape != (n_classes,) or input_dim != d:
        raise ValueError(f"{owner}: shapes do not chain: W1 {W1.shape}, b1 {b1.shape}, W2 {W2.shape}, "
                         f"b2 {b2.shape}, {n_classes} class names, standardizer of {input_dim} inputs")
