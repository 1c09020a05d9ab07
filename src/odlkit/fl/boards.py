"""Federated averaging over boards (Lab 3): the host is the server, each board is a client.

Every board (a real Nano 33 BLE Sense on a serial port, or a virtual board replaying one
user's real recordings) keeps its training data in its own RAM. One round::

    1. select boards                          (odlkit.fl.select_clients, only the online ones)
    2. SETW  the global head  -> each board    (~1.1 KB blob, CRC-checked)
    3. EVAL  the global head on the board's own data (federated evaluation, optional)
    4. TRAIN on the board's own recordings     (SGD on the head, on-device)
    5. GETW  its head         <- each board
    6. a board that errors or times out is dropped from this round (printed); the round
       completes with the others; after ``max_failures`` failed rounds in a row it is offline
    7. aggregate the updates u_k = w_k - w     (odlkit.fl aggregators: weighted FedAvg,
       robust ones from odlkit.attacks, DP-FedAvg from odlkit.privacy; same signature)
    8. server step  w <- w + lr * delta        (odlkit.fl.ServerOptimizer)

Heads travel as :class:`odlkit.weights.HeadWeights`; aggregation works on the flat vector
``[W.ravel(), b]``. Bytes per round come from the boards' own ``tx``/``rx`` counters (INFO).

Needs numpy + pyserial (no TensorFlow): data splits use ``odlkit.data`` and ``odlkit.fl.partition``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from odlkit.board import Board, BoardError
from odlkit.fl.aggregators import Aggregator, ServerOptimizer, weighted_mean
from odlkit.fl.server import select_clients
from odlkit.weights import HeadWeights, WeightsFormatError

SKETCH = "lab3_federated"
# What a failing board can raise: board errors and timeouts (BoardTimeout is a BoardError),
# a corrupted weights blob, a vanished transport (TransportClosed is a ConnectionError).
BOARD_FAILURES = (BoardError, WeightsFormatError, ConnectionError, OSError)

__all__ = [
    "BOARD_FAILURES", "BoardClient", "BoardHistory", "ClientResult", "SKETCH", "accuracy", "connect_boards",
    "fedavg_heads",
    "flatten_head", "heldout_features", "local_round", "open_virtual_boards", "poison_labels", "record_dataset",
    "plot_history", "run_board_fedavg", "simulate_unplug", "split_for_boards", "train_round", "unflatten_head",
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
    rec = np.unique(train.groups)
    rec_y = np.array([np.bincount(train.y[train.groups == g]).argmax() for g in rec])
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
    boards = [train.subset(np.isin(train.groups, rec[p])) for p in parts]
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
    boards = []
    try:
        for k, ds in enumerate(datasets):
            boards.append(Board.virtual(dataset=ds, sketch=sketch, seed=seed + k, timeout=timeout))
    except BaseException:
        for b in boards:
            b.close()
        raise
    return boards


def connect_boards(datasets, ports: Sequence[str] | str | None = None, sketch: str = SKETCH, seed: int = 0,
                   timeout: float = 10.0, log: Callable[[str], None] = print) -> list[Board]:
    """Boards for a federated session: real boards on ``ports`` first, virtual ones for the rest.

    ``ports``: serial ports of Nano 33 BLE boards flashed with ``arduino_sketches/lab3_federated``
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
                            f"arduino_sketches/{sketch} for federated rounds with the same classes")
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
    most 200) and downloads the features (GETF). Returns ``(X (n, 64), y (n,))``, y in the
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


# ------------------------------------------------------------------ the clients and one round
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


@dataclass
class ClientResult:
    name: str
    head: HeadWeights
    n: int                  # training samples on the board (FedAvg weight)
    acc_before: float       # the global head's accuracy on the board's own data (NaN if not measured)
    train_acc: float        # the board's training accuracy after local training
    train_loss: float
    bytes_up: int           # board -> host (board's tx counter)
    bytes_down: int         # host -> board (board's rx counter)


def _counters(board: Board) -> tuple[int, int] | None:
    info = board.info()
    if "tx" in info and "rx" in info:
        return int(info["tx"]), int(info["rx"])
    return None


def local_round(client: BoardClient, head: HeadWeights, train_kwargs: dict, evaluate: bool = True,
                before_train: Callable[[BoardClient], None] | None = None) -> ClientResult:
    """One board's part of a round: SETW, (EVAL), TRAIN, GETW. Board failures propagate."""
    b = client.board
    c0 = _counters(b)
    b.set_weights(head)
    acc_before = b.evaluate().accuracy if evaluate else float("nan")
    if before_train is not None:
        before_train(client)
    res = b.train(**train_kwargs)
    new = b.get_weights()
    n = int(b.info()["stored"])
    c1 = _counters(b)
    if c0 is not None and c1 is not None:
        up, down = c1[0] - c0[0], c1[1] - c0[1]
    else:  # firmware without counters: estimate from the two blobs (base64 = 4/3)
        from odlkit.weights import encode

        up = down = len(encode(head)) * 4 // 3
    return ClientResult(client.name, new, n, float(acc_before), float(res.accuracy), float(res.loss), up, down)


def train_round(clients: Sequence[BoardClient], ids, head: HeadWeights, train_kwargs: dict, *, evaluate: bool = True,
                before_train=None, log: Callable[[str], None] = print, round_no: int | None = None):
    """Run :func:`local_round` on the selected boards; a board that fails is dropped.

    Returns ``(results: list[(id, ClientResult)], dropped: list[(id, reason)])``. A failure
    (board error, timeout, broken connection, corrupted blob) is printed with ``log`` and
    the round continues with the other boards.
    """
    results, dropped = [], []
    tag = f"round {round_no}: " if round_no is not None else ""
    for i in ids:
        client = clients[int(i)]
        try:
            r = local_round(client, head, train_kwargs, evaluate=evaluate,
                            before_train=None if before_train is None else (lambda c: before_train(round_no, c)))
        except BOARD_FAILURES as e:
            client.failures += 1
            reason = f"{type(e).__name__}: {e}"
            dropped.append((int(i), reason))
            log(f"{tag}dropped board {client.name} ({reason}); the round goes on without it")
            continue
        client.failures = 0
        results.append((int(i), r))
    return results, dropped


# ------------------------------------------------------------------ history and the server loop
@dataclass
class BoardHistory:
    """Per round (index 0 = the initial head): what the server saw."""

    round: list = field(default_factory=list)
    global_accuracy: list = field(default_factory=list)   # global head on held-out features
    board_accuracy: list = field(default_factory=list)    # (N,) global head on each board's own data, NaN if not asked
    local_accuracy: list = field(default_factory=list)    # (N,) each board's trained head on held-out data, NaN if none
    train_loss: list = field(default_factory=list)        # mean final training loss of the reporting boards
    selected: list = field(default_factory=list)          # names
    reported: list = field(default_factory=list)          # names
    dropped: list = field(default_factory=list)           # [(name, reason)]
    bytes_up: list = field(default_factory=list)          # board -> host, all boards, this round
    bytes_down: list = field(default_factory=list)        # host -> board
    board_bytes: list = field(default_factory=list)       # (N,) up + down per board this round
    update_norm: list = field(default_factory=list)       # (N,) L2 norm of each board's update as received, NaN if none
    seconds: list = field(default_factory=list)
    names: list = field(default_factory=list)
    config: dict = field(default_factory=dict)

    @property
    def accuracy(self) -> np.ndarray:
        return np.asarray(self.global_accuracy, dtype=float)

    @property
    def kilobytes(self) -> np.ndarray:
        """Cumulative kilobytes (10^3 bytes) over serial, both directions, after each round."""
        return np.cumsum(np.asarray(self.bytes_up) + np.asarray(self.bytes_down)) / 1e3

    def rounds_to(self, target: float) -> int | None:
        hit = np.flatnonzero(self.accuracy >= target)
        return int(self.round[hit[0]]) if len(hit) else None

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self), default=lambda o: np.asarray(o).tolist()))

    def summary(self) -> str:
        acc = self.accuracy
        drops = sum(len(d) for d in self.dropped)
        return (f"{len(self.round) - 1} rounds, final accuracy {acc[-1]:.3f} (best {np.nanmax(acc):.3f}), "
                f"{self.kilobytes[-1]:.1f} kB over serial, {drops} board drop(s)")


def run_board_fedavg(clients: Sequence[BoardClient], init_head: HeadWeights, rounds: int,
                     clients_per_round: int | None = None, *, epochs: int = 5, lr: float = 0.005,
                     momentum: float = 0.9, weight_decay: float = 0.0, batch_size: int = 8,
                     aggregator: Aggregator = weighted_mean, server_lr: float = 1.0, server_momentum: float = 0.0,
                     selection: str = "uniform", heldout=None, eval_boards: bool = True,
                     max_failures: int = 2, before_train=None, seed: int = 0, progress: bool = False,
                     callback=None, log: Callable[[str], None] = print) -> tuple[HeadWeights, BoardHistory]:
    """Federated averaging of a softmax head over boards. Returns the final head and a :class:`BoardHistory`.

    ``heldout=(X, y)``: held-out feature vectors (:func:`heldout_features`) to score the
    global head (and each board's local head) every round. ``aggregator``: any
    ``(updates[K, D], weights[K]) -> [D]`` (``odlkit.fl.weighted_mean`` = FedAvg,
    ``odlkit.attacks.coordinate_median``, ``odlkit.privacy.DPFedAvg(...)`` = clip + noise).
    ``before_train(round, client)`` runs on each board between SETW/EVAL and TRAIN (used to
    inject faults). A board failing ``max_failures`` rounds in a row is taken offline.
    """
    clients = list(clients)
    N = len(clients)
    if N == 0:
        raise ValueError("no boards: pass at least one BoardClient")
    names = [c.name for c in clients]
    if len(set(names)) != N:
        raise ValueError(f"board names must be unique, got {names}")
    K = N if clients_per_round is None else int(clients_per_round)
    if not 1 <= K <= N:
        raise ValueError(f"clients_per_round must be between 1 and the {N} boards, got {clients_per_round}")
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {rounds}")
    if heldout is not None:
        Xh, yh = heldout
    train_kwargs = dict(epochs=int(epochs), lr=float(lr), momentum=float(momentum),
                        weight_decay=float(weight_decay), batch_size=int(batch_size))
    w = flatten_head(init_head)
    opt = ServerOptimizer(server_lr, server_momentum)
    rng = np.random.default_rng([seed, 7919])
    hist = BoardHistory(names=names, config=dict(
        rounds=rounds, boards=N, clients_per_round=K, aggregator=getattr(aggregator, "__name__", type(aggregator).__name__),
        server_lr=server_lr, server_momentum=server_momentum, selection=selection, seed=seed,
        attackers=[c.name for c in clients if c.attack], **train_kwargs))

    def score(head):
        return accuracy(head, Xh, yh) if heldout is not None else float("nan")

    def record(t, sel, results, dropped, secs, norms=None):
        hist.round.append(t)
        hist.global_accuracy.append(score(unflatten_head(w, init_head)))
        ba, la, bb = np.full(N, np.nan), np.full(N, np.nan), np.zeros(N, dtype=np.int64)
        for i, r in results:
            ba[i] = r.acc_before
            la[i] = score(r.head)
            bb[i] = r.bytes_up + r.bytes_down
        hist.board_accuracy.append(ba)
        hist.local_accuracy.append(la)
        hist.board_bytes.append(bb)
        hist.update_norm.append(np.full(N, np.nan) if norms is None else norms)
        hist.bytes_up.append(int(sum(r.bytes_up for _, r in results)))
        hist.bytes_down.append(int(sum(r.bytes_down for _, r in results)))
        hist.train_loss.append(float(np.mean([r.train_loss for _, r in results])) if results else float("nan"))
        hist.selected.append([names[i] for i in sel])
        hist.reported.append([names[i] for i, _ in results])
        hist.dropped.append([(names[i], why) for i, why in dropped])
        hist.seconds.append(secs)

    record(0, [], [], [], 0.0)
    iterator = range(1, rounds + 1)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="FedAvg rounds (boards)")
    for t in iterator:
        t0 = time.perf_counter()
        online = np.array([c.online for c in clients], dtype=float)
        ids = select_clients(rng, N, K, selection, availability=online) if online.any() else np.array([], int)
        if len(ids) == 0:
            log(f"round {t}: no board online; the global head stays as it is")
        head = unflatten_head(w, init_head)
        results, dropped = train_round(clients, ids, head, train_kwargs, evaluate=eval_boards,
                                       before_train=before_train, log=log, round_no=t)
        for i, _ in dropped:
            if clients[i].failures >= max_failures and clients[i].online:
                clients[i].online = False
                log(f"round {t}: board {names[i]} failed {clients[i].failures} rounds in a row; it is offline now")
        if results:
            U = np.stack([flatten_head(r.head) for _, r in results]) - w[None, :]
            for row, (i, _) in enumerate(results):
                c = clients[i]
                if c.attack:
                    from odlkit.attacks import malicious_update

                    U[row] = malicious_update(U[row], c.attack, c.boost, rng)
            n = np.array([r.n for _, r in results], dtype=np.float64)
            norms = np.full(N, np.nan)
            norms[[i for i, _ in results]] = np.linalg.norm(U, axis=1)
            w = opt.step(w, np.asarray(aggregator(U, n), dtype=np.float32))
        else:
            norms = None
            log(f"round {t}: no board reported; the global head stays as it is")
        record(t, ids, results, dropped, time.perf_counter() - t0, norms)
        if callback is not None:
            callback(t, hist)
    return unflatten_head(w, init_head), hist


def plot_history(histories: dict, ax=None, title: str = "Global accuracy on held-out recordings"):
    """Global accuracy per round, one line per run (``{label: BoardHistory}``)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for label, h in histories.items():
        ax.plot(h.round, h.accuracy, marker="o", label=label)
    ax.set_xlabel("round")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax
