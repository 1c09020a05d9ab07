"""The FedAvg server loop, client selection and the per-round history.

One round of :func:`run_fedavg`::

    1. select K clients          (uniform / by data size / only the available ones)
    2. broadcast w^t             (bytes down = K x 4 D)
    3. each client trains locally for E epochs from w^t and returns w_k^{t+1}
    4. stragglers drop out       (their update never arrives)
    5. compress the updates      u_k = w_k^{t+1} - w^t -> C(u_k)  (bytes up counted exactly)
    6. aggregate                 delta = aggregator(U, n)   (FedAvg: sum_k n_k/n u_k)
    7. server step               w^{t+1} = w^t + lr * delta  (+ momentum = FedAvgM)

``clients`` is any :class:`~odlkit.fl.client.Pool`: a :class:`~odlkit.fl.client.ClientPool`
(trains the round's clients as one batch), boards (:class:`odlkit.labs.lab3.BoardPool`), or a
list of objects with Flower's client API (``fit``/``evaluate``), run one by one. A selected
client that fails (a board unplugged or timed out) is a :class:`~odlkit.fl.client.Failure` in
the history, not the end of the round. This is the only FedAvg loop of the kit.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from odlkit.fl.aggregators import Aggregator, ServerOptimizer, weighted_mean
from odlkit.fl.client import Failure, FitResults, LoopPool, ManagedPool, Pool
from odlkit.fl.compression import ErrorFeedback, get_codec

SELECTION = ("uniform", "size", "all")


def select_clients(rng, n_clients: int, k: int, method: str = "uniform", sizes=None, availability=None) -> np.ndarray:
    """Choose up to ``k`` distinct clients for this round (sorted ids).

    method ``"uniform"``: every available client equally likely; ``"size"``: probability
    proportional to its number of samples; ``"all"``: every available client.
    ``availability`` (scalar or (n_clients,)) is the probability that a client is online
    (charging, on wifi, idle) this round; only online clients can be picked.
    """
    if method not in SELECTION:
        raise ValueError(f"unknown selection method {method!r}; choose one of {SELECTION}")
    if k < 1:
        raise ValueError(f"clients per round must be >= 1, got {k}")
    pool = np.arange(n_clients)
    if availability is not None:
        p_on = np.broadcast_to(np.asarray(availability, dtype=float), (n_clients,))
        pool = pool[rng.random(n_clients) < p_on]
        if len(pool) == 0:
            return pool
    if method == "all" or k >= len(pool):
        return np.sort(pool)
    p = None
    if method == "size":
        if sizes is None:
            raise ValueError("selection='size' needs the client sizes")
        w = np.asarray(sizes, dtype=float)[pool]
        p = w / w.sum()
    return np.sort(rng.choice(pool, size=k, replace=False, p=p))


@dataclass
class History:
    """What happened in each round (lists indexed by round, round 0 = the initial model).

    Per-client entries are arrays over all N clients (NaN / 0 for a client not involved that
    round); ``names`` names the clients (``"0"``, ``"1"``, ... unless the pool names them).
    """

    round: list = field(default_factory=list)
    global_accuracy: list = field(default_factory=list)   # centralized test set (if given)
    federated_accuracy: list = field(default_factory=list)  # sample-weighted mean of client accuracies
    client_accuracy: list = field(default_factory=list)   # (n_clients,) per round, NaN if not evaluated
    local_accuracy: list = field(default_factory=list)    # (n_clients,) each reporter's own model on the test set
    train_loss: list = field(default_factory=list)
    selected: list = field(default_factory=list)          # ids picked this round
    reported: list = field(default_factory=list)          # how many of them sent an update
    reported_ids: list = field(default_factory=list)      # which
    failures: list = field(default_factory=list)          # [(id, reason)] of the selected that did not report
    bytes_up: list = field(default_factory=list)          # clients -> server (measured on the link if the pool can)
    bytes_down: list = field(default_factory=list)        # server -> clients
    update_bytes: list = field(default_factory=list)      # the updates' size after the codec (what C(u) costs)
    client_bytes: list = field(default_factory=list)      # (n_clients,) up + down per client
    update_norm: list = field(default_factory=list)       # (n_clients,) L2 norm of each update as received, NaN if none
    seconds: list = field(default_factory=list)
    names: list = field(default_factory=list)
    config: dict = field(default_factory=dict)

    @property
    def accuracy(self) -> np.ndarray:
        """Global accuracy if a central test set was given, else the federated accuracy."""
        g = np.array(self.global_accuracy, dtype=float)
        return g if np.isfinite(g).any() else np.array(self.federated_accuracy, dtype=float)

    @property
    def megabytes(self) -> np.ndarray:
        """Cumulative megabytes (10^6 bytes) sent up + down after each round."""
        return np.cumsum(np.array(self.bytes_up) + np.array(self.bytes_down)) / 1e6

    @property
    def dropped(self) -> list[list[tuple[str, str]]]:
        """Per round, ``(name, reason)`` of every selected client whose update did not arrive."""
        return [[(self.name(i), why) for i, why in f] for f in self.failures]

    def name(self, client_id) -> str:
        return self.names[int(client_id)] if self.names else str(int(client_id))

    def names_of(self, ids) -> list[str]:
        """The names of client ids, e.g. ``h.names_of(h.reported_ids[t])``."""
        return [self.name(i) for i in ids]

    def rounds_to(self, target: float) -> int | None:
        """First round whose accuracy reaches ``target`` (None if never)."""
        hit = np.flatnonzero(self.accuracy >= target)
        return int(self.round[hit[0]]) if len(hit) else None

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self), default=lambda o: np.asarray(o).tolist()))

    def summary(self) -> str:
        acc = self.accuracy
        drops = sum(len(f) for f in self.failures)
        return (f"{len(self.round) - 1} rounds, final accuracy {acc[-1]:.3f} (best {np.nanmax(acc):.3f}), "
                f"{self.megabytes[-1]:.3f} MB sent" + (f", {drops} dropped update(s)" if drops else ""))


def _pool(clients) -> Pool:
    if isinstance(clients, Pool):
        return clients
    return LoopPool(clients)


STRAGGLER = "straggler: no update before the round's deadline"


def run_fedavg(clients, init_weights, rounds: int, clients_per_round: int | None = None, *,
               local_epochs: int = 1, lr: float = 0.1, batch_size: int | None = 32, fit_config: dict | None = None,
               aggregator: Aggregator = weighted_mean, server_lr: float = 1.0, server_momentum: float = 0.0,
               selection: str = "uniform", availability=None, dropout=0.0,
               codec=None, error_feedback: bool = False,
               evaluate_fn=None, eval_clients: bool = True, eval_every: int = 1, evaluate_local: bool = False,
               seed: int = 0, progress: bool = False, callback=None) -> tuple[np.ndarray, History]:
    """Federated Averaging. Returns the final shared weights and a :class:`History`.

    ``clients``: a :class:`~odlkit.fl.client.Pool` (simulated clients, boards, ...) or a list
    of objects with Flower's client API. ``init_weights`` is the flat vector of shared
    parameters. ``fit_config``: extra keys sent to every client with the round's config (e.g.
    the boards' ``momentum``). ``evaluate_fn(weights) -> accuracy`` (optional) scores the global
    model on a central test set; ``evaluate_local`` also scores each reporting client's own
    trained model with it; ``eval_clients`` scores the global model on every client's own data
    (federated evaluation). ``dropout`` (scalar or per client) is the probability that a
    selected client never reports back (a straggler past the deadline). A client the pool
    reports as failed is recorded in ``History.failures`` and the round goes on with the others.
    ``callback(round, history)`` is called after every round (live plots, widgets).
    """
    pool = _pool(clients)
    N = len(pool)
    K = N if clients_per_round is None else int(clients_per_round)
    if not 1 <= K <= N:
        raise ValueError(f"clients_per_round must be between 1 and the {N} clients, got {clients_per_round}")
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {rounds}")
    w = np.array(init_weights, dtype=np.float32, copy=True)
    D = w.size
    codec = get_codec(codec)
    ef = ErrorFeedback(codec, N, D) if error_feedback else None
    opt = ServerOptimizer(server_lr, server_momentum)
    rng = np.random.default_rng([seed, 7919])
    p_drop = np.broadcast_to(np.asarray(dropout, dtype=float), (N,))
    sizes = pool.sizes
    managed = pool if isinstance(pool, ManagedPool) else None  # names, availability, description
    hist = History(names=list(managed.names) if managed else [str(i) for i in range(N)],
                   config=dict(rounds=rounds, clients=N, clients_per_round=K, local_epochs=local_epochs, lr=lr,
                               batch_size=batch_size, aggregator=getattr(aggregator, "__name__", type(aggregator).__name__),
                               server_lr=server_lr, server_momentum=server_momentum, selection=selection,
                               codec=getattr(codec, "name", type(codec).__name__), error_feedback=error_feedback,
                               seed=seed, **(fit_config or {}), **(managed.describe() if managed else {})))
    all_ids = np.arange(N)

    def evaluate(t, sel, res, failures, up, down, upd, cbytes, norms, loss, secs):
        hist.round.append(t)
        hist.global_accuracy.append(float(evaluate_fn(w)) if evaluate_fn is not None else float("nan"))
        if eval_clients and (t % eval_every == 0 or t == rounds):
            acc, n = pool.evaluate_many(all_ids, w)
            acc, n = np.asarray(acc, dtype=float), np.asarray(n, dtype=float)
            ok = np.isfinite(acc) & (n > 0)  # a client that could not answer does not count
            hist.client_accuracy.append(acc)
            hist.federated_accuracy.append(float(np.average(acc[ok], weights=n[ok])) if ok.any() else float("nan"))
        else:
            hist.client_accuracy.append(np.full(N, np.nan))
            hist.federated_accuracy.append(float("nan"))
        local = np.full(N, np.nan)
        if evaluate_local and evaluate_fn is not None:
            for i, wk in zip(res.ids, res.weights, strict=True):
                local[i] = float(evaluate_fn(wk))
        hist.local_accuracy.append(local)
        hist.selected.append(sel)
        hist.reported.append(len(res.ids))
        hist.reported_ids.append(res.ids.copy())
        hist.failures.append([(f.id, f.reason) for f in failures])
        hist.bytes_up.append(int(up))
        hist.bytes_down.append(int(down))
        hist.update_bytes.append(int(upd))
        hist.client_bytes.append(cbytes)
        hist.update_norm.append(norms)
        hist.train_loss.append(loss)
        hist.seconds.append(secs)

    none = FitResults.empty(D)
    evaluate(0, np.array([], dtype=int), none, [], 0, 0, 0, np.zeros(N, np.int64), np.full(N, np.nan),
             float("nan"), 0.0)
    iterator = range(1, rounds + 1)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="FedAvg rounds")
    for t in iterator:
        t0 = time.perf_counter()
        online = availability
        if managed:  # only connected clients can be picked
            online = managed.available() if availability is None else managed.available() * np.asarray(availability)
        ids = select_clients(rng, N, K, selection, sizes, online)
        straggle = rng.random(len(ids)) < p_drop[ids] if len(ids) else np.zeros(0, bool)
        failures = [Failure(int(i), STRAGGLER) for i in ids[straggle]]
        res, loss = none, float("nan")
        if (~straggle).any():
            config = {"round": t, "local_epochs": local_epochs, "lr": lr, "batch_size": batch_size, "seed": seed,
                      **(fit_config or {})}
            res, failed = pool.fit_many(ids[~straggle], w, config)
            failures += failed
        norms, cbytes = np.full(N, np.nan), np.zeros(N, np.int64)
        upd = len(res.ids) * codec.nbytes(D)
        if res.bytes_up is not None and res.bytes_down is not None:  # measured on the link
            up, down = int(res.bytes_up.sum()), int(res.bytes_down.sum())
            cbytes[res.ids] = res.bytes_up + res.bytes_down
        else:  # every selected client downloads w^t (4 D bytes); the reporters upload C(u)
            up, down = upd, len(ids) * 4 * D
            cbytes[ids] = 4 * D
            cbytes[res.ids] += codec.nbytes(D)
        if len(res.ids):
            U = res.weights - w[None, :]
            U = ef.compress(res.ids, U) if ef is not None else codec.roundtrip(U)
            norms[res.ids] = np.linalg.norm(U, axis=1)
            w = opt.step(w, np.asarray(aggregator(U, res.n), dtype=np.float32))
            loss = float(np.nanmean(res.loss)) if np.isfinite(res.loss).any() else float("nan")
        evaluate(t, ids, res, sorted(failures, key=lambda f: f.id), up, down, upd, cbytes, norms, loss,
                 time.perf_counter() - t0)
        if callback is not None:
            callback(t, hist)
    return w, hist


def central_accuracy(model, X, y, full_weights=None, shared=None):
    """``evaluate_fn`` for :func:`run_fedavg`: accuracy of the global model on a central test set.

    With selective sharing pass ``full_weights`` (a full parameter vector supplying the
    non-shared tensors) and ``shared`` (the shared tensor names).
    """
    X = np.asarray(X, dtype=np.float32).reshape(len(y), -1)
    y = np.asarray(y)
    if shared is None:
        return lambda w: model.accuracy(w, X, y)
    mask = model.layout.mask(shared)
    base = np.asarray(full_weights, dtype=np.float32)

    def acc(w):
        theta = base.copy()
        theta[mask] = w
        return model.accuracy(theta, X, y)

    return acc
