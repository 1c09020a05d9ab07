"""Clients: local training on data that never leaves the device.

The API follows Flower's ``NumPyClient`` so the same object runs in-process and under Flower
(:mod:`odlkit.fl.flower`)::

    client.fit(weights, config)      -> (new_weights, n_samples, metrics)
    client.evaluate(weights, config) -> (loss, n_samples, metrics)

``weights`` is the flat float32 vector of the *shared* parameters (all of them unless the client
keeps a personal layer, see ``shared``). ``config`` carries ``round``, ``local_epochs``, ``lr``,
``batch_size`` and ``seed``.

Local training is :func:`local_sgd`, written for K clients at once: :class:`NumpyClient` calls it
with K = 1 and :class:`ClientPool` (the vectorized simulator) with all clients of a round, so the
two run the same arithmetic and give the same models.

The server (:func:`odlkit.fl.run_fedavg`) talks to every kind of client through one written-down
interface, :class:`Pool`: simulated clients in arrays (:class:`ClientPool`), Flower-style client
objects (:class:`LoopPool`), boards over serial (:class:`odlkit.labs.lab3.BoardPool`). As in
Flower's ``Strategy.aggregate_fit(server_round, results, failures)``, a client that drops out is
not an exception that ends the round but a :class:`Failure` the server records and goes on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

DEFAULT_CONFIG = {"round": 1, "local_epochs": 1, "lr": 0.1, "batch_size": 32, "seed": 0}


def _config(config) -> dict:
    cfg = dict(DEFAULT_CONFIG)
    cfg.update(config or {})
    if cfg["local_epochs"] < 1 or cfg["lr"] <= 0:
        raise ValueError(f"need local_epochs >= 1 and lr > 0, got {cfg['local_epochs']} and {cfg['lr']}")
    return cfg


def batch_schedule(n, client_ids, round_: int, epochs: int, batch_size, seed: int):
    """Minibatch indices for K clients: ``idx (K, S, B)`` and ``valid (K, S, B)``.

    Client k shuffles its ``n[k]`` samples each epoch with ``default_rng([seed, round, id])`` and
    walks through them ``batch_size`` at a time. Clients with fewer steps get all-invalid
    (no-op) steps at the end of each epoch, so K clients can step together.
    ``batch_size=None`` means full-batch gradient descent (one step per epoch).
    """
    n = np.asarray(n, dtype=np.int64)
    B = int(n.max()) if batch_size is None else int(batch_size)
    steps = max(math.ceil(int(m) / B) for m in n)
    K = len(n)
    idx = np.zeros((K, epochs * steps, B), dtype=np.int64)
    valid = np.zeros((K, epochs * steps, B), dtype=bool)
    for k, (m, cid) in enumerate(zip(n, client_ids, strict=True)):
        rng = np.random.default_rng([int(seed), int(round_), int(cid)])
        for e in range(epochs):
            perm = rng.permutation(int(m))
            for s in range(math.ceil(int(m) / B)):
                chunk = perm[s * B:(s + 1) * B]
                idx[k, e * steps + s, :len(chunk)] = chunk
                valid[k, e * steps + s, :len(chunk)] = True
    return idx, valid


def local_sgd(model, theta, X, y, n, client_ids, config, trainable=None):
    """Run ``local_epochs`` of minibatch SGD for K clients at once.

    theta (K, D) start models; X (K, N, F) and y (K, N) padded local data, client k owning the
    first ``n[k]`` rows; ``trainable`` an optional (D,) mask of parameters that may change.
    Returns the trained (K, D) models and the mean training loss of the last epoch per client.
    """
    cfg = _config(config)
    theta = np.array(theta, dtype=np.float32, copy=True)
    idx, valid = batch_schedule(n, client_ids, cfg["round"], int(cfg["local_epochs"]), cfg["batch_size"], cfg["seed"])
    K, S, _ = idx.shape
    rows = np.arange(K)[:, None]
    losses = np.zeros((S, K))
    for s in range(S):
        m = valid[:, s].astype(np.float32)
        active = m.sum(axis=1) > 0
        if not active.any():
            continue
        loss, g = model.loss_and_grad(theta, X[rows, idx[:, s]], y[rows, idx[:, s]], m)
        g *= active[:, None]  # an all-padding step is a no-op (also for the L2 term)
        if trainable is not None:
            g *= trainable
        theta -= np.float32(cfg["lr"]) * g
        losses[s] = np.where(active, loss, np.nan)
    steps = S // int(cfg["local_epochs"])
    with np.errstate(all="ignore"):
        last = np.nanmean(losses[-steps:], axis=0) if S else np.zeros(K)
    return theta, last


def pad_clients(datasets):
    """Stack a list of ``(X_k, y_k)`` into padded ``X (K, N, F)``, ``y (K, N)`` and sizes ``n (K,)``."""
    if not datasets:
        raise ValueError("no client data given")
    n = np.array([len(y) for _, y in datasets], dtype=np.int64)
    if n.min() < 1:
        raise ValueError(f"every client needs at least one sample; sizes are {n.tolist()}")
    F = np.asarray(datasets[0][0]).reshape(len(datasets[0][1]), -1).shape[1]
    X = np.zeros((len(n), int(n.max()), F), dtype=np.float32)
    Y = np.zeros((len(n), int(n.max())), dtype=np.int64)
    for k, (x, yy) in enumerate(datasets):
        x = np.asarray(x, dtype=np.float32).reshape(len(yy), -1)
        if x.shape[1] != F:
            raise ValueError(f"client {k} has {x.shape[1]} features, client 0 has {F}: flatten/extract features first")
        X[k, :len(yy)], Y[k, :len(yy)] = x, yy
    return X, Y, n


class NumpyClient:
    """One client holding local ``(X, y)`` (and optionally a local test split).

    ``shared`` names the tensors exchanged with the server (default: all). Tensors not shared
    are *personal*: they start from the client's own init and stay on the device.
    """

    def __init__(self, model, X, y, cid: int = 0, X_test=None, y_test=None, shared=None, init_seed: int = 0):
        X = np.asarray(X, dtype=np.float32).reshape(len(y), -1)
        if len(X) == 0:
            raise ValueError(f"client {cid} has no training samples")
        self.model, self.X, self.y, self.cid = model, X, np.asarray(y, dtype=np.int64), int(cid)
        self.X_test = None if X_test is None else np.asarray(X_test, dtype=np.float32).reshape(len(y_test), -1)
        self.y_test = None if y_test is None else np.asarray(y_test, dtype=np.int64)
        self.shared_mask = np.ones(model.size, bool) if shared is None else model.layout.mask(shared)
        self.theta = model.init(init_seed)  # full local model; personal entries persist across rounds

    def _load(self, weights):
        weights = np.asarray(weights, dtype=np.float32)
        if weights.shape != (int(self.shared_mask.sum()),):
            raise ValueError(f"client {self.cid} expected {int(self.shared_mask.sum())} shared weights, got {weights.shape}")
        theta = self.theta.copy()
        theta[self.shared_mask] = weights
        return theta

    def get_parameters(self, config=None) -> np.ndarray:
        return self.theta[self.shared_mask].copy()

    def fit(self, weights, config=None):
        theta = self._load(weights)
        new, loss = local_sgd(self.model, theta[None], self.X[None], self.y[None], [len(self.y)], [self.cid], config)
        self.theta = new[0]
        return self.theta[self.shared_mask].copy(), len(self.y), {"train_loss": float(loss[0])}

    def evaluate(self, weights, config=None):
        """Loss and accuracy of the received model (with this client's personal layers) on local test data."""
        X, y = (self.X_test, self.y_test) if self.y_test is not None else (self.X, self.y)
        theta = self._load(weights)
        loss, _ = self.model.loss_and_grad(theta, X, y)
        return float(loss), len(y), {"accuracy": self.model.accuracy(theta, X, y)}


# ------------------------------------------------------------------ the pool protocol
@dataclass
class FitResults:
    """What the clients that finished a round's local training sent back (row k = ``ids[k]``)."""

    ids: np.ndarray                      # (K,) client ids, a subset of the requested ids, in their order
    weights: np.ndarray                  # (K, D) each client's trained shared weights
    n: np.ndarray                        # (K,) training samples (the FedAvg weights)
    loss: np.ndarray                     # (K,) final local training loss (NaN if not reported)
    bytes_up: np.ndarray | None = None   # (K,) bytes client -> server as measured on the link, if measured
    bytes_down: np.ndarray | None = None  # (K,) bytes server -> client as measured on the link

    def __post_init__(self):
        self.ids = np.asarray(self.ids, dtype=np.int64).reshape(-1)
        self.weights = np.asarray(self.weights, dtype=np.float32)
        if self.weights.ndim != 2 or len(self.weights) != len(self.ids):
            raise ValueError(f"FitResults for {len(self.ids)} clients need weights (K, D), got {self.weights.shape}")
        self.n = np.asarray(self.n, dtype=np.int64).reshape(-1)
        self.loss = np.asarray(self.loss, dtype=float).reshape(-1)
        if not len(self.n) == len(self.loss) == len(self.ids):
            raise ValueError(f"FitResults for {len(self.ids)} clients got {len(self.n)} sizes and {len(self.loss)} losses")
        for name in ("bytes_up", "bytes_down"):
            v = getattr(self, name)
            if v is not None:
                v = np.asarray(v, dtype=np.int64).reshape(-1)
                if len(v) != len(self.ids):
                    raise ValueError(f"FitResults for {len(self.ids)} clients got {len(v)} {name} counts")
                setattr(self, name, v)

    @classmethod
    def empty(cls, dim: int) -> FitResults:
        return cls(np.zeros(0, np.int64), np.zeros((0, dim), np.float32), np.zeros(0, np.int64), np.zeros(0))


@dataclass(frozen=True)
class Failure:
    """A selected client whose update did not arrive this round, and why (for the history)."""

    id: int
    reason: str


@runtime_checkable
class Pool(Protocol):
    """The N clients of a federation, as :func:`odlkit.fl.run_fedavg` sees them.

    ``fit_many(ids, weights, config)`` sends the shared ``weights`` (D,) and the round's
    ``config`` (``round``, ``local_epochs``, ``lr``, ``batch_size``, ``seed`` and any extra keys
    the server was given) to the clients ``ids``; each trains locally. It returns
    ``(results, failures)``: a :class:`FitResults` for the clients that finished and one
    :class:`Failure` for each client that did not (timed out, disconnected). It must not raise
    for a client dropping out; it raises only for a mistake of the caller.
    ``evaluate_many(ids, weights)`` returns the accuracy (K,) of ``weights`` on each client's own
    data and the number of samples (K,) behind it; NaN accuracy for a client that could not answer.
    """

    def __len__(self) -> int: ...

    @property
    def sizes(self) -> np.ndarray: ...

    def fit_many(self, ids, weights, config) -> tuple[FitResults, list[Failure]]: ...

    def evaluate_many(self, ids, weights) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class ManagedPool(Pool, Protocol):
    """A :class:`Pool` whose clients have names, can be offline, and describe themselves.

    ``available()`` is each client's probability of being online this round (1/0 for a board
    that is connected / was taken offline); :func:`~odlkit.fl.select_clients` picks only online
    clients. ``describe()`` is merged into ``History.config``.
    """

    names: list[str]

    def available(self) -> np.ndarray: ...

    def describe(self) -> dict: ...


class ClientPool:
    """All clients of a simulation in padded arrays: trains the K clients of a round in one batch.

    ``train`` is a list of ``(X_k, y_k)``; ``test`` an optional list of local test sets.
    Same behaviour as a list of :class:`NumpyClient` (same shuffles, same arithmetic).
    """

    def __init__(self, model, train, test=None, shared=None, init_seed: int = 0):
        self.model = model
        self.X, self.y, self.n = pad_clients(train)
        self.test = None if test is None else pad_clients(test)
        if self.test is not None and len(self.test[2]) != len(self.n):
            raise ValueError(f"{len(self.n)} training sets but {len(self.test[2])} test sets")
        self.shared_mask = np.ones(model.size, bool) if shared is None else model.layout.mask(shared)
        self.theta = np.tile(model.init(init_seed), (len(self.n), 1))  # (N, D) personal state

    def __len__(self) -> int:
        return len(self.n)

    @property
    def sizes(self) -> np.ndarray:
        return self.n.copy()

    def fit_many(self, ids, weights, config):
        ids = np.asarray(ids, dtype=np.int64)
        theta = self.theta[ids].copy()
        theta[:, self.shared_mask] = weights
        new, loss = local_sgd(self.model, theta, self.X[ids], self.y[ids], self.n[ids], ids, config)
        self.theta[ids] = new
        return FitResults(ids, new[:, self.shared_mask], self.n[ids].copy(), loss), []

    def evaluate_many(self, ids, weights):
        """Accuracy (K,) and number of test samples (K,) of the global weights on each client."""
        ids = np.asarray(ids, dtype=np.int64)
        X, y, n = self.test if self.test is not None else (self.X, self.y, self.n)
        theta = self.theta[ids].copy()
        theta[:, self.shared_mask] = weights
        pred = self.model.predict(theta, X[ids])
        valid = np.arange(X.shape[1])[None, :] < n[ids][:, None]
        acc = ((pred == y[ids]) & valid).sum(axis=1) / n[ids]
        return acc, n[ids].copy()


class LoopPool:
    """Adapter: a list of ``Client`` objects seen through the :class:`ClientPool` interface.

    Calls ``fit``/``evaluate`` one client at a time -- the readable reference the vectorized
    pool is tested against, and the way to plug in any object with Flower's client API.
    ``dropouts``: exception types that mean "this client dropped out" (reported as a
    :class:`Failure`, the round goes on); any other exception is a bug and propagates.
    """

    def __init__(self, clients, dropouts: tuple[type[BaseException], ...] = ()):
        self.clients = list(clients)
        if not self.clients:
            raise ValueError("no clients given")
        self.dropouts = tuple(dropouts)

    def __len__(self) -> int:
        return len(self.clients)

    @property
    def sizes(self) -> np.ndarray:
        return np.array([len(c.y) if hasattr(c, "y") else 1 for c in self.clients])

    def fit_many(self, ids, weights, config):
        done, results, failures = [], [], []
        for i in ids:
            try:
                results.append(self.clients[int(i)].fit(weights, config))
            except self.dropouts as e:
                failures.append(Failure(int(i), f"{type(e).__name__}: {e}"))
                continue
            done.append(int(i))
        if not results:
            return FitResults.empty(np.asarray(weights).size), failures
        W = np.stack([np.asarray(w, dtype=np.float32) for w, _, _ in results])
        n = np.array([m for _, m, _ in results], dtype=np.int64)
        loss = np.array([met.get("train_loss", np.nan) for _, _, met in results])
        return FitResults(done, W, n, loss), failures

    def evaluate_many(self, ids, weights):
        res = [self.clients[i].evaluate(weights, {}) for i in ids]
        return np.array([r[2]["accuracy"] for r in res]), np.array([r[1] for r in res])
