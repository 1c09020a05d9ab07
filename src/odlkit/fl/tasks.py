"""Ready-made federated tasks on real data from :mod:`odlkit.data` (features, train/test split).

* :func:`digits_task` -- 8x8 handwritten digits (64 features, 10 classes): split it any way you like.
* :func:`vowels_task` -- Japanese vowels: 9 speakers, each utterance summarised by the mean and
  standard deviation of its 12 LPC channels (24 features). ``groups`` = speaker, a *natural*
  partition (one phone per speaker). The label is also the speaker, so each natural client
  holds one class only: the most extreme label skew there is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FedTask:
    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: list
    groups_train: np.ndarray | None = None
    groups_test: np.ndarray | None = None

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def clients(self, parts):
        """``[(X_k, y_k)]`` for a partition of the training set (list of index arrays)."""
        return [(self.X_train[p], self.y_train[p]) for p in parts]


def _standardize(Xtr, Xte):
    mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-6
    return ((Xtr - mu) / sd).astype(np.float32), ((Xte - mu) / sd).astype(np.float32)


def digits_task(test_size: float = 0.25, seed: int = 0) -> FedTask:
    """Digits, standardized features, stratified train/test split."""
    from odlkit import data

    ds = data.load("digits")
    tr, te = data.train_test_split(ds, test_size=test_size, seed=seed)
    Xtr, Xte = _standardize(np.asarray(tr.X).reshape(len(tr.y), -1), np.asarray(te.X).reshape(len(te.y), -1))
    return FedTask("digits", Xtr, tr.y, Xte, te.y, list(ds.class_names))


def summary_features(X) -> np.ndarray:
    """Per-channel mean and std over time of variable-length series ``[(T_i, C)]`` -> (n, 2C)."""
    return np.stack([np.concatenate([x.mean(0), x.std(0)]) for x in X]).astype(np.float32)


def vowels_task(test_size: float = 0.3, seed: int = 0) -> FedTask:
    """Japanese vowels as 24 summary features; groups = speaker (stratified split keeps every speaker)."""
    from odlkit import data

    ds = data.load("japanese_vowels")
    F = summary_features(ds.X)
    rng = np.random.default_rng(seed)
    te = np.concatenate([rng.choice(np.flatnonzero(ds.y == c), int(round(test_size * (ds.y == c).sum())), replace=False)
                         for c in np.unique(ds.y)])
    tr = np.setdiff1d(np.arange(len(ds.y)), te)
    Xtr, Xte = _standardize(F[tr], F[te])
    return FedTask("japanese_vowels", Xtr, ds.y[tr], Xte, ds.y[te], list(ds.class_names),
                   np.asarray(ds.groups)[tr], np.asarray(ds.groups)[te])
