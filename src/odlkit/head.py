"""A numpy reference of the on-device head: the host-side twin of the board's training code.

The board (``arduino_sketches/ODLEngine``) trains only the last layer, a dense softmax
classifier on the 64 features of the frozen backbone, with mini-batch SGD (momentum and
L2 weight decay on ``W``). This module does the same arithmetic in float32 numpy so a
notebook can download the board's stored features (``board.get_features()``), train the
same head on the host in the same data order and compare the weights.

Conventions (identical to the engine's ``TrainConfig``):

- logits ``z = x @ W + b`` with ``W`` of shape (feature_dim, n_classes) like Keras
  (the device stores it transposed, row-major ``[class][feature]``; ``odlkit.weights``
  converts);
- loss = mean softmax cross-entropy over the mini-batch;
- gradient ``dW = X.T @ (P - Y) / B + weight_decay * W``, ``db = sum(P - Y) / B``
  (no decay on the bias);
- momentum ``v = momentum * v - lr * g``, then ``param += v`` (the velocity is zeroed at the
  start of every ``fit``, like every ``train`` call on the board);
- ``mode="bias"`` updates only ``b`` (the TinyTL idea), ``W`` stays frozen;
- the per-epoch loss and accuracy are averaged over the samples of the epoch, each computed
  with the weights *before* its batch's update (what a device can report for free);
- the last batch of an epoch may be smaller than ``batch_size``;
- the data order: one ``order`` array starts as ``0..n-1`` at every ``fit`` and is shuffled in
  place at the start of every epoch by Fisher-Yates with the engine's xorshift32 generator
  (:class:`EngineShuffle`), whose state carries over from one ``fit`` to the next.

numpy only: no TensorFlow import.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from odlkit.validation import check_xy

__all__ = [
    "softmax",
    "softmax_cross_entropy",
    "softmax_cross_entropy_grad",
    "xorshift32",
    "rng_seed_shuffle",
    "EngineShuffle",
    "xorshift32_orders",
    "EpochLog",
    "Head",
    "confusion_matrix",
]

_F32 = np.float32


def softmax(z):
    """Row-wise softmax of logits ``z`` (n, C), numerically stable (subtracts the row max)."""
    z = np.asarray(z, dtype=_F32)
    if z.ndim != 2:
        raise ValueError(f"softmax: expected logits of shape (n, n_classes), got shape {z.shape}")
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _check_xy(X, y, n_classes=None):
    return check_xy(X, y, n_classes=n_classes, ndim=2)


def softmax_cross_entropy(logits, y):
    """Mean softmax cross-entropy of integer labels ``y`` under ``logits`` (n, C)."""
    logits = np.asarray(logits, dtype=_F32)
    y = np.asarray(y, dtype=np.int64)
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def softmax_cross_entropy_grad(W, b, X, y, weight_decay=0.0):
    """Loss and gradient of the head on one mini-batch.

    Parameters: ``W`` (feature_dim, n_classes), ``b`` (n_classes,), ``X`` (B, feature_dim),
    integer labels ``y`` (B,). Returns ``(loss, dW, db)`` where ``loss`` is the mean
    cross-entropy (without the decay term), ``dW = X.T @ (P - Y) / B + weight_decay * W`` and
    ``db = (P - Y).sum(0) / B``.
    """
    W = np.asarray(W, dtype=_F32)
    b = np.asarray(b, dtype=_F32)
    if W.ndim != 2 or b.shape != (W.shape[1],):
        raise ValueError(f"W must be (feature_dim, n_classes) and b (n_classes,); got W {W.shape}, b {b.shape}")
    X, y = _check_xy(X, y, W.shape[1])
    if X.shape[1] != W.shape[0]:
        raise ValueError(f"features have {X.shape[1]} columns but W expects feature_dim={W.shape[0]}")
    logits = X @ W + b
    P = softmax(logits)
    loss = softmax_cross_entropy(logits, y)
    d = P.copy()
    d[np.arange(len(y)), y] -= 1.0
    d /= _F32(len(y))
    dW = X.T @ d + _F32(weight_decay) * W
    db = d.sum(axis=0)
    return loss, dW.astype(_F32), db.astype(_F32)


def xorshift32(state):
    """One step of the engine's generator (``odl_rng.h``): returns ``(new_state, value)``."""
    x = int(state) & 0xFFFFFFFF
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    return x, x


def rng_seed_shuffle(seed):
    """The shuffle generator's initial state for an engine seed: ``seed * 2654435761 + 1``."""
    s = (int(seed) * 2654435761 + 1) & 0xFFFFFFFF
    return s or 1


class EngineShuffle:
    """The board's per-epoch shuffle, reproduced bit for bit.

    Mirrors ``head_train`` in ``odl_head.cpp``: ``order`` starts as ``0..n-1`` at every train
    call, then at the start of each epoch ``for i = n-1 .. 1: j = xorshift32() % (i + 1)``,
    swap ``order[i], order[j]``. The generator state persists across train calls and is reset
    (from the engine seed, 1 by default) only when the board's store is cleared or reset.
    """

    def __init__(self, seed=1):
        self.seed = int(seed)
        self.state = rng_seed_shuffle(seed)

    def orders(self, n, epochs):
        """The (epochs, n) orders the next train call of ``epochs`` epochs will use."""
        n, epochs = int(n), int(epochs)
        order = list(range(n))
        out = np.empty((epochs, n), dtype=np.int64)
        state = self.state
        for e in range(epochs):
            for i in range(n - 1, 0, -1):
                state, r = xorshift32(state)
                j = r % (i + 1)
                order[i], order[j] = order[j], order[i]
            out[e] = order
        self.state = state
        return out


def xorshift32_orders(n, epochs, seed=1):
    """Orders of a first train call after the board's store was cleared with engine ``seed``."""
    return EngineShuffle(seed).orders(n, epochs)


def confusion_matrix(y_true, y_pred, n_classes):
    """``cm[true, pred]`` counts (same layout as the board's ``evaluate``)."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


@dataclass
class EpochLog:
    """One epoch of training: 1-based ``epoch``, mean ``loss`` and ``accuracy`` (0..1)."""

    epoch: int
    loss: float
    accuracy: float


@dataclass
class Head:
    """Dense softmax head ``z = x @ W + b`` with its SGD momentum state.

    Build one with ``Head.zeros``, ``Head.random`` or ``Head.from_weights`` (a
    ``odlkit.weights.HeadWeights``, e.g. ``board.get_weights()``).
    """

    W: np.ndarray
    b: np.ndarray
    class_names: list[str] = field(default_factory=list)
    vW: np.ndarray | None = None
    vb: np.ndarray | None = None

    def __post_init__(self):
        self.W = np.array(self.W, dtype=_F32)
        self.b = np.array(self.b, dtype=_F32)
        if self.W.ndim != 2 or self.b.shape != (self.W.shape[1],):
            raise ValueError(f"Head: W must be (feature_dim, n_classes) and b (n_classes,); got W {self.W.shape}, b {self.b.shape}")
        if not self.class_names:
            self.class_names = [f"class{i}" for i in range(self.n_classes)]
        self.class_names = [str(c) for c in self.class_names]
        if len(self.class_names) != self.n_classes:
            raise ValueError(f"Head: {len(self.class_names)} class names for {self.n_classes} classes")
        if self.vW is None:
            self.reset_momentum()

    # construction ---------------------------------------------------------------------
    @classmethod
    def zeros(cls, feature_dim, n_classes, class_names=None):
        return cls(np.zeros((feature_dim, n_classes), _F32), np.zeros(n_classes, _F32), list(class_names or []))

    @classmethod
    def random(cls, feature_dim, n_classes, seed=0, scale=None, class_names=None):
        """Glorot-uniform ``W`` (like Keras's Dense default), zero bias, fixed seed."""
        rng = np.random.default_rng(seed)
        limit = np.sqrt(6.0 / (feature_dim + n_classes)) if scale is None else scale
        W = rng.uniform(-limit, limit, size=(feature_dim, n_classes)).astype(_F32)
        return cls(W, np.zeros(n_classes, _F32), list(class_names or []))

    @classmethod
    def from_weights(cls, weights):
        """From an ``odlkit.weights.HeadWeights`` (W (feature_dim, n_classes), b, class_names)."""
        return cls(np.asarray(weights.W), np.asarray(weights.b), list(weights.class_names))

    def to_weights(self):
        """As an ``odlkit.weights.HeadWeights`` (ready for ``encode`` or ``board.set_weights``)."""
        from odlkit.weights import HeadWeights

        return HeadWeights(W=self.W.copy(), b=self.b.copy(), class_names=list(self.class_names))

    def copy(self):
        return Head(self.W.copy(), self.b.copy(), list(self.class_names), self.vW.copy(), self.vb.copy())

    @property
    def feature_dim(self):
        return int(self.W.shape[0])

    @property
    def n_classes(self):
        return int(self.W.shape[1])

    def reset_momentum(self):
        self.vW = np.zeros_like(self.W)
        self.vb = np.zeros_like(self.b)

    def add_class(self, name):
        """Grow the head by one class (zero weights and bias, zero momentum), like the board."""
        self.W = np.concatenate([self.W, np.zeros((self.feature_dim, 1), _F32)], axis=1)
        self.b = np.concatenate([self.b, np.zeros(1, _F32)])
        self.vW = np.concatenate([self.vW, np.zeros((self.feature_dim, 1), _F32)], axis=1)
        self.vb = np.concatenate([self.vb, np.zeros(1, _F32)])
        self.class_names.append(str(name))
        return self.n_classes - 1

    # inference ---------------------------------------------------------------------------
    def _features(self, X):
        X = np.asarray(X, dtype=_F32)
        if X.ndim == 1:
            X = X[None]
        if X.ndim != 2 or X.shape[1] != self.feature_dim:
            raise ValueError(f"expected features of shape (n, {self.feature_dim}), got {X.shape}")
        return X

    def logits(self, X):
        return self._features(X) @ self.W + self.b

    def predict_proba(self, X):
        return softmax(self.logits(X))

    def predict(self, X):
        return self.predict_proba(X).argmax(axis=1)

    def evaluate(self, X, y):
        """``{"accuracy", "loss", "confusion"}`` on features ``X`` and labels ``y``."""
        X, y = _check_xy(self._features(X), y, self.n_classes)
        logits = self.logits(X)
        pred = logits.argmax(axis=1)
        return {
            "accuracy": float((pred == y).mean()),
            "loss": softmax_cross_entropy(logits, y),
            "confusion": confusion_matrix(y, pred, self.n_classes),
        }

    # training ----------------------------------------------------------------------------
    def step(self, X, y, lr, momentum=0.9, weight_decay=0.0, mode="full"):
        """One SGD-with-momentum update on a mini-batch; returns ``(loss, n_correct)`` before it."""
        if mode not in ("full", "bias"):
            raise ValueError(f"mode must be 'full' or 'bias' (bias-only), got {mode!r}")
        X, y = _check_xy(self._features(X), y, self.n_classes)
        logits = X @ self.W + self.b
        correct = int((logits.argmax(axis=1) == y).sum())
        loss, dW, db = softmax_cross_entropy_grad(self.W, self.b, X, y, weight_decay)
        mu, lr = _F32(momentum), _F32(lr)
        if mode == "full":
            self.vW = mu * self.vW - lr * dW
            self.W = self.W + self.vW
        self.vb = mu * self.vb - lr * db
        self.b = self.b + self.vb
        return loss, correct

    def fit(
        self,
        X,
        y,
        epochs=10,
        lr=0.05,
        momentum=0.9,
        weight_decay=0.0,
        batch_size=8,
        mode="full",
        order: str | Sequence | np.ndarray | EngineShuffle | None = "shuffle",
        seed=1,
        reset_momentum=True,
        callback: Callable[[EpochLog], object] | None = None,
        progress=False,
    ) -> list[EpochLog]:
        """Train on features ``X`` (n, feature_dim) and labels ``y`` for ``epochs`` epochs.

        ``order`` fixes the data order, so the host can replay exactly what the board did:

        - ``"shuffle"``: the engine's deterministic xorshift32 shuffle, as on a board whose
          store was just cleared with engine seed ``seed`` (:func:`xorshift32_orders`);
        - an :class:`EngineShuffle`: continue its generator (for a second train call);
        - ``None`` or ``"sequential"``: ``0..n-1`` every epoch;
        - an (epochs, n) array (or a list of per-epoch permutations): use it as given.

        ``callback(EpochLog)`` is called after every epoch; returning ``False`` stops early.
        The velocity is zeroed first (``reset_momentum=True``), as the board does on every train call.
        Returns the list of :class:`EpochLog`.
        """
        X, y = _check_xy(self._features(X), y, self.n_classes)
        n = len(X)
        epochs, batch_size = int(epochs), int(batch_size)
        if epochs < 1 or batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1 (got epochs={epochs}, batch_size={batch_size})")
        if not (np.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a positive number, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if reset_momentum:
            self.reset_momentum()
        if isinstance(order, EngineShuffle):
            orders = order.orders(n, epochs)
        elif isinstance(order, str) and order == "shuffle":
            orders = xorshift32_orders(n, epochs, seed)
        elif order is None or (isinstance(order, str) and order == "sequential"):
            orders = np.tile(np.arange(n), (epochs, 1))
        elif isinstance(order, str):
            raise ValueError(f"order must be 'shuffle', 'sequential', None or an (epochs, n) array; got {order!r}")
        else:
            orders = np.asarray(order, dtype=np.int64)
            if orders.ndim == 1:
                orders = np.tile(orders, (epochs, 1))
            if orders.shape != (epochs, n) or any(sorted(o) != list(range(n)) for o in orders.tolist()):
                raise ValueError(f"order must hold {epochs} permutations of 0..{n - 1} (shape ({epochs}, {n})); got shape {orders.shape}")
        history: list[EpochLog] = []
        epoch_iter = range(epochs)
        if progress:
            from tqdm.auto import tqdm

            epoch_iter = tqdm(epoch_iter, desc="host head", leave=False)
        for e in epoch_iter:
            total_loss, total_correct = 0.0, 0
            idx = orders[e]
            for start in range(0, n, batch_size):
                bi = idx[start : start + batch_size]
                loss, correct = self.step(X[bi], y[bi], lr, momentum, weight_decay, mode)
                total_loss += loss * len(bi)
                total_correct += correct
            log = EpochLog(e + 1, total_loss / n, total_correct / n)
            history.append(log)
            if callback is not None and callback(log) is False:
                break
        return history
