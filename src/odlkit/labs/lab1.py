"""Lab 1 (motion personalization): the host-side logic, so the notebook stays short.

The notebook ``lab1_motion`` tells the story; this module does the work:

- :func:`generic_vs_personal`: why personalize. Per subject of ``watch``, the accuracy of a
  generic model trained on the *other* subjects (leave-one-subject-out) against a personal
  model trained on a part of that subject's own data.
- :func:`normalize`, :func:`embed`: the backbone's input normalization (the same vectors the
  board applies) and its 64-d embedding.
- :func:`open_board`: a real board when one is plugged in, otherwise the virtual board.
- :func:`host_twin`: train :class:`odlkit.head.Head` on the features downloaded from the
  board, in the board's data order, and compare the weights.
- :func:`few_shot_comparison`: feature extraction vs. training from scratch vs. a generic
  model as a function of samples per class.
- :func:`memory_budget`: what training used on the device (from ``INFO``).
- :func:`plan_comparison`, :func:`plan_predictions`, :func:`plot_plan_comparison`: the board's
  training plans (head only, bias-only, sparse update of the last k layers) on the same user
  data: held-out accuracy, plan RAM and time per step, beside ``odlkit.tiny.memory``'s prediction.

numpy + scikit-learn at import time; TensorFlow is imported only by the functions that run
the backbone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from odlkit.config import SEED
from odlkit.head import EngineShuffle, Head
from odlkit.labs import boards
from odlkit.sketches import get_sketch

SKETCH = get_sketch("lab1_motion")  # the firmware of this lab (registry: odlkit.sketches)

__all__ = [
    "window_statistics",
    "time_split",
    "generic_vs_personal",
    "plot_generic_vs_personal",
    "normalize",
    "embed",
    "open_board",
    "VirtualRawSource",
    "virtual_raw_source",
    "board_features",
    "device_gradient",
    "TwinResult",
    "host_twin",
    "few_shot_comparison",
    "memory_budget",
    "heldout_accuracy",
    "device_benchmark",
    "device_training_estimate",
    "PLAN_RUNS",
    "plan_label",
    "plan_comparison",
    "plan_predictions",
    "device_plan_times",
    "plot_plan_comparison",
]


# ------------------------------------------------------------------------------------------
# 1. why personalize
# ------------------------------------------------------------------------------------------
def window_statistics(X) -> np.ndarray:
    """Cheap hand-made features of IMU windows (n, T, C): per channel mean, std, min, max and
    mean absolute first difference -> (n, 5 C). Enough to show how models vary across people."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 3:
        raise ValueError(f"expected windows of shape (n, steps, channels), got {X.shape}")
    d = np.abs(np.diff(X, axis=1)).mean(1)
    return np.concatenate([X.mean(1), X.std(1), X.min(1), X.max(1), d], axis=1)


def time_split(y, frac: float):
    """Indices ``(train, test)`` into ``y``: per class, the first ``frac`` of the windows (in time
    order) for training and the rest for testing, skipping the one window that overlaps the cut
    (windows overlap by 50 %), so no sample is on both sides."""
    tr, te = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        k = max(1, int(round(frac * len(idx))))
        tr.append(idx[:k])
        te.append(idx[k + 1:])  # skip one window: 50 % overlap with the last training window
    return np.concatenate(tr), np.concatenate(te)


def generic_vs_personal(ds=None, personal_fraction: float = 0.5, seed: int = SEED, subjects: Sequence[int] | None = None):
    """Per-subject accuracy of a generic vs. a personal classifier on an IMU dataset with subjects.

    For every subject ``s``: *generic* = a linear classifier (standardization + linear
    discriminant analysis, closed form and fast) on :func:`window_statistics`,
    trained on all other subjects, tested on the second part of ``s``'s windows; *personal* =
    the same model trained only on the first ``personal_fraction`` of ``s``'s windows (per
    class, in time order), tested on the same windows; *generic + personal* = trained on both.
    Returns ``{"subjects", "generic", "personal", "combined", "n_test"}`` (arrays).
    """
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from odlkit import data

    if ds is None:
        ds = data.imu_windows("watch")
    if ds.groups is None:
        raise ValueError(f"{ds.name} has no subject ids (groups); use a dataset with subjects such as 'watch'")
    F = window_statistics(ds.X)
    subs = np.unique(ds.groups) if subjects is None else np.asarray(subjects)
    out: dict[str, list] = {"subjects": [], "generic": [], "personal": [], "combined": [], "n_test": []}

    def model():
        return make_pipeline(StandardScaler(), LinearDiscriminantAnalysis())

    for s in subs:
        mine = np.flatnonzero(ds.groups == s)
        others = np.flatnonzero(ds.groups != s)
        tr, te = time_split(ds.y[mine], personal_fraction)
        tr, te = mine[tr], mine[te]
        if len(np.unique(ds.y[tr])) < 2 or len(te) == 0:
            continue
        gen = model().fit(F[others], ds.y[others])
        per = model().fit(F[tr], ds.y[tr])
        both = np.concatenate([others, tr])
        com = model().fit(F[both], ds.y[both])
        out["subjects"].append(int(s))
        out["generic"].append(float((gen.predict(F[te]) == ds.y[te]).mean()))
        out["personal"].append(float((per.predict(F[te]) == ds.y[te]).mean()))
        out["combined"].append(float((com.predict(F[te]) == ds.y[te]).mean()))
        out["n_test"].append(len(te))
    return {k: np.asarray(v) for k, v in out.items()}


def plot_generic_vs_personal(res, ax=None):
    """Grouped bars per subject: generic / personal / generic + personal accuracy."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.4))
    x = np.arange(len(res["subjects"]))
    for i, (key, label) in enumerate([("generic", "generic (other subjects)"), ("personal", "personal (own data)"),
                                      ("combined", "generic + own data")]):
        ax.bar(x + (i - 1) * 0.27, res[key], width=0.27, label=f"{label}: mean {np.mean(res[key]):.2f}", color=f"C{i}")
    ax.set_xticks(x, [f"S{s}" for s in res["subjects"]])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy on the subject's held-out windows")
    ax.set_xlabel("subject")
    ax.legend(frameon=False, fontsize=8, loc="lower left")
    ax.grid(alpha=0.3, axis="y")
    return ax


# ------------------------------------------------------------------------------------------
# 2. the backbone's view of the user's data
# ------------------------------------------------------------------------------------------
def normalize(X, meta: Mapping) -> np.ndarray:
    """``(X - input_mean) / input_std`` with the backbone's vectors (what the board does first)."""
    X = np.asarray(X, dtype=np.float32)
    mean = np.asarray(meta["input_mean"], dtype=np.float32)
    std = np.asarray(meta["input_std"], dtype=np.float32)
    if X.ndim != 3 or X.shape[-1] != len(mean):
        raise ValueError(f"expected raw windows (n, steps, {len(mean)}), got {X.shape}")
    return (X - mean) / std


def embed(backbone, meta: Mapping, X) -> np.ndarray:
    """64-d features of raw windows: normalize with ``meta`` then run the frozen backbone."""
    from odlkit.transfer import extract_features

    return np.asarray(extract_features(backbone, normalize(X, meta)), dtype=np.float32)


# ------------------------------------------------------------------------------------------
# 3-5. the board and its host-side twin
# ------------------------------------------------------------------------------------------
def open_board(prefer_real: bool = True, dataset: str = SKETCH.dataset, verbose: bool = True, **virtual_kwargs):
    """A connected board: the real Nano 33 BLE Sense if one is plugged in, else the virtual board.

    The virtual board replays held-out real recordings of ``dataset`` as "the user".
    To force one or the other, call ``Board.serial(port)`` or ``Board.virtual(...)`` directly.
    """
    return boards.open_board(prefer_real, verbose, virtual_user=f"held-out recordings of {dataset!r} as the user",
                             dataset=dataset, **virtual_kwargs)


class VirtualRawSource:
    """The raw windows the virtual board's sensor replays for ``RECORD <class>``, in order.

    The virtual board (``arduino_sketches/virtual_board``) reads a replay file written by
    ``odlkit.board.virtual.dataset_replay``: lines ``r <class> <floats>`` for recordable
    windows, and keeps one cursor per class, so the k-th window recorded of a class is the k-th
    ``r`` line of that class (wrapping around). Calling this object with ``(label, n)`` returns
    the next ``n`` of them, so a host copy of exactly what the board learned from can be saved
    in the ``datasets/`` format. Create it right after starting the board (cursors at 0) with
    the same ``dataset``, ``test_size`` and ``seed`` as ``Board.virtual``.
    """

    def __init__(self, dataset: str = SKETCH.dataset, test_size: float = 0.25, seed: int = 0):
        from odlkit.board.virtual import dataset_replay

        self.path = Path(dataset_replay(dataset, test_size=test_size, seed=seed))
        self.windows: dict[str, list[np.ndarray]] = {}
        with open(self.path) as f:
            header = f.readline().split()
            length, channels = int(header[2]), int(header[3])
            for line in f:
                parts = line.split(" ", 2)
                if len(parts) == 3 and parts[0] == "r":
                    x = np.array(parts[2].split(), dtype=np.float32).reshape(length, channels)
                    self.windows.setdefault(parts[1], []).append(x)
        self.cursor = dict.fromkeys(self.windows, 0)

    def __call__(self, label: str, n: int) -> np.ndarray:
        if label not in self.windows:
            raise KeyError(f"the virtual user has no recordings of {label!r}; it has {sorted(self.windows)}")
        pool = self.windows[label]
        out = [pool[(self.cursor[label] + k) % len(pool)] for k in range(int(n))]
        self.cursor[label] = (self.cursor[label] + int(n)) % len(pool)
        return np.stack(out)


def virtual_raw_source(dataset: str = SKETCH.dataset, test_size: float = 0.25, seed: int = 0) -> VirtualRawSource:
    """A ``raw_source`` for :class:`odlkit.widgets.recorder.Recorder` on a fresh virtual board."""
    return VirtualRawSource(dataset, test_size, seed)


def board_features(board):
    """The board's stored training set as numpy: ``(features (n, 64), labels (n,), sessions (n,))``."""
    F, y, sess = board.get_features(with_sessions=True)
    return np.asarray(F, dtype=np.float32), np.asarray(y, dtype=np.int64), np.asarray(sess, dtype=np.int64)


def device_gradient(board, weights=None) -> dict:
    """The gradient the board itself computes, read back from one plain SGD step.

    Sets the head to ``weights`` (default: the board's current head), trains one epoch with
    ``lr=1``, ``momentum=0``, no weight decay and one batch holding every stored sample, so the
    board does ``W <- W - dW`` exactly once; then reads the new weights, computes
    ``dW = W_before - W_after`` (same for ``b``) and puts the original head back. Returns
    ``{"features", "labels", "W", "b", "loss", "dW", "db"}`` with ``W``/``dW`` shaped
    (feature_dim, n_classes) and ``loss`` the mean cross-entropy the board reported.
    Float32 rounding of ``W - dW`` limits the recovered gradient to about 1e-7 * |W|.
    """
    F, y, _ = board_features(board)
    if len(y) == 0:
        raise ValueError("the board has no stored samples: record some windows first")
    before = board.get_weights() if weights is None else weights
    board.set_weights(before)
    r = board.train(epochs=1, lr=1.0, momentum=0.0, weight_decay=0.0, batch_size=len(y), mode="full", use_replay=True)
    after = board.get_weights()
    board.set_weights(before)
    return {
        "features": F, "labels": y, "W": before.W.copy(), "b": before.b.copy(), "loss": float(r.loss),
        "dW": (before.W.astype(np.float64) - after.W).astype(np.float32),
        "db": (before.b.astype(np.float64) - after.b).astype(np.float32),
    }


@dataclass
class TwinResult:
    """Board vs. host head after the same training."""

    head: Head                 # the host-trained head
    max_abs_diff: float        # max |W_board - W_host| over W and b
    rel_diff: float            # ||theta_board - theta_host|| / ||theta_board||
    board_accuracy: float      # on the stored features, board weights
    host_accuracy: float       # on the stored features, host weights
    agreement: float           # fraction of stored samples with the same predicted class
    history: list

    def summary(self) -> str:
        return (f"max |W_board - W_host| = {self.max_abs_diff:.2e} (relative {self.rel_diff:.2e}); "
                f"accuracy board {self.board_accuracy:.3f} vs host {self.host_accuracy:.3f}; "
                f"same prediction on {100 * self.agreement:.1f}% of samples")


def host_twin(initial_weights, board_weights, features, labels, train_calls: Sequence[Mapping], seed: int = 1,
              sessions=None, earlier_calls: Sequence[tuple[int, int]] = ()) -> TwinResult:
    """Replay on the host the training the board did, then compare with the board's weights.

    ``initial_weights``: the head before training (``board.get_weights()`` taken before);
    ``board_weights``: after; ``features``/``labels``: the board's store (:func:`board_features`);
    ``train_calls``: the keyword arguments of each ``board.train`` call since the store was
    last cleared (``epochs``, ``lr``, ``momentum``, ``weight_decay``, ``batch_size``, ``mode``,
    ``replay``); ``seed``: the engine seed (the shuffle stream restarts from it when the store
    is cleared). With ``replay=False`` only the samples of the last session are used.
    ``earlier_calls``: ``(n_samples, epochs)`` of train calls made since the store was cleared
    but before ``initial_weights`` was taken (they advanced the board's shuffle generator).
    """
    head = Head.from_weights(initial_weights)
    shuffle = EngineShuffle(seed)
    for n_prev, epochs_prev in earlier_calls:
        shuffle.orders(n_prev, epochs_prev)
    history = []
    F = np.asarray(features, dtype=np.float32)
    y = np.asarray(labels, dtype=np.int64)
    sess = np.zeros(len(y), dtype=np.int64) if sessions is None else np.asarray(sessions)
    for call in train_calls:
        c = dict(call)
        use = np.ones(len(y), dtype=bool) if c.get("use_replay", c.get("replay", True)) else sess == sess.max()
        mode = {"full": "full", "bias": "bias", "bias_only": "bias"}.get(str(c.get("mode", "full")), "full")
        history += head.fit(F[use], y[use], epochs=int(c.get("epochs", 10)), lr=float(c.get("lr", 0.05)),
                            momentum=float(c.get("momentum", 0.9)), weight_decay=float(c.get("weight_decay", 0.0)),
                            batch_size=int(c.get("batch_size", 8)), mode=mode, order=shuffle)
    bw = Head.from_weights(board_weights)
    if bw.W.shape != head.W.shape:
        raise ValueError(f"board head {bw.W.shape} and host head {head.W.shape} differ in shape: "
                         "pass the weights taken right before and after the same training")
    theta_b = np.concatenate([bw.W.ravel(), bw.b])
    theta_h = np.concatenate([head.W.ravel(), head.b])
    pb, ph = bw.predict(F), head.predict(F)
    return TwinResult(
        head=head,
        max_abs_diff=float(np.abs(theta_b - theta_h).max()),
        rel_diff=float(np.linalg.norm(theta_b - theta_h) / max(float(np.linalg.norm(theta_b)), 1e-12)),
        board_accuracy=float((pb == y).mean()),
        host_accuracy=float((ph == y).mean()),
        agreement=float((pb == ph).mean()),
        history=history,
    )


def few_shot_comparison(backbone, meta, train_ds, test_ds, generic_ds=None, shots=(1, 3, 5, 10), seeds=(SEED,),
                        steps: int = 150, head_epochs: int = 30, progress: bool = True):
    """Test accuracy on the user's held-out windows against labelled windows per class.

    - ``feature_extraction``: the frozen backbone + a head trained by :class:`Head` with the
      board's optimizer (what the board does);
    - ``scratch``: the same architecture from random weights, everything trained on the
      user's few windows (``odlkit.transfer``);
    - ``generic`` (if ``generic_ds``): frozen backbone + head trained on *other* people's
      windows, none of the user's (a flat line: it does not use the user's samples);
    - ``generic_then_personal`` (if ``generic_ds``): the generic head, then trained further on
      the user's few windows (a board whose initial head is the generic one).
    Returns ``{method: (len(seeds), len(shots)) array}``.
    """
    from tqdm.auto import tqdm

    from odlkit import transfer

    n_classes = int(max(train_ds.y.max(), test_ds.y.max()) + 1)
    F_tr, F_te = embed(backbone, meta, train_ds.X), embed(backbone, meta, test_ds.X)
    X_tr, X_te = normalize(train_ds.X, meta), normalize(test_ds.X, meta)
    res = {"feature_extraction": np.zeros((len(seeds), len(shots))), "scratch": np.zeros((len(seeds), len(shots)))}
    g = None
    if generic_ds is not None:
        g = Head.zeros(F_tr.shape[1], n_classes)
        g.fit(embed(backbone, meta, generic_ds.X), generic_ds.y, epochs=max(5, head_epochs // 3), lr=0.05,
              batch_size=32, seed=1)
        res["generic"] = np.full((len(seeds), len(shots)), g.evaluate(F_te, test_ds.y)["accuracy"])
        res["generic_then_personal"] = np.zeros((len(seeds), len(shots)))
    jobs = [(i, s, j, n) for i, s in enumerate(seeds) for j, n in enumerate(shots)]
    for i, s, j, n in tqdm(jobs, desc="few-shot comparison", disable=not progress):
        idx = transfer.per_class_indices(train_ds.y, n, seed=s)
        h = Head.zeros(F_tr.shape[1], n_classes)
        h.fit(F_tr[idx], train_ds.y[idx], epochs=head_epochs, lr=0.05, batch_size=8, seed=s + 1)
        res["feature_extraction"][i, j] = h.evaluate(F_te, test_ds.y)["accuracy"]
        if g is not None:
            gp = g.copy()
            gp.fit(F_tr[idx], train_ds.y[idx], epochs=head_epochs, lr=0.01, batch_size=8, seed=s + 1)
            res["generic_then_personal"][i, j] = gp.evaluate(F_te, test_ds.y)["accuracy"]
        model, _, _ = transfer.make_transfer_model(backbone, n_classes, "scratch", seed=s)
        transfer.train(model, X_tr[idx], train_ds.y[idx], steps=steps, lr=3e-3, seed=s)
        # a few hundred steps leave BatchNorm's moving statistics near their initial values:
        # re-estimate them on the training windows so inference uses the data's statistics
        transfer.reestimate_batchnorm(model, X_tr[idx])
        res["scratch"][i, j] = transfer.accuracy(model, X_te, test_ds.y)
    return res


# ------------------------------------------------------------------------------------------
# 8. memory and time on the device
# ------------------------------------------------------------------------------------------
def memory_budget(info, sram_bytes: int = 256 * 1024) -> dict:
    """The device's RAM and time budget from a board's ``info()``.

    Returns ``{"memory": {row: bytes}, "time": {row: value}, "expected": {row: bytes}}``.
    ``memory`` uses what the board reports (``engine_ram``, ``arena_ram``, ``head_ram``,
    ``store_ram``, ``free``); ``expected`` recomputes the head and store from the sizes
    (``dim``, ``max``, ``cap``) so a reader can check where the bytes go:
    head = W, velocity, gradient and bias, its velocity and gradient, + the probability scratch,
    all float32; store = ``cap`` feature vectors of ``dim`` float32 + three u16 (label, session,
    shuffle order) each.
    """
    def num(k):
        v = boards.field(info, k, None)
        try:
            return None if v is None else float(v)
        except (TypeError, ValueError):
            return None

    dim, max_classes, cap = num("dim") or 64, num("max") or 8, num("cap") or 0
    expected = {
        "head": 4 * (3 * max_classes * dim + 3 * max_classes + max_classes),
        "store": cap * (4 * dim + 3 * 2),
    }
    rows = {
        "engine total (static)": num("engine_ram"),
        "activation arena (backbone)": num("arena_ram"),
        "head: W, b, velocity, gradient": num("head_ram"),
        "training store (replay buffer)": num("store_ram"),
        "free RAM reported": num("free") if (num("free") or -1) >= 0 else None,
        "nRF52840 SRAM": float(sram_bytes),
    }
    times = {"backbone forward (us)": num("fwd_us"), "head inference (us)": num("head_us"),
             "last training call (us)": num("train_us"), "stored samples": num("stored"), "store capacity": cap or None}
    return {"memory": {k: v for k, v in rows.items() if v is not None},
            "time": {k: v for k, v in times.items() if v is not None},
            "expected": expected}


def heldout_accuracy(board, classes: Sequence[str], per_class: int = 10) -> dict:
    """Accuracy of the board on fresh windows it never trained on.

    Asks ``board.predict(c)`` ``per_class`` times for every class ``c``: on the virtual board
    each call replays a held-out recording of ``c`` (the user performs ``c``); on a real board
    the person should perform ``c`` each time. Returns ``{"accuracy", "per_class", "confusion",
    "classes"}`` where the confusion rows are the classes asked for and columns the board's classes.
    """
    return boards.heldout_confusion(board, classes, per_class,
                                    prompt=lambda c, k: f"perform '{c}' now ({k + 1}/{per_class})")


def device_benchmark(path: str | Path | None = None) -> dict | None:
    """``benchmarks/results/device_head.json`` if it exists (measured on qemu or a real board)."""
    return boards.results_json("device_head.json", path)


def device_training_estimate(bench: Mapping, n_samples: int, epochs: int, n_classes: int, feature_dim: int = 64,
                             mhz: float = 64.0) -> dict:
    """Time the board's processor needs for ``epochs`` of head training, from a device benchmark.

    ``bench`` is ``benchmarks/results/device_head.json`` (instructions per training step of a
    batch, counted under qemu). Picks the row with ``feature_dim`` features and the fewest
    classes >= ``n_classes``, scales its per-batch instructions to the number of batches
    (``ceil(n_samples / batch) * epochs``) and converts to time assuming one instruction per
    cycle at ``mhz`` (an estimate: the Cortex-M4 runs this float code at close to one
    instruction per cycle; flash wait states make it somewhat slower).
    """
    rows = [r for r in bench.get("rows", []) if r.get("features") == feature_dim and r.get("classes", 0) >= n_classes]
    if not rows:
        raise ValueError(f"the benchmark has no row with {feature_dim} features and >= {n_classes} classes")
    row = min(rows, key=lambda r: r["classes"])
    batch = int(row.get("batch", bench.get("batch", 8)))
    steps = int(np.ceil(n_samples / batch)) * int(epochs)
    instr = steps * float(row["train_step_instructions"])
    return {
        "benchmark row": f"{row['features']} features x {row['classes']} classes, batch {batch}",
        "training steps": steps,
        "instructions": instr,
        f"estimated ms at {mhz:g} MHz": instr / (mhz * 1e3),
        "inference instructions (head)": float(row.get("inference_instructions", float("nan"))),
        "extra SRAM for training (bytes)": float(row.get("sram_training_extra_bytes", float("nan"))),
    }


# ------------------------------------------------------------------------------------------
# 9. training the backbone on the board: head, bias-only, sparse update
# ------------------------------------------------------------------------------------------
PLAN_RUNS: tuple[tuple[str, int | None], ...] = (("head", None), ("bias", None), ("sparse", 1), ("sparse", 2))
"""The plans Lab 1 compares: ``(plan, k)`` as ``Board.train(plan=..., k=...)`` takes them."""


def plan_label(plan: str, k: int | None = None) -> str:
    """``"head"``, ``"bias"``, ``"sparse k=2"``: how tables and plots name a plan."""
    return f"sparse k={k}" if plan == "sparse" else plan


def plan_comparison(n_per_class: int = 20, epochs: int = 20, lr: float = 5e-3, batch_size: int = 8,
                    heldout_per_class: int = 30, runs: Sequence[tuple[str, int | None]] = PLAN_RUNS,
                    seed: int = 0, what_if_plan_bytes: int | None = None, progress: bool = True) -> list[dict]:
    """Train the same virtual user's windows with each plan of ``runs``, each on a fresh virtual
    board of the Lab 1 firmware (plans enabled, same seed: same recordings, same start), and test
    on held-out windows.

    A plan that does not fit the firmware's plan buffer is refused by the board (``fits`` False).
    With ``what_if_plan_bytes`` such a plan is then trained again on a virtual board built with a
    plan buffer of that size (``board`` = ``"what-if"``): its accuracy, measured by the engine, for
    a board with more RAM. Every stored window must fit the window store the backbone plans train
    on (``n_per_class * classes <= plan_windows``), so all plans see the same samples.
    Returns one dict per run: ``plan``, ``k``, ``label``, ``fits`` (the Lab 1 firmware), ``board``,
    ``heldout_accuracy``, ``train_loss``, ``train_accuracy``, ``plan_ram``, ``plan_cap``,
    ``step_us`` (the engine's time per step on the machine it runs on: host time for a virtual
    board), ``steps``, ``refused`` (the board's message, or "").
    """
    from tqdm.auto import tqdm

    from odlkit.board import Board, BoardError

    n_classes = len(SKETCH.classes)
    if n_per_class * n_classes > SKETCH.plan_windows:
        raise ValueError(f"{n_per_class} windows x {n_classes} classes exceed the {SKETCH.plan_windows} windows the "
                         "firmware keeps for the backbone plans: the plans would not train on the same samples")

    def run(plan, k, plan_bytes):
        with Board.virtual(dataset=SKETCH.dataset, sketch=SKETCH.name, seed=seed, plans=True,
                           plan_bytes=plan_bytes) as board:
            classes = board.class_names()
            for c in classes:
                board.record(c, n=n_per_class)
            r = board.train(epochs=epochs, lr=lr, batch_size=batch_size, plan=plan, k=k)
            info = board.info()
            held = heldout_accuracy(board, classes, per_class=heldout_per_class)
        return {"heldout_accuracy": held["accuracy"], "train_loss": float(r.loss), "train_accuracy": float(r.accuracy),
                "plan_ram": int(info["plan_ram"]), "plan_cap": int(info["plan_cap"]), "step_us": float(info["step_us"]),
                "steps": int(info["steps"])}

    rows = []
    for plan, k in tqdm(list(runs), desc="training plans on the virtual board", disable=not progress):
        row: dict[str, Any] = {"plan": plan, "k": k, "label": plan_label(plan, k), "fits": True, "board": "lab1",
                               "refused": ""}
        try:
            row.update(run(plan, k, None))
        except BoardError as e:
            if "does not fit" not in str(e):
                raise
            row.update(fits=False, refused=e.board_message, heldout_accuracy=float("nan"), train_loss=float("nan"),
                       train_accuracy=float("nan"), plan_ram=0, plan_cap=SKETCH.plan_bytes, step_us=float("nan"),
                       steps=0)
            if what_if_plan_bytes:
                row.update(run(plan, k, what_if_plan_bytes), board="what-if")
        rows.append(row)
    return rows


def plan_predictions(backbone, runs: Sequence[tuple[str, int | None]] = PLAN_RUNS) -> list[dict]:
    """Chapter 2's host prediction of each plan's plan-buffer bytes
    (:func:`odlkit.tiny.memory.engine_plan_memory`: parameter copies, gradients, momentum and the
    activations the plan's backward pass keeps), with whether it fits the Lab 1 firmware."""
    from odlkit.tiny.memory import engine_plan_memory

    out = []
    for plan, k in runs:
        m = engine_plan_memory(backbone, plan, k or 0)
        out.append({"plan": plan, "k": k, "label": plan_label(plan, k), "predicted_plan_bytes": m.bytes,
                    "fits": m.bytes <= SKETCH.plan_bytes})
    return out


def device_plan_times(path: str | Path | None = None) -> dict[str, dict] | None:
    """Per plan label, the Cortex-M4F row of ``benchmarks/results/device_plans.json`` (qemu
    instruction counts with the board's flags: ``step_instructions``, ``ms_at_64MHz_cpi1``, the
    lower-bound time of one step at 64 MHz), or None when the benchmark has not been run."""
    bench = boards.results_json("device_plans.json", path)
    if bench is None:
        return None
    return {plan_label(r["plan"], r["k"] if r["plan"] == "sparse" else None): r for r in bench["rows"]}


def plot_plan_comparison(measured: Sequence[Mapping], predicted: Sequence[Mapping], times: Mapping | None = None,
                         axes=None):
    """Two panels: held-out accuracy against plan RAM (measured by the board: filled; chapter 2's
    prediction: open circles; the firmware's plan buffer: a dashed line), and against the time of
    one training step on the Cortex-M4F (``times``: :func:`device_plan_times`; else the board's
    own ``step_us``, host time on a virtual board)."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    pred = {p["label"]: p["predicted_plan_bytes"] for p in predicted}
    ax = axes[0]
    for i, m in enumerate(measured):
        acc = m["heldout_accuracy"]
        ram = m["plan_ram"] if m["plan_ram"] else pred.get(m["label"], 0)
        marker = "o" if m["fits"] else "X"
        ax.scatter([ram / 1024], [acc], s=70, color=f"C{i}", marker=marker,
                   label=m["label"] + ("" if m["fits"] else " (what-if board: does not fit Lab 1's)"))
        if m["label"] in pred:
            ax.scatter([pred[m["label"]] / 1024], [acc], s=160, facecolors="none", edgecolors=f"C{i}")
    ax.axvline(SKETCH.plan_bytes / 1024, ls="--", color="gray")
    ax.text(SKETCH.plan_bytes / 1024, ax.get_ylim()[0], " Lab 1 plan buffer", color="gray", va="bottom", fontsize=8)
    accs = [m["heldout_accuracy"] for m in measured if np.isfinite(m["heldout_accuracy"])]
    lims = (max(0.0, min(accs, default=0.0) - 0.1), 1.01)
    ax.set_ylim(*lims)
    ax.set_xlabel("plan RAM (KiB): board's INFO plan_ram (filled), ch02 prediction (open)")
    ax.set_ylabel("held-out accuracy")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=7, loc="lower right")
    ax = axes[1]
    for i, m in enumerate(measured):
        if times is not None and m["label"] in times:
            t, unit = times[m["label"]]["ms_at_64MHz_cpi1"], "ms per step at 64 MHz (qemu instructions, CPI 1)"
        else:
            t, unit = m["step_us"] / 1e3, "ms per step (the board's step_us)"
        ax.scatter([t], [m["heldout_accuracy"]], s=70, color=f"C{i}", marker="o" if m["fits"] else "X",
                   label=m["label"])
    ax.set_xscale("log")
    ax.set_ylim(*lims)
    ax.set_xlabel(unit)
    ax.grid(alpha=0.3)
    return axes


def personalization_run(n_per_class: int = 40, lr: float = 2e-4, epochs: int = 30, batch_size: int = 8,
                        seed: int = 0, new_class: str = "badminton", heldout_per_class: int = 45) -> dict:
    """Lab 1's board part end to end on a fresh virtual board, without TensorFlow.

    Records ``n_per_class`` windows of each initial class, trains the head on the board, checks
    it against the host twin, measures held-out accuracy, then adds ``new_class`` in a new
    session and trains with the replay buffer. Returns the numbers the notebook reports.
    """
    from odlkit.board import Board

    with Board.virtual(dataset=SKETCH.dataset, sketch=SKETCH.name, seed=seed) as board:
        classes = board.class_names()
        for c in classes:
            board.record(c, n=n_per_class)
        w0 = board.get_weights()
        call: dict[str, Any] = dict(epochs=epochs, lr=lr, batch_size=batch_size)
        res = board.train(**call)
        F, y, s = board_features(board)
        twin = host_twin(w0, board.get_weights(), F, y, [call], seed=seed + 1, sessions=s)
        held = heldout_accuracy(board, classes, per_class=heldout_per_class)
        board.add_class(new_class)
        board.reset("session")
        board.record(new_class, n=n_per_class)
        board.train(use_replay=True, **call)
        held_new = heldout_accuracy(board, [*classes, new_class], per_class=heldout_per_class)
    return {
        "n_per_class": n_per_class, "lr": lr, "epochs": epochs, "train_loss": res.loss, "train_accuracy": res.accuracy,
        "heldout_accuracy": held["accuracy"], "heldout_per_class": held["per_class"],
        "twin_max_abs_diff": twin.max_abs_diff, "twin_accuracy_gap": abs(twin.board_accuracy - twin.host_accuracy),
        "with_new_class_accuracy": held_new["accuracy"], "with_new_class_per_class": held_new["per_class"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m odlkit.labs.lab1``: the board part of Lab 1 on the virtual board, in full or quick mode."""
    import argparse

    from odlkit.config import quick

    p = argparse.ArgumentParser(prog="python -m odlkit.labs.lab1", description=main.__doc__)
    p.add_argument("--n-per-class", type=int, default=quick(full=40, quick=10))
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    r = personalization_run(a.n_per_class, a.lr, a.epochs, seed=a.seed)
    print(f"virtual user ({SKETCH.dataset}, seed {a.seed}), {a.n_per_class} windows per class, lr={a.lr}, {a.epochs} epochs")
    print(f"  training loss {r['train_loss']:.3f}, training accuracy {r['train_accuracy']:.3f}")
    print(f"  personalized head, held-out accuracy {r['heldout_accuracy']:.3f}  "
          + ", ".join(f"{k} {v:.2f}" for k, v in r["heldout_per_class"].items()))
    print(f"  host twin: max |W_board - W_host| {r['twin_max_abs_diff']:.2e}, accuracy gap {r['twin_accuracy_gap']:.3f}")
    print(f"  + new class with replay, held-out accuracy {r['with_new_class_accuracy']:.3f}  "
          + ", ".join(f"{k} {v:.2f}" for k, v in r["with_new_class_per_class"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
