"""Lab 3: federated averaging over boards. The host is the server, each board a client.

Every board (a real Nano 33 BLE Sense on a serial port, or a virtual board replaying one
user's real recordings) keeps its training data in its own RAM. The rounds are
:func:`odlkit.fl.run_fedavg`'s, the same loop as chapter 3's simulations (client selection,
compression, error feedback, server momentum, aggregators); the boards are one more kind of
client pool, :class:`BoardPool`. One round for a board::

    1. SETW  the global head  -> the board     (~1.1 KB blob, CRC-checked)
    2. TRAIN on the board's own recordings     (SGD on the head, on-device)
    3. GETW  its head         <- the board
    4. a board that errors, times out or is unplugged is a Failure of this round (printed);
       the round completes with the others; after ``max_failures`` failed rounds in a row
       it is offline and no longer selected
    5. federated evaluation: SETW + EVAL of the new global head on every online board

Heads travel as :class:`odlkit.weights.HeadWeights`; the server works on the flat vector
``[W.ravel(), b]`` (:func:`flatten_head`). Bytes per round come from the boards' own
``tx``/``rx`` counters (INFO).

    pool = BoardPool([BoardClient(b, f"board {k}") for k, b in enumerate(boards)], init_head)
    w, hist = fl.run_fedavg(pool, flatten_head(init_head), rounds=10,
                            evaluate_fn=head_accuracy_fn(heldout, init_head), **server_kwargs(TRAIN))

Needs numpy + pyserial (no TensorFlow): data splits use ``odlkit.data`` and ``odlkit.fl.partition``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from odlkit.attacks import malicious_update
from odlkit.board import Board, BoardError
from odlkit.fl.aggregators import Aggregator, weighted_mean
from odlkit.fl.client import Failure, FitResults
from odlkit.sketches import get_sketch
from odlkit.weights import HeadWeights, WeightsFormatError, encode

SKETCH = get_sketch("lab3_federated").name  # the firmware every board of the federation runs
# What a failing board can raise: board errors and timeouts (BoardTimeout is a BoardError),
# a corrupted weights blob, a vanished transport (TransportClosed is a ConnectionError).
BOARD_FAILURES = (BoardError, WeightsFormatError, ConnectionError, OSError)
# The board's local training recipe (Board.train's arguments) when a run does not say otherwise.
BOARD_TRAIN = dict(epochs=5, lr=0.005, momentum=0.9, weight_decay=0.0, batch_size=8)

__all__ = [
    "BOARD_FAILURES", "BOARD_TRAIN", "BoardClient", "BoardPool", "SKETCH", "accuracy", "connect_boards",
    "fedavg_heads", "flatten_head", "head_accuracy_fn", "heldout_features", "open_virtual_boards", "poison_labels",
    "record_dataset", "server_kwargs", "simulate_unplug", "split_for_boards", "unflatten_head",
]


# ------------------------------------------------------------------ heads as flat vectors
def flatten_head(head: HeadWeights) -> np.ndarray:
    """``[W.ravel(), b]`` as one float32 vector (D = feature_dim * n_classes + n_classes)."""
    return np.concatenate([head.W.ravel(), head.b]).astype(np.float32)


def unflatten_head(vec, like: HeadWeights) -> HeadWeights:
    """Inverse of :func:`flatten_head`, with the shape and class names of ``like``."""
    vec = np.asarray(vec, dtype=np.float32).reshape(-1)
    fd, nc = like.W.shape
    if vec.size != fd * nc + nc:
        raise ValueError(f"a head of {fd} features x {nc} classes has {fd * nc + nc} parameters, got {vec.size}")
    return HeadWeights(vec[: fd * nc].reshape(fd, nc), vec[fd * nc:], list(like.class_names))


def _check_same_head(heads: Sequence[HeadWeights]) -> None:
    if len(heads) == 0:
        raise ValueError("no heads to average: every board dropped out of the round?")
    ref = heads[0]
    for i, h in enumerate(heads):
        if h.W.shape != ref.W.shape or list(h.class_names) != list(ref.class_names):
            raise ValueError(
                f"head {i} has shape {h.W.shape} and classes {h.class_names}, head 0 has {ref.W.shape} and "
                f"{ref.class_names}: FedAvg averages position by position, so every board must have the same "
                "classes in the same order (flash the same sketch, add classes in the same order)"
            )


def fedavg_heads(heads: Sequence[HeadWeights], n_samples, aggregator: Aggregator = weighted_mean) -> HeadWeights:
    """Sample-weighted average of heads, ``sum_k n_k W_k / sum_k n_k`` (and the same for b).

    The averaging itself is ``aggregator`` (default :func:`odlkit.fl.weighted_mean`, FedAvg).
    """
    _check_same_head(heads)
    flat = np.stack([flatten_head(h) for h in heads])
    return unflatten_head(aggregator(flat, np.asarray(n_samples, dtype=np.float64)), heads[0])


def head_accuracy_fn(heldout, like: HeadWeights):
    """``evaluate_fn`` for :func:`odlkit.fl.run_fedavg`: accuracy of a flat head on ``heldout=(X, y)``."""
    X, y = heldout

    def acc(w) -> float:
        return accuracy(unflatten_head(w, like), X, y)

    return acc


def accuracy(head: HeadWeights, X, y) -> float:
    """Accuracy of a head on feature vectors ``X`` (n, feature_dim) with labels ``y`` (class indices)."""
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[1] != head.feature_dim or len(X) != len(y):
        raise ValueError(f"need X (n, {head.feature_dim}) and y (n,), got {X.shape} and {y.shape}")
    if len(y) == 0:
        return float("nan")
    return float(np.mean(np.argmax(X @ head.W + head.b, axis=1) == y))


# ------------------------------------------------------------------ data: one user per board
def split_for_boards(ds, n_boards: int, test_size: float = 0.25, alpha: float | None = None, seed: int = 0):
    """Split an IMU dataset of windows by RECORDING into ``n_boards`` users and a held-out test set.

    Every recording (``ds.groups``) goes to exactly one place, so a board never replays
    another board's recording and the test set holds recordings no board trained on.
    ``alpha=None``: each board gets a stratified share of the recordings (similar users);
    ``alpha`` > 0: the recordings of each class are shared with Dirichlet(alpha) proportions
    (:func:`odlkit.fl.dirichlet_partition`; small alpha = each board mostly sees a few classes).
    Returns ``(boards: list[Dataset], test: Dataset)``.
    """
    from odlkit import data
    from odlkit.fl.partition import dirichlet_partition

    if ds.groups is None:
        raise ValueError(f"{ds.name} has no recording ids (groups); split_for_boards splits by recording")
    if n_boards < 1:
        raise ValueError(f"n_boards must be >= 1, got {n_boards}")
    train, test = data.train_test_split(ds, test_size=test_size, seed=seed, by_group=True)
    train_groups = np.asarray(train.groups)
    rec = np.unique(train_groups)
    rec_y = np.array([np.bincount(train.y[train_groups == g]).argmax() for g in rec])
    if len(rec) < n_boards:
        raise ValueError(f"only {len(rec)} training recordings for {n_boards} boards; use fewer boards")
    if alpha is None:
        rng = np.random.default_rng(seed)
        owner = np.empty(len(rec), dtype=int)
        start = 0
        for c in np.unique(rec_y):  # deal each class's recordings round-robin, continuing the turn
            idx = rng.permutation(np.flatnonzero(rec_y == c))
            owner[idx] = (start + np.arange(len(idx))) % n_boards
            start += len(idx)
        parts = [np.flatnonzero(owner == k) for k in range(n_boards)]
    else:
        parts = dirichlet_partition(rec_y, n_boards, alpha, seed=seed, min_size=1)
    boards = [train.subset(np.isin(train_groups, rec[p])) for p in parts]
    return boards, test


def poison_labels(ds, seed: int = 0):
    """The same windows with every label replaced by a random DIFFERENT class
    (:func:`odlkit.attacks.flip_labels`, fraction 1): a user who performs the wrong movement
    each time they are asked for one. Give it to one virtual board to make it malicious."""
    from dataclasses import replace

    from odlkit.attacks import flip_labels

    y, _ = flip_labels(ds.y, 1.0, n_classes=len(ds.class_names), mode="random", seed=seed)
    return replace(ds, y=np.asarray(y, dtype=np.int64))


def open_virtual_boards(datasets, sketch: str = SKETCH, seed: int = 0, timeout: float = 10.0) -> list[Board]:
    """One virtual board per dataset; board k replays ONLY ``datasets[k]`` (its user's recordings)."""
    return connect_boards(datasets, ports=[], sketch=sketch, seed=seed, timeout=timeout)


def connect_boards(datasets, ports: Sequence[str] | str | None = None, sketch: str = SKETCH, seed: int = 0,
                   timeout: float = 10.0, log: Callable[[str], None] = print) -> list[Board]:
    """Boards for a federated session: real boards on ``ports`` first, virtual ones for the rest.

    ``ports``: serial ports of Nano 33 BLE boards flashed with ``sketch`` (``arduino_sketches/lab3_federated``)
    (a list, or a comma-separated string; default: the ``ODL_BOARD_PORTS`` environment variable,
    e.g. ``/dev/ttyACM0,/dev/ttyACM1`` or ``COM5,COM6``). Board k uses ``datasets[k]``: a real
    board's user records those classes live; a virtual board replays them. A real board that
    cannot be opened is reported and replaced by a virtual one, so the session always runs.
    """
    import os

    if ports is None:
        ports = os.environ.get("ODL_BOARD_PORTS", "")
    if isinstance(ports, str):
        ports = [p.strip() for p in ports.split(",") if p.strip()]
    if len(ports) > len(datasets):
        raise ValueError(f"{len(ports)} serial ports for {len(datasets)} boards: pass one dataset per board")
    boards: list[Board] = []
    try:
        for k, ds in enumerate(datasets):
            if k < len(ports):
                try:
                    b = Board.serial(ports[k], timeout=timeout)
                    if b.hello.get("fw", "").split("-")[0] != sketch:
                        log(f"board on {ports[k]} runs {b.hello.get('fw')!r}, not {sketch}: flash "
                            f"{get_sketch(sketch).folder} for federated rounds with the same classes")
                    boards.append(b)
                    log(f"board {k}: real board on {ports[k]} ({b.hello.get('board')})")
                    continue
                except (BoardError, OSError) as e:  # no such port, port busy, no protocol reply
                    log(f"board {k}: cannot use {ports[k]} ({e}); a virtual board takes its place")
            boards.append(Board.virtual(dataset=ds, sketch=sketch, seed=seed + k, timeout=timeout))
    except BaseException:
        for b in boards:
            b.close()
        raise
    return boards


def record_dataset(board: Board, ds, per_class: int | None = None) -> int:
    """Record the windows of ``ds`` on ``board``: for each class present, ``RECORD <class> n=...``.

    On a virtual board started with ``ds`` this stores (up to ``per_class`` of) its own
    recordings; on a real board the person holding it performs each class when asked.
    The board's store holds at most ``info()["cap"]`` windows. Returns the number stored.
    """
    counts = np.bincount(np.asarray(ds.y), minlength=len(ds.class_names))
    stored = board.info()["stored"]
    cap = int(board.info().get("cap", 10**9))
    for c, name in enumerate(ds.class_names):
        n = int(counts[c]) if per_class is None else min(int(counts[c]), int(per_class))
        n = min(n, cap - stored)
        if n > 0:
            prompt = None
            if board.kind == "serial":  # a person performs each window on a real board
                def prompt(i, total, cls):
                    print(f"  perform '{cls}' now ({i + 1}/{total}, 2 s)")
            stored = board.record(name, n=n, on_window=prompt)
    return stored


def heldout_features(test_ds, sketch: str = SKETCH, per_class: int | None = None, seed: int = 0):
    """Feature vectors of held-out windows, computed by the board's own C++ backbone.

    Starts a virtual board replaying ``test_ds``, records its windows (the store holds at
    most the sketch's ``capacity``, :mod:`odlkit.sketches`) and downloads the features (GETF). Returns ``(X (n, 64), y (n,))``, y in the
    sketch's class order. Used to score the global head on data no board trained on.
    """
    with Board.virtual(dataset=test_ds, sketch=sketch, seed=seed) as ev:
        cap = int(ev.info()["cap"])
        if per_class is None:
            per_class = cap // max(1, len(test_ds.class_names))
        record_dataset(ev, test_ds, per_class=per_class)
        return ev.get_features()


def simulate_unplug(board: Board) -> None:
    """Kill a VIRTUAL board's process, as if its USB cable were pulled (for demos and tests).

    A real board: pull the cable. Its next command then fails with a :class:`BoardError`.
    """
    proc = getattr(getattr(board, "_t", None), "proc", None)
    if proc is None:
        raise ValueError("simulate_unplug works on virtual boards only; unplug a real board's USB cable instead")
    proc.kill()
    proc.wait(timeout=5)


# ------------------------------------------------------------------ boards as a client pool
@dataclass
class BoardClient:
    """A board taking part in the federation.

    ``attack``: None (honest), or a kind of :func:`odlkit.attacks.malicious_update`
    (``"scaled"``, ``"sign_flip"``, ...) applied to the update it sends, scaled by ``boost``:
    a board with tampered firmware. (Label flipping happens in the data instead: give its
    virtual board :func:`poison_labels` data.) ``failures`` counts failed rounds in a row.
    """

    board: Board
    name: str = ""
    attack: str | None = None
    boost: float = 1.0
    failures: int = 0
    online: bool = True

    def __post_init__(self):
        if not self.name:
            self.name = f"{self.board.kind}-{id(self.board) % 10000}"


def server_kwargs(train: dict | None = None) -> dict:
    """:func:`odlkit.fl.run_fedavg` keyword arguments for a board training recipe.

    ``train`` holds :meth:`odlkit.board.Board.train`'s arguments (``epochs``, ``lr``,
    ``momentum``, ``weight_decay``, ``batch_size``; missing ones from :data:`BOARD_TRAIN`).
    """
    t = dict(BOARD_TRAIN, **(train or {}))
    unknown = set(t) - set(BOARD_TRAIN)
    if unknown:
        raise ValueError(f"unknown board training arguments {sorted(unknown)}; use {sorted(BOARD_TRAIN)}")
    return dict(local_epochs=int(t["epochs"]), lr=float(t["lr"]), batch_size=int(t["batch_size"]),
                fit_config=dict(momentum=float(t["momentum"]), weight_decay=float(t["weight_decay"])))


def _counters(board: Board) -> tuple[int, int] | None:
    info = board.info()
    if "tx" in info and "rx" in info:
        return int(info["tx"]), int(info["rx"])
    return None


class BoardPool:
    """Boards as an :class:`odlkit.fl.Pool` (a :class:`odlkit.fl.ManagedPool`) for :func:`odlkit.fl.run_fedavg`.

    ``like``: a head with the federation's shape and class names (the sketch's initial head).
    ``before_train(round, client)`` runs on each board between SETW and TRAIN (to inject
    faults in demos and tests). A board failing ``max_failures`` rounds in a row is taken
    offline. ``log`` prints what happened to a failing board.
    """

    def __init__(self, clients: Sequence[BoardClient], like: HeadWeights, *, max_failures: int = 2,
                 before_train: Callable[[int, BoardClient], None] | None = None,
                 log: Callable[[str], None] = print, seed: int = 0):
        self.clients = list(clients)
        if not self.clients:
            raise ValueError("no boards: pass at least one BoardClient")
        self.names = [c.name for c in self.clients]
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"board names must be unique, got {self.names}")
        if max_failures < 1:
            raise ValueError(f"max_failures must be >= 1, got {max_failures}")
        self.like, self.max_failures, self.before_train, self.log = like, int(max_failures), before_train, log
        self.rng = np.random.default_rng([seed, 31])
        self._sizes: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.clients)

    @property
    def sizes(self) -> np.ndarray:
        """Windows stored on each board (0 for a board that does not answer)."""
        if self._sizes is None:
            sizes = []
            for c in self.clients:
                try:
                    sizes.append(int(c.board.info()["stored"]))
                except BOARD_FAILURES:
                    sizes.append(0)
            self._sizes = np.array(sizes, dtype=np.int64)
        return self._sizes.copy()

    def available(self) -> np.ndarray:
        return np.array([1.0 if c.online else 0.0 for c in self.clients])

    def describe(self) -> dict:
        return dict(boards=len(self.clients), max_failures=self.max_failures,
                    attackers=[c.name for c in self.clients if c.attack])

    def head(self, weights) -> HeadWeights:
        """The flat weights of the server as a head of this federation's shape."""
        return unflatten_head(weights, self.like)

    def _fit_one(self, client: BoardClient, head: HeadWeights, train: dict, round_no: int):
        b = client.board
        c0 = _counters(b)
        b.set_weights(head)
        if self.before_train is not None:
            self.before_train(round_no, client)
        res = b.train(**train)
        new = b.get_weights()
        n = int(b.info()["stored"])
        c1 = _counters(b)
        if c0 is not None and c1 is not None:
            up, down = c1[0] - c0[0], c1[1] - c0[1]
        else:  # firmware without counters: estimate from the two blobs (base64 = 4/3)
            up = down = len(encode(head)) * 4 // 3
        return flatten_head(new), n, float(res.loss), up, down

    def fit_many(self, ids, weights, config):
        """SETW, TRAIN, GETW on each board of ``ids``; a board that fails is a :class:`~odlkit.fl.Failure`."""
        t = int(config.get("round", 0))
        train = dict(epochs=int(config["local_epochs"]), lr=float(config["lr"]),
                     batch_size=int(config.get("batch_size") or BOARD_TRAIN["batch_size"]),
                     momentum=float(config.get("momentum", BOARD_TRAIN["momentum"])),
                     weight_decay=float(config.get("weight_decay", BOARD_TRAIN["weight_decay"])))
        w = np.asarray(weights, dtype=np.float32)
        head = self.head(w)
        done, W, n, loss, up, down, failures = [], [], [], [], [], [], []
        for i in ids:
            client = self.clients[int(i)]
            try:
                wk, nk, lk, uk, dk = self._fit_one(client, head, train, t)
            except BOARD_FAILURES as e:
                client.failures += 1
                reason = f"{type(e).__name__}: {e}"
                failures.append(Failure(int(i), reason))
                self.log(f"round {t}: dropped board {client.name} ({reason}); the round goes on without it")
                if client.failures >= self.max_failures and client.online:
                    client.online = False
                    self.log(f"round {t}: board {client.name} failed {client.failures} rounds in a row; "
                             "it is offline now")
                continue
            client.failures = 0
            if client.attack:  # tampered firmware: the update it sends is not the one it trained
                wk = w + malicious_update(wk - w, client.attack, client.boost, self.rng)
            done.append(int(i))
            W.append(wk)
            n.append(nk)
            loss.append(lk)
            up.append(uk)
            down.append(dk)
        if not done:
            return FitResults.empty(w.size), failures
        return FitResults(done, np.stack(W), n, loss, bytes_up=up, bytes_down=down), failures

    def evaluate_many(self, ids, weights):
        """SETW + EVAL of ``weights`` on each online board: accuracy on its own data (NaN if it fails)."""
        head = self.head(weights)
        acc, n = np.full(len(ids), np.nan), np.zeros(len(ids), dtype=np.int64)
        for k, i in enumerate(ids):
            client = self.clients[int(i)]
            if not client.online:
                continue
            try:
                client.board.set_weights(head)
                ev = client.board.evaluate()
            except BOARD_FAILURES as e:
                self.log(f"board {client.name} could not evaluate the global head ({type(e).__name__}: {e})")
                continue
            acc[k], n[k] = ev.accuracy, ev.n
        return acc, n
