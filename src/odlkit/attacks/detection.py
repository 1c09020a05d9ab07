"""Anomaly detection of client updates or samples: PCA, clustering, CUSUM over a stream.

Each detector returns boolean flags (True = suspicious); :func:`precision_recall` scores them
against the ground truth that the poisoning functions return.
"""

from __future__ import annotations

import numpy as np


def robust_z(scores) -> np.ndarray:
    """(score - median) / (1.4826 * MAD): a z-score that the outliers themselves cannot inflate."""
    s = np.asarray(scores, dtype=np.float64)
    med = np.median(s)
    mad = 1.4826 * np.median(np.abs(s - med))
    return (s - med) / (mad if mad > 0 else (np.std(s) or 1.0))


def pca_scores(updates, n_components: int = 2) -> np.ndarray:
    """Outlyingness of each row: distance from the median in the top principal components (robust-z'd per component)."""
    U = np.asarray(updates, dtype=np.float64)
    if U.ndim != 2 or len(U) < 3:
        raise ValueError(f"need a (n >= 3, D) array of updates or samples, got shape {U.shape}")
    Uc = U - np.median(U, axis=0)
    n_components = min(n_components, min(U.shape))
    _, _, vt = np.linalg.svd(Uc - Uc.mean(0), full_matrices=False)
    proj = Uc @ vt[:n_components].T
    z = np.column_stack([robust_z(proj[:, i]) for i in range(n_components)])
    return np.sqrt(np.sum(z**2, axis=1))


def pca_flags(updates, n_components: int = 2, threshold: float = 3.0) -> np.ndarray:
    """Flag rows whose robust PCA score exceeds ``threshold`` (in MAD units)."""
    return pca_scores(updates, n_components) > threshold * np.sqrt(n_components)


def cluster_flags(updates, seed: int = 0, min_silhouette: float = 0.2) -> np.ndarray:
    """2-means on direction-normalised rows (plus log norm); flag the *smaller* cluster if the split is real.

    A split is real when its silhouette score exceeds ``min_silhouette``: a single honest
    population splits arbitrarily with a silhouette near 0 (~0.01-0.02 for Gaussian clouds),
    while 20% sign-flipped updates give ~0.4. Below the threshold nothing is flagged.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    U = np.asarray(updates, dtype=np.float64)
    if U.ndim != 2 or len(U) < 3:
        raise ValueError(f"need a (n >= 3, D) array to cluster, got shape {U.shape}")
    norms = np.linalg.norm(U, axis=1, keepdims=True)
    V = np.column_stack([U / np.maximum(norms, 1e-12), np.log(norms + 1e-12) / 3])  # direction and size
    lab = KMeans(2, n_init=10, random_state=seed).fit(V).labels_
    if len(np.unique(lab)) < 2 or silhouette_score(V, lab) < min_silhouette:
        return np.zeros(len(U), bool)
    small = np.argmin(np.bincount(lab, minlength=2))
    return lab == small


class CUSUM:
    """One-sided CUSUM change detector (Page 1954) for a stream of scalar statistics.

    ``S_t = max(0, S_{t-1} + (x_t - mu0) / sigma - k)``; alarm when ``S_t > h`` (then reset).
    ``mu0``/``sigma`` come from a clean reference (:meth:`fit`). ``k`` (slack, in sigmas) is half
    the shift you want to detect, ``h`` trades false alarms for delay (h=5, k=0.5: ~1 false
    alarm in ~900 clean steps, a 1-sigma shift detected in ~10 steps).
    """

    def __init__(self, k: float = 0.5, h: float = 5.0, mu0: float | None = None, sigma: float | None = None):
        if k < 0 or h <= 0:
            raise ValueError(f"need k >= 0 and h > 0 (got k={k}, h={h})")
        self.k, self.h, self.mu0, self.sigma = float(k), float(h), mu0, sigma
        self.s = 0.0

    def fit(self, reference):
        r = np.asarray(reference, dtype=np.float64)
        if len(r) < 2:
            raise ValueError("need at least 2 reference values to estimate mean and std")
        self.mu0, self.sigma = float(r.mean()), float(r.std(ddof=1) or 1.0)
        return self

    def update(self, x: float) -> bool:
        if self.mu0 is None or self.sigma is None:
            raise RuntimeError("call fit(reference) first or pass mu0 and sigma")
        self.s = max(0.0, self.s + (float(x) - self.mu0) / self.sigma - self.k)
        if self.s > self.h:
            self.s = 0.0
            return True
        return False

    def run(self, stream) -> np.ndarray:
        """Alarms (bool per step) over a whole stream, statistics S_t in ``self.trace``."""
        alarms, trace = [], []
        for x in stream:
            alarms.append(self.update(x))
            trace.append(self.s)
        self.trace = np.asarray(trace)
        return np.asarray(alarms, bool)


def precision_recall(flags, truth) -> dict:
    """Precision, recall and F1 of boolean ``flags`` against boolean ``truth``."""
    f = np.asarray(flags, bool)
    t = np.asarray(truth, bool)
    if f.shape != t.shape:
        raise ValueError(f"flags {f.shape} and truth {t.shape} must have the same shape")
    tp = int(np.sum(f & t))
    prec = tp / f.sum() if f.sum() else float("nan")
    rec = tp / t.sum() if t.sum() else float("nan")
    f1 = 2 * prec * rec / (prec + rec) if (prec + rec) > 0 else float("nan")
    return {"precision": float(prec), "recall": float(rec), "f1": float(f1), "flagged": int(f.sum()), "true": int(t.sum())}
