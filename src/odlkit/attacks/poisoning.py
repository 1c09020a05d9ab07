"""Data poisoning: label flipping, data insertion and backdoor triggers.

All functions are numpy-only, take a seed, never modify their inputs and return the indices
they touched so a notebook can show (and a detector can be scored against) the ground truth.
"""

from __future__ import annotations

import numpy as np


def _check_fraction(fraction):
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1] (got {fraction})")


def flip_labels(y, fraction: float, n_classes: int | None = None, mode: str = "random",
                source: int | None = None, target: int | None = None, seed: int = 0):
    """Flip the labels of a fraction of the training set.

    * ``mode="random"``: ``fraction`` of all examples get a uniformly random *different* label.
    * ``mode="targeted"``: ``fraction`` of the examples of class ``source`` are relabelled ``target``
      (e.g. "walking" -> "running"): a quieter attack that hurts one class.

    Returns ``(y_poisoned, flipped_indices)``.
    """
    _check_fraction(fraction)
    y = np.asarray(y)
    n_classes = int(y.max()) + 1 if n_classes is None else int(n_classes)
    rng = np.random.default_rng(seed)
    out = y.copy()
    if mode == "random":
        idx = rng.choice(len(y), int(round(fraction * len(y))), replace=False)
        shift = rng.integers(1, n_classes, size=len(idx))  # never the same label
        out[idx] = (y[idx] + shift) % n_classes
    elif mode == "targeted":
        if source is None or target is None or source == target:
            raise ValueError("targeted flipping needs two different classes: source=... and target=...")
        pool = np.flatnonzero(y == source)
        if len(pool) == 0:
            raise ValueError(f"no example of source class {source} to flip")
        idx = rng.choice(pool, int(round(fraction * len(pool))), replace=False)
        out[idx] = target
    else:
        raise ValueError(f"mode must be 'random' or 'targeted' (got {mode!r})")
    return out, np.sort(idx)


def insert_points(X, y, n_insert: int, target: int, source: int | None = None, noise: float = 0.1, seed: int = 0):
    """Data insertion: add ``n_insert`` crafted points labelled ``target``.

    The attacker copies examples of class ``source`` (any other class if None), jitters them
    with Gaussian noise of ``noise`` x the per-feature std and labels them ``target``: the
    model learns that ``source``-looking inputs are ``target``.
    Returns ``(X_new, y_new, inserted_indices)`` with the inserted points appended at the end.
    """
    X = np.asarray(X)
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero(y == source) if source is not None else np.flatnonzero(y != target)
    if len(pool) == 0:
        raise ValueError("no example to copy for insertion: check source/target")
    base = X[rng.choice(pool, n_insert, replace=True)]
    std = X.std(axis=0, keepdims=True)
    fake = (base + noise * std * rng.standard_normal(base.shape)).astype(X.dtype)
    Xn = np.concatenate([X, fake])
    yn = np.concatenate([y, np.full(n_insert, target, dtype=y.dtype)])
    return Xn, yn, np.arange(len(X), len(Xn))


def imu_trigger(length: int = 50, channels: int = 6, channel: int = 0, start: int = 40, width: int = 6,
                amplitude: float = 3.0) -> np.ndarray:
    """A backdoor trigger for IMU windows: a square pulse of ``amplitude`` on one channel.

    In standardized units 3.0 is a sharp tap on the device; it is rare in real motion, so the
    model can learn "pulse => target class" without hurting clean accuracy. Shape (length, channels).
    """
    if not 0 <= start < start + width <= length:
        raise ValueError(f"trigger [{start}, {start + width}) does not fit in a window of {length} steps")
    if not 0 <= channel < channels:
        raise ValueError(f"channel {channel} out of range for {channels} channels")
    t = np.zeros((length, channels), np.float32)
    t[start : start + width, channel] = amplitude
    return t


def add_trigger(X, trigger, mode: str = "add"):
    """Stamp ``trigger`` (broadcastable to one sample) on every sample of ``X``.

    ``mode="add"`` adds it (IMU pulse), ``mode="set"`` writes the non-zero entries (a pixel patch).
    """
    X = np.asarray(X)
    trigger = np.asarray(trigger, dtype=X.dtype)
    if trigger.shape != X.shape[1:]:
        raise ValueError(f"trigger shape {trigger.shape} must equal one sample's shape {X.shape[1:]}")
    if mode == "add":
        return X + trigger[None]
    if mode == "set":
        return np.where(trigger[None] != 0, trigger[None], X)
    raise ValueError(f"mode must be 'add' or 'set' (got {mode!r})")


def backdoor_poison(X, y, fraction: float, target: int, trigger, mode: str = "add", seed: int = 0):
    """Backdoor: stamp the trigger on ``fraction`` of the non-target examples and relabel them ``target``.

    Returns ``(X_poisoned, y_poisoned, poisoned_indices)``.
    """
    _check_fraction(fraction)
    X = np.asarray(X)
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero(y != target)
    idx = np.sort(rng.choice(pool, int(round(fraction * len(pool))), replace=False))
    Xp, yp = X.copy(), y.copy()
    Xp[idx] = add_trigger(X[idx], trigger, mode)
    yp[idx] = target
    return Xp, yp, idx


def attack_success_rate(predict, X, y, target: int, trigger, mode: str = "add") -> float:
    """Fraction of non-target test inputs classified as ``target`` once the trigger is stamped.

    ``predict(X) -> labels``. Report it next to clean accuracy: a good backdoor keeps the latter.
    """
    X = np.asarray(X)
    y = np.asarray(y)
    keep = y != target
    if not keep.any():
        raise ValueError("no non-target example in the test set")
    return float(np.mean(np.asarray(predict(add_trigger(X[keep], trigger, mode))) == target))
