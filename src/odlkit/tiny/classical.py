"""Classical learners that train online, one chunk of samples at a time, on a device.

- online logistic regression: ``sklearn.linear_model.SGDClassifier(loss="log_loss")`` with
  ``partial_fit``;
- Gaussian naive Bayes: ``sklearn.naive_bayes.GaussianNB.partial_fit`` (running mean/variance);
- nearest class mean (:class:`NearestClassMean`): a running mean per class, predict the closest;
- the neural head of the board (:class:`odlkit.head.Head`) stepped with SGD + momentum.

:func:`online_curves` feeds the same stream to each and records test accuracy after each chunk.
"""

from __future__ import annotations

import numpy as np

from odlkit._quiet import quiet_call

__all__ = ["NearestClassMean", "HeadLearner", "state_bytes", "online_curves", "default_learners"]


class NearestClassMean:
    """Nearest class mean with ``partial_fit``: keeps a sum and a count per class.

    State: ``n_classes x (feature_dim + 1)`` numbers. Classes never seen are never predicted.
    """

    def __init__(self, n_classes: int):
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        self.n_classes = n_classes
        self.sums_: np.ndarray | None = None
        self.counts_ = np.zeros(n_classes, dtype=np.int64)

    def partial_fit(self, X, y):
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.int64)
        if X.ndim != 2 or len(X) != len(y):
            raise ValueError(f"expected X (n, d) and y (n,), got {X.shape} and {y.shape}")
        if len(y) and (y.min() < 0 or y.max() >= self.n_classes):
            raise ValueError(f"labels must be in [0, {self.n_classes}), got [{y.min()}, {y.max()}]")
        if self.sums_ is None:
            self.sums_ = np.zeros((self.n_classes, X.shape[1]))
        np.add.at(self.sums_, y, X)
        self.counts_ += np.bincount(y, minlength=self.n_classes)
        return self

    @property
    def means_(self):
        if self.sums_ is None:
            raise ValueError("NearestClassMean: call partial_fit before predict")
        return self.sums_ / np.maximum(self.counts_, 1)[:, None]

    def predict(self, X):
        X = np.asarray(X, dtype=np.float64)
        d = ((X[:, None, :] - self.means_[None]) ** 2).sum(-1)
        d[:, self.counts_ == 0] = np.inf
        return np.argmin(d, axis=1)

    def score(self, X, y):
        return float(np.mean(self.predict(X) == np.asarray(y)))


class HeadLearner:
    """``odlkit.head.Head`` (the board's softmax head) with a ``partial_fit`` of ``steps`` SGD steps."""

    def __init__(self, feature_dim: int, n_classes: int, lr: float = 0.05, momentum: float = 0.9,
                 steps: int = 5, seed: int = 0):
        from odlkit.head import Head

        self.head = Head.random(feature_dim, n_classes, seed=seed)
        self.lr, self.momentum, self.steps = lr, momentum, steps

    def partial_fit(self, X, y):
        for _ in range(self.steps):
            self.head.step(np.asarray(X, np.float32), np.asarray(y), lr=self.lr, momentum=self.momentum)
        return self

    def predict(self, X):
        return self.head.predict(np.asarray(X, np.float32))


def state_bytes(learner, feature_dim: int, n_classes: int) -> int:
    """Bytes of learner state a device keeps (float32 numbers, int32 counts)."""
    name = type(learner).__name__
    if name == "SGDClassifier":
        return (feature_dim * n_classes + n_classes) * 4  # weights + intercepts (plain SGD)
    if name == "GaussianNB":
        return (2 * feature_dim * n_classes + n_classes) * 4  # means, variances, counts
    if name == "NearestClassMean":
        return (feature_dim * n_classes + n_classes) * 4  # sums, counts
    if name == "HeadLearner":
        return 2 * (feature_dim * n_classes + n_classes) * 4  # weights + momentum
    raise ValueError(f"no state count for {name}")


def default_learners(feature_dim: int, n_classes: int, seed: int = 0) -> dict:
    """The four online learners compared in chapter 2."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.naive_bayes import GaussianNB

    return {
        "logistic regression (SGD)": SGDClassifier(loss="log_loss", alpha=1e-4, random_state=seed),
        "Gaussian naive Bayes": GaussianNB(),
        "nearest class mean": NearestClassMean(n_classes),
        "neural head (SGD+momentum)": HeadLearner(feature_dim, n_classes, seed=seed),
    }


@quiet_call  # GaussianNB's "divide by zero in log" before every class was seen in the stream
def online_curves(learners: dict, X, y, X_test, y_test, chunk: int = 8, n_classes: int | None = None,
                  seed: int = 0):
    """Stream ``(X, y)`` (shuffled) in chunks to every learner's ``partial_fit``; after each chunk
    record the test accuracy. Returns a DataFrame (learner, seen, accuracy)."""
    import pandas as pd

    X = np.asarray(X, np.float32)
    y = np.asarray(y, np.int64)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    classes = np.arange(n_classes if n_classes is not None else int(max(y.max(), np.max(y_test)) + 1))
    order = np.random.default_rng(seed).permutation(len(X))
    rows = []
    for name, learner in learners.items():
        for k in range(0, len(X), chunk):
            idx = order[k:k + chunk]
            if type(learner).__name__ in ("SGDClassifier", "GaussianNB"):
                learner.partial_fit(X[idx], y[idx], classes=classes)
            else:
                learner.partial_fit(X[idx], y[idx])
            acc = float(np.mean(learner.predict(X_test) == y_test))
            rows.append({"learner": name, "seen": min(k + chunk, len(X)), "accuracy": acc})
    return pd.DataFrame(rows)
