"""Split one dataset into federated clients.

Every partitioner returns a list of index arrays, one per client; together they cover each
sample at most once. Pass the arrays to ``Dataset.subset`` (or index ``X``/``y``) to build clients.

* :func:`iid_partition` -- shuffle and deal out evenly (the easy, unrealistic case).
* :func:`dirichlet_partition` -- label skew: for every class, the share of its samples that
  goes to each client is drawn from ``Dirichlet(alpha)``. Small alpha (0.1) = each client sees
  few classes; large alpha (100) = close to IID.
* :func:`quantity_skew_partition` -- IID labels, but client sizes drawn from ``Dirichlet(beta)``.
* :func:`group_partition` -- natural clients: one client per value of ``Dataset.groups``
  (one speaker, one subject, one recording device).
"""

from __future__ import annotations

import numpy as np


def _check_n_clients(n_clients, n_samples):
    if int(n_clients) != n_clients or n_clients < 1:
        raise ValueError(f"n_clients must be a positive integer, got {n_clients!r}")
    if n_clients > n_samples:
        raise ValueError(f"cannot split {n_samples} samples into {n_clients} non-empty clients; use fewer clients")


def iid_partition(n_samples: int, n_clients: int, seed: int = 0) -> list[np.ndarray]:
    """Shuffle ``range(n_samples)`` and split it into ``n_clients`` near-equal parts."""
    _check_n_clients(n_clients, n_samples)
    perm = np.random.default_rng(seed).permutation(n_samples)
    return [np.sort(p) for p in np.array_split(perm, n_clients)]


def dirichlet_partition(y, n_clients: int, alpha: float, seed: int = 0, min_size: int = 2,
                        max_tries: int = 100) -> list[np.ndarray]:
    """Label-skewed split: class c's samples are shared among clients with proportions ~ Dir(alpha).

    Redraws (up to ``max_tries`` times) until every client has at least ``min_size`` samples,
    the usual recipe (Hsu et al. 2019, "Measuring the effects of non-identical data distribution").
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be a 1-D array of labels, got shape {y.shape}")
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0 (small = strong label skew, large = near IID), got {alpha}")
    _check_n_clients(n_clients, len(y))
    if min_size * n_clients > len(y):
        raise ValueError(f"min_size={min_size} x {n_clients} clients exceeds the {len(y)} samples; lower min_size")
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    for _ in range(max_tries):
        parts: list[list[np.ndarray]] = [[] for _ in range(n_clients)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(y == c))
            props = rng.dirichlet(np.full(n_clients, float(alpha)))
            cuts = (np.cumsum(props)[:-1] * len(idx)).astype(int)
            for k, chunk in enumerate(np.split(idx, cuts)):
                parts[k].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise RuntimeError(f"no Dirichlet(alpha={alpha}) split gave every one of {n_clients} clients >= {min_size} "
                       f"samples in {max_tries} tries; raise alpha, lower min_size or use fewer clients")


def quantity_skew_partition(n_samples: int, n_clients: int, beta: float = 0.5, seed: int = 0,
                            min_size: int = 2) -> list[np.ndarray]:
    """IID samples, skewed client sizes: sizes ~ Dirichlet(beta) (small beta = very unequal)."""
    _check_n_clients(n_clients, n_samples)
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if min_size * n_clients > n_samples:
        raise ValueError(f"min_size={min_size} x {n_clients} clients exceeds the {n_samples} samples; lower min_size")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n_samples)
    spare = n_samples - min_size * n_clients
    sizes = min_size + np.floor(rng.dirichlet(np.full(n_clients, float(beta))) * spare).astype(int)
    sizes[: n_samples - sizes.sum()] += 1  # flooring lost < 1 sample per client: hand them back
    return [np.sort(p) for p in np.split(perm, np.cumsum(sizes)[:-1])]


def group_partition(groups) -> list[np.ndarray]:
    """One client per distinct value of ``groups`` (e.g. ``Dataset.groups``: speaker / subject id).

    Clients are ordered by group value; ``client_groups(groups)`` gives that order.
    """
    if groups is None:
        raise ValueError("this dataset has no groups (Dataset.groups is None): use iid_partition or "
                         "dirichlet_partition instead, or a dataset with subjects/speakers")
    groups = np.asarray(groups)
    return [np.flatnonzero(groups == g) for g in np.unique(groups)]


def client_groups(groups) -> np.ndarray:
    """The group value of each client built by :func:`group_partition`."""
    return np.unique(np.asarray(groups))


def label_counts(parts, y, n_classes: int | None = None) -> np.ndarray:
    """(n_clients, n_classes) matrix of how many samples of each class every client holds."""
    y = np.asarray(y)
    n_classes = int(y.max()) + 1 if n_classes is None else n_classes
    return np.stack([np.bincount(y[p], minlength=n_classes) for p in parts])
