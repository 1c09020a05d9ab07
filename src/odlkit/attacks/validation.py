"""Input validation: reject samples that do not look like their claimed class.

Cosine distance between a sample's features and the centroid of its (claimed) label, with a
threshold at a high quantile of the distances of clean data. Cheap enough for a
microcontroller: one dot product per class centroid kept in flash.
"""

from __future__ import annotations

import numpy as np


def _unit(X):
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


class CentroidValidator:
    """Fit on clean (features, labels); ``flag(X, y)`` marks samples far from the centroid of label y."""

    def __init__(self, quantile: float = 0.95):
        if not 0 < quantile < 1:
            raise ValueError(f"quantile must be in (0, 1) (got {quantile})")
        self.quantile = quantile

    def fit(self, X, y):
        y = np.asarray(y)
        U = _unit(X)
        self.classes_ = np.unique(y)
        self.centroids_ = np.stack([_unit(U[y == c].mean(0, keepdims=True))[0] for c in self.classes_])
        d = self.distance(X, y)
        self.thresholds_ = np.array([np.quantile(d[y == c], self.quantile) for c in self.classes_])
        return self

    def distance(self, X, y) -> np.ndarray:
        """1 - cos(x, centroid[y]) per sample."""
        y = np.asarray(y)
        pos = np.searchsorted(self.classes_, y)
        if np.any(pos >= len(self.classes_)) or np.any(self.classes_[np.minimum(pos, len(self.classes_) - 1)] != y):
            raise ValueError("a label was not seen in fit(): the validator has no centroid for it")
        return 1.0 - np.sum(_unit(X) * self.centroids_[pos], axis=1)

    def flag(self, X, y) -> np.ndarray:
        y = np.asarray(y)
        return self.distance(X, y) > self.thresholds_[np.searchsorted(self.classes_, y)]
