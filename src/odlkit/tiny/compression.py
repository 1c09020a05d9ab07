"""Data compression for on-device training: store fewer, smaller samples.

A device that keeps a training buffer can store raw windows (T x C floats), the backbone's
features (F floats), PCA-projected features (k floats) and quantize any of them to int8.
:func:`storage_curve` trains the same learner on each stored form and reports bytes per stored
sample against accuracy; :func:`sample_complexity` gives accuracy against samples per class.
"""

from __future__ import annotations

import numpy as np

__all__ = ["bytes_per_sample", "quantize_int8", "PCACompressor", "storage_curve", "sample_complexity"]


def bytes_per_sample(shape, dtype: str = "float32") -> int:
    """Bytes to store one sample of ``shape`` in ``dtype`` (float32: 4, int8: 1 + nothing)."""
    size = int(np.prod(shape))
    if dtype == "float32":
        return 4 * size
    if dtype == "int8":
        return size
    raise ValueError(f"dtype must be 'float32' or 'int8', got {dtype!r}")


def quantize_int8(X, scale: float | None = None):
    """Symmetric int8 quantization ``round(X / s)`` with ``s = max|X| / 127`` (or a given scale).

    Returns ``(q, s)``; dequantize with ``q * s``. One scale for the whole buffer: the device
    stores it once (4 bytes), not per sample."""
    X = np.asarray(X, np.float32)
    s = float(np.max(np.abs(X))) / 127.0 if scale is None else float(scale)
    if not s > 0:
        s = 1.0
    return np.clip(np.round(X / s), -127, 127).astype(np.int8), s


class PCACompressor:
    """PCA fitted on the host (e.g. on source-task features), applied on the device: a k x F
    matrix and a mean, stored once in flash."""

    def __init__(self, k: int):
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k

    def fit(self, X):
        from sklearn.decomposition import PCA

        X = np.asarray(X, np.float32)
        if self.k > min(X.shape):
            raise ValueError(f"k={self.k} exceeds min(n_samples, n_features)={min(X.shape)}")
        self.pca_ = PCA(self.k, random_state=0).fit(X)
        return self

    def transform(self, X):
        return self.pca_.transform(np.asarray(X, np.float32)).astype(np.float32)

    @property
    def explained_variance(self) -> float:
        return float(self.pca_.explained_variance_ratio_.sum())


def _fit_score(make_learner, Xtr, ytr, Xte, yte):
    m = make_learner()
    m.fit(Xtr, ytr)
    return float(np.mean(m.predict(Xte) == yte))


def default_learner():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def storage_curve(forms: dict, y_train, y_test, make_learner=default_learner):
    """``forms``: ``{name: (X_train_stored, X_test_stored, bytes_per_sample)}``; train the learner
    on each (int8 forms are dequantized by the caller or used as is) and return a DataFrame
    (form, bytes_per_sample, accuracy, samples_in_16KiB)."""
    import pandas as pd

    rows = []
    for name, (Xtr, Xte, nbytes) in forms.items():
        Xtr = np.asarray(Xtr, np.float32).reshape(len(Xtr), -1)
        Xte = np.asarray(Xte, np.float32).reshape(len(Xte), -1)
        rows.append({"form": name, "bytes_per_sample": int(nbytes),
                     "accuracy": _fit_score(make_learner, Xtr, y_train, Xte, y_test),
                     "samples_in_16KiB": 16384 // int(nbytes)})
    return pd.DataFrame(rows)


def sample_complexity(X, y, X_test, y_test, per_class=(1, 2, 4, 8, 16), seeds=(0, 1, 2),
                      make_learner=default_learner):
    """Accuracy against the number of training samples per class (mean and std over seeds)."""
    import pandas as pd

    X = np.asarray(X, np.float32).reshape(len(X), -1)
    X_test = np.asarray(X_test, np.float32).reshape(len(X_test), -1)
    y = np.asarray(y)
    rows = []
    for k in per_class:
        accs = []
        for s in seeds:
            rng = np.random.default_rng(s)
            idx = np.concatenate([rng.choice(np.flatnonzero(y == c), min(k, int(np.sum(y == c))), replace=False)
                                  for c in np.unique(y)])
            accs.append(_fit_score(make_learner, X[idx], y[idx], X_test, y_test))
        rows.append({"per_class": k, "accuracy": float(np.mean(accs)), "std": float(np.std(accs))})
    return pd.DataFrame(rows)
