"""A numpy reference of the Lab 2 on-device network: the host twin of ``odl_mlp.cpp`` (numpy only).

The Lab 2 board trains a small network *from scratch* on per-utterance speech features:

    x (24: mean + std of 12 LPC cepstra, :func:`odlkit.audio.utterance_summary`)
    -> z = (x - mean) * inv_std          standardizer learned on the board (Welford, below)
    -> h = relu(z @ W1 + b1)             hidden Dense(H) + ReLU, W1 (24, H) Keras layout
    -> p = softmax(h @ W2 + b2)          head, W2 (H, C)

Conventions (identical to the engine, like :mod:`odlkit.head` for Lab 1):

- initial weights: ``W1`` He-uniform ``U(-sqrt(6 / fan_in), +sqrt(6 / fan_in))`` drawn from the
  engine's xorshift32 (:func:`he_uniform_xorshift`, bit-identical to the board), ``b1``, ``W2``,
  ``b2`` zero (a zero head is fine: ``W1`` already breaks the symmetry, and a class added on the
  board gets a zero column, as in Lab 1);
- the standardizer is updated (Welford, float32) with every sample the board stores and is frozen
  during a train call; ``inv_std = 1 / sqrt(M2 / n + 1e-6)``;
- loss = mean softmax cross-entropy of the mini-batch; ``g = grad_sum / B + weight_decay * W``
  (decay on ``W1``/``W2`` only); ``v = momentum * v - lr * g``; ``param += v``; velocities are
  zeroed at the start of every train call; the per-epoch loss/accuracy use the weights before
  each batch's update; the data order is the engine's xorshift32 Fisher-Yates shuffle
  (:class:`odlkit.head.EngineShuffle`);
- ``plan="all"`` trains both layers (backpropagation through the ReLU), ``plan="head"``
  keeps the random hidden layer frozen (a random-features model) and trains ``W2``, ``b2``.

The float32 arithmetic here uses BLAS sums, the board sums left to right: results agree to
rounding (about 1e-6 relative per step), not bit for bit; tests state the tolerance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from odlkit.head import EngineShuffle, EpochLog, softmax, xorshift32, xorshift32_orders
from odlkit.validation import check_two_layer_shapes, check_xy

__all__ = [
    "NORM_EPS",
    "PLANS",
    "rng_seed_weights",
    "he_uniform_xorshift",
    "Standardizer",
    "TwoLayerNet",
]

_F32 = np.float32
NORM_EPS = 1e-6
PLANS = ("all", "head")  # the board's TRAIN plan= values for this network


def rng_seed_weights(seed) -> int:
    """The weight-init generator's state for an engine seed: ``seed ^ 0x5F3759DF`` (0 -> 1), ``odl_mlp.h``."""
    s = (int(seed) ^ 0x5F3759DF) & 0xFFFFFFFF
    return s or 1


def he_uniform_xorshift(fan_in: int, fan_out: int, seed=1) -> np.ndarray:
    """(fan_in, fan_out) float32 He-uniform weights, row-major draws of the engine's xorshift32.

    Each weight: ``u = (r >> 8) * 2^-24`` (r the next xorshift32 value), ``w = (2u - 1) * limit``,
    ``limit = sqrtf(6 / fan_in)``, in float32 exactly as the board computes them.
    """
    state = rng_seed_weights(seed)
    limit = np.sqrt(_F32(6.0) / _F32(fan_in)).astype(_F32)
    out = np.empty(fan_in * fan_out, _F32)
    for i in range(fan_in * fan_out):
        state, r = xorshift32(state)
        u = _F32(r >> 8) * _F32(5.9604644775390625e-08)
        out[i] = (u * _F32(2.0) - _F32(1.0)) * limit
    return out.reshape(fan_in, fan_out)


class Standardizer:
    """Running mean / variance (Welford) of the board's input vectors, float32 like the engine."""

    def __init__(self, dim: int, n: int = 0, mean=None, m2=None) -> None:
        self.dim = int(dim)
        self.n = int(n)
        self.mean: np.ndarray = np.zeros(self.dim, _F32) if mean is None else np.array(mean, _F32)
        self.m2: np.ndarray = np.zeros(self.dim, _F32) if m2 is None else np.array(m2, _F32)
        if self.mean.shape != (self.dim,) or self.m2.shape != (self.dim,):
            raise ValueError(f"Standardizer: mean and m2 must have {self.dim} entries")

    def update(self, x) -> None:
        """Add one vector: ``n += 1; d = x - mean; mean += d / n; M2 += d * (x - mean)``."""
        x = np.asarray(x, _F32).reshape(-1)
        if x.shape != (self.dim,) or not np.all(np.isfinite(x)):
            raise ValueError(f"Standardizer.update: need {self.dim} finite values, got shape {x.shape}")
        self.n += 1
        d = x - self.mean
        self.mean = (self.mean + d / _F32(self.n)).astype(_F32)
        self.m2 = (self.m2 + d * (x - self.mean)).astype(_F32)

    def update_many(self, X) -> None:
        for x in np.asarray(X, _F32):
            self.update(x)

    @property
    def var(self) -> np.ndarray:
        return (self.m2 / _F32(self.n)).astype(_F32) if self.n else np.ones(self.dim, _F32)

    def inv_std(self) -> np.ndarray:
        if self.n == 0:
            return np.ones(self.dim, _F32)
        return (_F32(1.0) / np.sqrt(self.m2 / _F32(self.n) + _F32(NORM_EPS))).astype(_F32)

    def transform(self, X) -> np.ndarray:
        X = np.asarray(X, _F32)
        mean = self.mean if self.n else np.zeros(self.dim, _F32)
        return ((X - mean) * self.inv_std()).astype(_F32)

    def copy(self) -> Standardizer:
        return Standardizer(self.dim, self.n, self.mean.copy(), self.m2.copy())


@dataclass
class TwoLayerNet:
    """Standardizer -> Dense(H) + ReLU -> Dense(C) softmax, with its SGD momentum state."""

    W1: np.ndarray
    b1: np.ndarray
    W2: np.ndarray
    b2: np.ndarray
    class_names: list[str]
    norm: Standardizer
    velocity: dict = field(default_factory=dict)

    def __post_init__(self):
        for k in ("W1", "b1", "W2", "b2"):
            setattr(self, k, np.array(getattr(self, k), _F32))
        check_two_layer_shapes("TwoLayerNet", self.W1, self.b1, self.W2, self.b2, len(self.class_names), self.norm.dim)
        self.class_names = [str(c) for c in self.class_names]
        if not self.velocity:
            self.reset_momentum()

    @classmethod
    def initial(cls, input_dim: int, hidden: int, class_names, seed=1) -> TwoLayerNet:
        """The network a board starts from after reset with engine seed ``seed`` (virtual board: seed + 1)."""
        C = len(class_names)
        return cls(he_uniform_xorshift(input_dim, hidden, seed), np.zeros(hidden, _F32),
                   np.zeros((hidden, C), _F32), np.zeros(C, _F32), list(class_names), Standardizer(input_dim))

    @classmethod
    def from_weights(cls, w) -> TwoLayerNet:
        """From an ``odlkit.weights.MlpWeights`` (``board.get_network()``)."""
        return cls(w.W1, w.b1, w.W2, w.b2, list(w.class_names),
                   Standardizer(w.W1.shape[0], int(w.norm_count), w.norm_mean, w.norm_m2))

    def to_weights(self):
        from odlkit.weights import MlpWeights

        return MlpWeights(self.W1.copy(), self.b1.copy(), self.W2.copy(), self.b2.copy(), list(self.class_names),
                          self.norm.n, self.norm.mean.copy(), self.norm.m2.copy())

    def copy(self) -> TwoLayerNet:
        return TwoLayerNet(self.W1.copy(), self.b1.copy(), self.W2.copy(), self.b2.copy(), list(self.class_names),
                           self.norm.copy(), {k: v.copy() for k, v in self.velocity.items()})

    @property
    def input_dim(self) -> int:
        return int(self.W1.shape[0])

    @property
    def hidden(self) -> int:
        return int(self.W1.shape[1])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def params(self) -> dict:
        return {"W1": self.W1, "b1": self.b1, "W2": self.W2, "b2": self.b2}

    def reset_momentum(self) -> None:
        self.velocity = {k: np.zeros_like(v) for k, v in self.params().items()}

    def add_class(self, name) -> int:
        """A new class: a zero column of W2 and a zero bias, like the board's ADDCLASS."""
        self.W2 = np.concatenate([self.W2, np.zeros((self.hidden, 1), _F32)], axis=1)
        self.b2 = np.concatenate([self.b2, np.zeros(1, _F32)])
        self.class_names.append(str(name))
        self.reset_momentum()
        return self.n_classes - 1

    # ---------------------------------------------------------------- forward / backward
    def forward(self, Z):
        """Standardized inputs ``Z`` (B, D) -> ``(h (B, H) after ReLU, probabilities (B, C))``."""
        Z = np.asarray(Z, _F32)
        h = np.maximum(Z @ self.W1 + self.b1, _F32(0.0))
        return h, softmax(h @ self.W2 + self.b2)

    def gradients(self, Z, y, weight_decay=0.0, plan="all"):
        """``(loss, grads)`` of the mean cross-entropy on one batch of standardized inputs.

        grads: ``W2, b2`` and (``plan="all"``) ``W1, b1``; ``W`` gradients include
        ``weight_decay * W``. Backward: ``dlogits = (P - Y) / B``, ``dW2 = h^T dlogits``,
        ``dh = dlogits W2^T * [h > 0]``, ``dW1 = Z^T dh``.
        """
        if plan not in PLANS:
            raise ValueError(f"plan must be one of {PLANS}, got {plan!r}")
        Z, y = check_xy(Z, y, n_classes=self.n_classes, ndim=2)
        h, P = self.forward(Z)
        B = len(y)
        loss = float(-np.mean(np.log(np.maximum(P[np.arange(B), y], 1e-38))))
        d = P.copy()
        d[np.arange(B), y] -= 1.0
        d = (d / _F32(B)).astype(_F32)
        wd = _F32(weight_decay)
        grads = {"W2": (h.T @ d + wd * self.W2).astype(_F32), "b2": d.sum(axis=0).astype(_F32)}
        if plan == "all":
            dh = (d @ self.W2.T) * (h > 0)
            grads["W1"] = (Z.T @ dh + wd * self.W1).astype(_F32)
            grads["b1"] = dh.sum(axis=0).astype(_F32)
        return loss, grads

    def predict_proba(self, X):
        """Class probabilities of raw (unstandardized) inputs ``X`` (n, D)."""
        return self.forward(self.norm.transform(np.atleast_2d(X)))[1]

    def predict(self, X):
        return self.predict_proba(X).argmax(axis=1)

    def evaluate(self, X, y) -> dict:
        X, y = check_xy(np.atleast_2d(X), y, n_classes=self.n_classes, ndim=2)
        P = self.predict_proba(X)
        return {"accuracy": float((P.argmax(1) == y).mean()),
                "loss": float(-np.mean(np.log(np.maximum(P[np.arange(len(y)), y], 1e-38))))}

    # ---------------------------------------------------------------- training
    def step(self, Z, y, lr, momentum=0.9, weight_decay=0.0, plan="all"):
        """One SGD-momentum update on standardized inputs; returns ``(loss, n_correct)`` before it."""
        loss, grads = self.gradients(Z, y, weight_decay, plan)
        _, P = self.forward(Z)
        correct = int((P.argmax(1) == np.asarray(y)).sum())
        mu, lr = _F32(momentum), _F32(lr)
        for k, g in grads.items():
            v = (mu * self.velocity[k] - lr * g).astype(_F32)
            self.velocity[k] = v
            setattr(self, k, (getattr(self, k) + v).astype(_F32))
        return loss, correct

    def fit(self, X, y, epochs=10, lr=0.05, momentum=0.9, weight_decay=0.0, batch_size=8, plan="all",
            order="shuffle", seed=1, callback: Callable[[EpochLog], object] | None = None) -> list[EpochLog]:
        """Train on raw inputs ``X`` (n, D) (standardized with the frozen :attr:`norm`) like the board's TRAIN.

        ``order``: ``"shuffle"`` (the engine's shuffle after a store clear with engine seed
        ``seed``), an :class:`odlkit.head.EngineShuffle` (continue its generator), ``None`` /
        ``"sequential"``, or an (epochs, n) array. Velocities are zeroed first, as on the board.
        """
        if plan not in PLANS:
            raise ValueError(f"plan must be one of {PLANS}, got {plan!r}")
        X, y = check_xy(X, y, n_classes=self.n_classes, ndim=2, sample_shape=(self.input_dim,))
        n, epochs, batch_size = len(X), int(epochs), int(batch_size)
        if epochs < 1 or batch_size < 1 or not (np.isfinite(lr) and lr > 0) or not 0 <= momentum < 1:
            raise ValueError("need epochs >= 1, batch_size >= 1, lr > 0 and 0 <= momentum < 1")
        if isinstance(order, EngineShuffle):
            orders = order.orders(n, epochs)
        elif isinstance(order, str) and order == "shuffle":
            orders = xorshift32_orders(n, epochs, seed)
        elif order is None or (isinstance(order, str) and order == "sequential"):
            orders = np.tile(np.arange(n), (epochs, 1))
        else:
            orders = np.asarray(order, np.int64).reshape(epochs, n)
        Z = self.norm.transform(X)
        self.reset_momentum()
        history: list[EpochLog] = []
        for e in range(epochs):
            total, correct = 0.0, 0
            for start in range(0, n, batch_size):
                bi = orders[e][start : start + batch_size]
                loss, c = self.step(Z[bi], y[bi], lr, momentum, weight_decay, plan)
                total += loss * len(bi)
                correct += c
            log = EpochLog(e + 1, total / n, correct / n)
            history.append(log)
            if callback is not None and callback(log) is False:
                break
        return history
