"""Small numpy models whose parameters live in ONE flat vector.

Federated learning moves parameter vectors around, so every model here is described by a
*layout*: an ordered list of named tensors packed into a flat float32 vector of length ``D``.
All maths is written for a *batch of models* ``theta`` of shape ``(K, D)`` (one row per client),
so K clients train in lock-step with a few einsums; a single model is simply ``K = 1``.

Two models:

* :class:`SoftmaxRegression` -- ``logits = x W + b`` (convex, the easiest FedAvg case).
* :class:`MLP` -- one hidden ReLU layer, ``logits = relu(x W1 + b1) W2 + b2``.

Both expose ``init(seed)``, ``loss_and_grad(theta, X, y, mask)`` and ``predict(theta, X)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Layout:
    """Named tensors packed into a flat vector: ``names[i]`` has shape ``shapes[i]``."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(int(np.prod(s)) for s in self.shapes)

    @property
    def size(self) -> int:
        return int(sum(self.sizes))

    def slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for name, n in zip(self.names, self.sizes, strict=True):
            out[name] = slice(start, start + n)
            start += n
        return out

    def unflatten(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Views of a ``(K, D)`` batch as ``{name: (K, *shape)}`` (no copy)."""
        theta = np.asarray(theta)
        if theta.shape[-1] != self.size:
            raise ValueError(f"parameter vector has length {theta.shape[-1]}, this model needs {self.size}")
        lead = theta.shape[:-1]
        return {n: theta[..., s].reshape(*lead, *shape) for (n, s), shape in zip(self.slices().items(), self.shapes, strict=True)}

    def mask(self, names) -> np.ndarray:
        """Boolean (D,) mask that is True on the entries of the named tensors."""
        names = [names] if isinstance(names, str) else list(names)
        unknown = set(names) - set(self.names)
        if unknown:
            raise ValueError(f"unknown tensor names {sorted(unknown)}; this layout has {list(self.names)}")
        m = np.zeros(self.size, dtype=bool)
        for n in names:
            m[self.slices()[n]] = True
        return m


def _softmax_xent(logits: np.ndarray, y: np.ndarray, mask: np.ndarray):
    """Mean cross-entropy per model over the masked samples and d loss / d logits.

    logits (K, B, C), y (K, B) int, mask (K, B) float. Returns loss (K,), dlogits (K, B, C).
    """
    z = logits - logits.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    K, B, C = logits.shape
    count = np.maximum(mask.sum(axis=1), 1.0)  # (K,)
    logp_true = np.take_along_axis(z, y[..., None], axis=-1)[..., 0] - np.log(np.exp(z).sum(axis=-1))
    loss = -(logp_true * mask).sum(axis=1) / count
    d = p.copy()
    np.put_along_axis(d, y[..., None], np.take_along_axis(d, y[..., None], axis=-1) - 1.0, axis=-1)
    d *= (mask / count[:, None])[..., None]
    return loss, d


def _as_batch(theta, X, y=None, mask=None):
    theta = np.asarray(theta, dtype=np.float32)
    single = theta.ndim == 1
    if single:
        theta = theta[None]
        X = np.asarray(X)[None]
        if y is not None:
            y = np.asarray(y)[None]
        if mask is not None:
            mask = np.asarray(mask)[None]
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 3:
        raise ValueError(f"X must be (B, F) for one model or (K, B, F) for K models, got shape {X.shape}")
    if mask is None:
        mask = np.ones(X.shape[:2], dtype=np.float32)
    return single, theta, X, y, np.asarray(mask, dtype=np.float32)


class _Model:
    layout: Layout
    n_features: int
    n_classes: int

    @property
    def size(self) -> int:
        return self.layout.size

    def logits(self, theta, X):  # pragma: no cover - abstract
        raise NotImplementedError

    def predict(self, theta, X) -> np.ndarray:
        """Class predictions: theta (D,) + X (B, F) -> (B,), or theta (K, D) + X (K, B, F) -> (K, B)."""
        single, theta, X, _, _ = _as_batch(theta, X)
        out = self.logits(theta, X).argmax(-1)
        return out[0] if single else out

    def accuracy(self, theta, X, y) -> float:
        """Accuracy of one model (theta (D,)) on (X, y)."""
        return float((self.predict(theta, X) == np.asarray(y)).mean()) if len(y) else float("nan")


class SoftmaxRegression(_Model):
    """Multinomial logistic regression ``logits = x W + b`` with optional L2 on W."""

    def __init__(self, n_features: int, n_classes: int, l2: float = 0.0):
        self.n_features, self.n_classes, self.l2 = int(n_features), int(n_classes), float(l2)
        self.layout = Layout(("W", "b"), ((self.n_features, self.n_classes), (self.n_classes,)))

    def init(self, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        p = {"W": rng.normal(0, 0.01, (self.n_features, self.n_classes)), "b": np.zeros(self.n_classes)}
        return np.concatenate([p[n].ravel() for n in self.layout.names]).astype(np.float32)

    def logits(self, theta, X):
        p = self.layout.unflatten(theta)
        return np.einsum("kbf,kfc->kbc", X, p["W"]) + p["b"][:, None, :]

    def loss_and_grad(self, theta, X, y, mask=None):
        """Mean loss and gradient for K models at once (or one model if theta is 1-D)."""
        single, theta, X, y, mask = _as_batch(theta, X, y, mask)
        p = self.layout.unflatten(theta)
        loss, d = _softmax_xent(self.logits(theta, X), y, mask)
        gW = np.einsum("kbf,kbc->kfc", X, d) + self.l2 * p["W"]
        gb = d.sum(axis=1)
        if self.l2:
            loss = loss + 0.5 * self.l2 * (p["W"] ** 2).sum(axis=(1, 2))
        g = np.concatenate([gW.reshape(len(theta), -1), gb], axis=1).astype(np.float32)
        return (loss[0], g[0]) if single else (loss, g)


class MLP(_Model):
    """One hidden ReLU layer: ``relu(x W1 + b1) W2 + b2``. ``W2, b2`` is the *head*."""

    def __init__(self, n_features: int, n_classes: int, hidden: int = 32, l2: float = 0.0):
        self.n_features, self.n_classes, self.hidden, self.l2 = int(n_features), int(n_classes), int(hidden), float(l2)
        F, H, C = self.n_features, self.hidden, self.n_classes
        self.layout = Layout(("W1", "b1", "W2", "b2"), ((F, H), (H,), (H, C), (C,)))

    def init(self, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        F, H, C = self.n_features, self.hidden, self.n_classes
        p = {
            "W1": rng.normal(0, np.sqrt(2.0 / F), (F, H)),
            "b1": np.zeros(H),
            "W2": rng.normal(0, np.sqrt(1.0 / H), (H, C)),
            "b2": np.zeros(C),
        }
        return np.concatenate([p[n].ravel() for n in self.layout.names]).astype(np.float32)

    def _forward(self, theta, X):
        p = self.layout.unflatten(theta)
        pre = np.einsum("kbf,kfh->kbh", X, p["W1"]) + p["b1"][:, None, :]
        h = np.maximum(pre, 0.0)
        return p, pre, h, np.einsum("kbh,khc->kbc", h, p["W2"]) + p["b2"][:, None, :]

    def logits(self, theta, X):
        return self._forward(theta, X)[3]

    def loss_and_grad(self, theta, X, y, mask=None):
        single, theta, X, y, mask = _as_batch(theta, X, y, mask)
        p, pre, h, logits = self._forward(theta, X)
        loss, d = _softmax_xent(logits, y, mask)
        gW2 = np.einsum("kbh,kbc->khc", h, d) + self.l2 * p["W2"]
        gb2 = d.sum(axis=1)
        dh = np.einsum("kbc,khc->kbh", d, p["W2"]) * (pre > 0)
        gW1 = np.einsum("kbf,kbh->kfh", X, dh) + self.l2 * p["W1"]
        gb1 = dh.sum(axis=1)
        if self.l2:
            loss = loss + 0.5 * self.l2 * ((p["W1"] ** 2).sum(axis=(1, 2)) + (p["W2"] ** 2).sum(axis=(1, 2)))
        K = len(theta)
        g = np.concatenate([gW1.reshape(K, -1), gb1, gW2.reshape(K, -1), gb2], axis=1).astype(np.float32)
        return (loss[0], g[0]) if single else (loss, g)
