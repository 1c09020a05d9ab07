"""Small, generic plotting helpers shared by the chapter and lab notebooks.

Every function draws on a matplotlib ``Axes`` (a new figure is made when ``ax`` is None)
and returns that ``Axes`` so a notebook can add titles or annotations. Only numpy,
matplotlib and (for t-SNE / PCA) scikit-learn are imported; no TensorFlow.

- :func:`learning_curves`: loss / accuracy per epoch for one or several runs.
- :func:`accuracy_vs_samples`: a metric against the number of training samples (mean and a
  band over seeds), the sample-efficiency plot of transfer learning and data compression.
- :func:`confusion_matrix`: counts or row-normalised rates with class names.
- :func:`embedding_scatter`: 2-D PCA or t-SNE projection of feature vectors coloured by class.
- :func:`imu_window`: the channels of one time-series window (e.g. a (50, 6) IMU window).
- :func:`bar_comparison`: one bar per method, e.g. the accuracy of several transfer settings.
- :func:`pipeline_diagram`: rows of boxes joined by arrows (e.g. two deployment pipelines).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

__all__ = [
    "learning_curves",
    "accuracy_vs_samples",
    "confusion_matrix",
    "embedding_scatter",
    "imu_window",
    "bar_comparison",
    "pipeline_diagram",
]


def _axes(ax, figsize=(6.0, 4.0)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _history_dict(h) -> Mapping[str, Sequence[float]]:
    """Accept a Keras ``History`` (has ``.history``), a dict of lists, or a plain sequence."""
    if hasattr(h, "history"):
        h = h.history
    if isinstance(h, Mapping):
        return h
    arr = np.asarray(h, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"a learning curve must be one value per epoch (1-D), got shape {arr.shape}")
    return {"value": arr}


def learning_curves(histories, metric: str = "loss", ax=None, validation: bool = True, title: str | None = None):
    """Plot ``metric`` per epoch for each run.

    ``histories`` is one run or a ``{label: run}`` mapping where a run is a Keras ``History``,
    a ``history`` dict (``{"loss": [...], "val_loss": [...]}``) or a plain list of values.
    With ``validation=True`` the ``val_<metric>`` series, when present, is drawn dashed.
    """
    if hasattr(histories, "history") or not isinstance(histories, Mapping) or "loss" in histories or metric in histories:
        histories = {"": histories}
    ax = _axes(ax)
    for i, (label, h) in enumerate(histories.items()):
        d = _history_dict(h)
        key = metric if metric in d else ("value" if "value" in d else None)
        if key is None:
            raise KeyError(f"run {label!r} has no {metric!r} series; available: {sorted(d)}")
        color = f"C{i % 10}"
        y = np.asarray(d[key], dtype=float)
        epochs = np.arange(1, len(y) + 1)
        ax.plot(epochs, y, color=color, label=(f"{label} train" if validation and f"val_{metric}" in d else label) or metric)
        if validation and f"val_{metric}" in d:
            yv = np.asarray(d[f"val_{metric}"], dtype=float)
            ax.plot(np.arange(1, len(yv) + 1), yv, color=color, ls="--", label=f"{label} val".strip())
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    if title:
        ax.set_title(title)
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    return ax


def accuracy_vs_samples(
    samples,
    curves: Mapping[str, np.ndarray],
    ax=None,
    ylabel: str = "test accuracy",
    xlabel: str = "training samples per class",
    chance: float | None = None,
    logx: bool = False,
    title: str | None = None,
):
    """Plot one curve per method of a metric against the number of samples.

    ``samples`` has length ``n``; each value of ``curves`` is shape ``(n,)`` or
    ``(n_seeds, n)``. With several seeds the mean is drawn with a +-1 std band.
    ``chance`` draws a horizontal reference line (e.g. ``1 / n_classes``).
    """
    x = np.asarray(samples, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"samples must be 1-D, got shape {x.shape}")
    if not curves:
        raise ValueError("curves is empty: pass {method_name: accuracies}")
    ax = _axes(ax)
    for i, (label, vals) in enumerate(curves.items()):
        v = np.asarray(vals, dtype=float)
        if v.ndim == 1:
            v = v[None, :]
        if v.ndim != 2 or v.shape[1] != len(x):
            raise ValueError(
                f"curve {label!r} has shape {np.asarray(vals).shape}; expected ({len(x)},) or (n_seeds, {len(x)}) "
                "to match samples"
            )
        mean, std = v.mean(0), v.std(0)
        color = f"C{i % 10}"
        ax.plot(x, mean, "o-", color=color, label=label, ms=4)
        if v.shape[0] > 1:
            ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2, lw=0)
    if chance is not None:
        ax.axhline(chance, color="gray", ls=":", lw=1, label="chance")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    return ax


def confusion_matrix(y_true, y_pred, class_names: Sequence[str] | None = None, normalize: bool = True, ax=None,
                     title: str | None = None, cmap: str = "Blues"):
    """Draw the confusion matrix (rows = true class, columns = predicted class).

    With ``normalize=True`` each row is divided by its count (per-class recall on the
    diagonal). Returns the Axes; the matrix itself is in ``ax.confusion_matrix_``.
    """
    yt = np.asarray(y_true).astype(int).ravel()
    yp = np.asarray(y_pred).astype(int).ravel()
    if yt.shape != yp.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {yt.shape[0]} and {yp.shape[0]}")
    n = int(max(yt.max(initial=-1), yp.max(initial=-1)) + 1)
    if class_names is not None:
        if len(class_names) < n:
            raise ValueError(f"{len(class_names)} class names for labels up to {n - 1}: pass one name per class")
        n = len(class_names)
    cm = np.zeros((n, n), dtype=float)
    np.add.at(cm, (yt, yp), 1)
    if normalize:
        cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    ax = _axes(ax, figsize=(1.0 + 0.6 * n, 0.8 + 0.6 * n))
    ax.imshow(cm, cmap=cmap, vmin=0, vmax=1 if normalize else None)
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    thresh = cm.max() / 2 if cm.size else 0
    for i in range(n):
        for j in range(n):
            txt = f"{cm[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
            ax.text(j, i, txt, ha="center", va="center", fontsize=8, color="white" if cm[i, j] > thresh else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    ax.confusion_matrix_ = cm
    return ax


def embedding_scatter(Z, y, class_names: Sequence[str] | None = None, method: str = "pca", ax=None,
                      seed: int = 0, title: str | None = None, s: float = 12):
    """Project feature vectors ``Z`` (n, d) to 2-D with PCA or t-SNE and colour them by ``y``.

    Returns the Axes; the 2-D coordinates are in ``ax.embedding_``.
    """
    Z = np.asarray(Z, dtype=float)
    y = np.asarray(y).ravel()
    if Z.ndim != 2:
        raise ValueError(f"Z must be 2-D (n_samples, n_features), got shape {Z.shape}; flatten or pool first")
    if len(y) != len(Z):
        raise ValueError(f"Z has {len(Z)} rows but y has {len(y)} labels")
    if method == "pca":
        from sklearn.decomposition import PCA

        P = PCA(n_components=2, random_state=seed).fit_transform(Z) if Z.shape[1] > 2 else Z[:, :2]
    elif method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(2, (len(Z) - 1) // 3)))
        P = TSNE(n_components=2, random_state=seed, perplexity=perplexity, init="pca").fit_transform(Z)
    else:
        raise ValueError(f"method must be 'pca' or 'tsne', got {method!r}")
    ax = _axes(ax, figsize=(5.0, 4.5))
    for i, c in enumerate(np.unique(y)):
        m = y == c
        name = class_names[int(c)] if class_names is not None and 0 <= int(c) < len(class_names) else str(c)
        ax.scatter(P[m, 0], P[m, 1], s=s, color=f"C{i % 10}", label=name, alpha=0.8)
    ax.set_xlabel(f"{method.upper()} 1")
    ax.set_ylabel(f"{method.upper()} 2")
    if title:
        ax.set_title(title)
    ax.legend(frameon=False, fontsize=8, markerscale=1.5)
    ax.embedding_ = P
    return ax


def _imu_unit(names: Sequence[str]) -> str:
    """The y-axis label for IMU channels in the kit's units (accelerometer in g, gyroscope in deg/s)."""
    kinds = {"a" if n.lower().startswith("a") else "g" if n.lower().startswith("g") else "?" for n in names}
    if kinds == {"a"}:
        return "acceleration (g)"
    if kinds == {"g"}:
        return "angular rate (deg/s)"
    if kinds == {"a", "g"}:
        return "acceleration (g) / angular rate (deg/s)"
    return "value"


def imu_window(x, channels: Sequence[str] | None = None, sample_rate_hz: float | None = None, ax=None,
               title: str | None = None, ylabel: str | None = None):
    """Plot every channel of one window ``x`` of shape (T, C) against time (or sample index).

    ``ylabel`` defaults to the unit of the channels (``ax ay az``: g, ``gx gy gz``: deg/s, the kit's
    units); pass e.g. ``"standardized value"`` for a window divided by its statistics.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"one window must be (T, C), got shape {x.shape}; index a single window first (X[i])")
    T, C = x.shape
    if channels is not None and len(channels) != C:
        raise ValueError(f"{len(channels)} channel names for {C} channels")
    names = list(channels) if channels is not None else [f"ch{i}" for i in range(C)]
    t = np.arange(T) / sample_rate_hz if sample_rate_hz else np.arange(T)
    ax = _axes(ax, figsize=(6.0, 3.0))
    for i in range(C):
        ax.plot(t, x[:, i], label=names[i], lw=1.2)
    ax.set_xlabel("time (s)" if sample_rate_hz else "sample")
    ax.set_ylabel(ylabel if ylabel is not None else _imu_unit(names), fontsize=11)
    ax.xaxis.label.set_fontsize(11)
    ax.tick_params(labelsize=10)
    if title:
        ax.set_title(title, fontsize=12)
    ax.legend(frameon=False, fontsize=10, ncol=min(C, 6))
    ax.grid(alpha=0.3)
    return ax


def bar_comparison(values: Mapping[str, float], ax=None, ylabel: str = "accuracy", errors: Mapping[str, float] | None = None,
                   reference: float | None = None, reference_label: str = "reference", title: str | None = None):
    """One bar per entry of ``values`` (label -> number), value printed on top.

    ``errors`` (same keys) adds error bars; ``reference`` draws a horizontal line
    (e.g. chance level or the from-scratch baseline).
    """
    if not values:
        raise ValueError("values is empty: pass {label: number}")
    labels = list(values)
    v = np.array([float(values[k]) for k in labels])
    err = None
    if errors is not None:
        missing = [k for k in labels if k not in errors]
        if missing:
            raise KeyError(f"errors lacks entries for {missing}")
        err = np.array([float(errors[k]) for k in labels])
    ax = _axes(ax, figsize=(1.5 + 1.1 * len(labels), 3.5))
    bars = ax.bar(range(len(labels)), v, yerr=err, color=[f"C{i % 10}" for i in range(len(labels))], capsize=3)
    for b, val in zip(bars, v, strict=True):
        ax.text(b.get_x() + b.get_width() / 2, b.get_height(), f"{val:.2f}", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    if reference is not None:
        # the value goes in the legend, placed below the bars, so the line's label never sits on a
        # bar's own value label
        ax.axhline(reference, color="gray", ls=":", lw=1, label=f"{reference_label} ({reference:.2f})")
        ax.legend(frameon=True, framealpha=0.9, loc="lower right", fontsize=9)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    return ax


def pipeline_diagram(rows: Mapping[str, Sequence[str]], ax=None, title: str | None = None,
                     highlight: Mapping[str, Sequence[int]] | None = None, width: float = 2.2):
    """Draw each entry ``{row label: [stage, stage, ...]}`` as a row of boxes joined by arrows.

    ``highlight`` maps a row label to the indices of stages drawn in a second colour (e.g. the
    stages that run on the device). Returns the Axes; the box centres are in ``ax.boxes_``
    as ``{(row label, stage index): (x, y)}``.
    """
    if not rows:
        raise ValueError("rows is empty: pass {row label: [stage names]}")
    for label, stages in rows.items():
        if isinstance(stages, str) or not len(stages):
            raise ValueError(f"row {label!r} must be a non-empty list of stage names, got {stages!r}")
    highlight = highlight or {}
    n_cols = max(len(v) for v in rows.values())
    # at most ~10 inches wide, the width of a notebook cell, so 11 pt text is shown at 11 pt
    ax = _axes(ax, figsize=(min(10.0, 1.8 + n_cols * 1.7), 0.8 + 1.3 * len(rows)))
    boxes = {}
    for r, (label, stages) in enumerate(rows.items()):
        y = -1.4 * r
        ax.text(-0.3, y, label, ha="right", va="center", fontsize=11, fontweight="bold")
        for i, stage in enumerate(stages):
            x = i * (width + 0.6) + width / 2
            color = "C1" if i in set(highlight.get(label, ())) else "C0"
            ax.add_patch(plt.Rectangle((x - width / 2, y - 0.45), width, 0.9, facecolor=color, alpha=0.25,
                                       edgecolor=color, lw=1.5))
            ax.text(x, y, stage, ha="center", va="center", fontsize=9.5)
            boxes[(label, i)] = (x, y)
            if i:
                ax.annotate("", xy=(x - width / 2, y), xytext=(x - width / 2 - 0.6, y),
                            arrowprops={"arrowstyle": "->", "lw": 1.2})
    ax.set_xlim(-0.2 - 0.12 * max(len(k) for k in rows), n_cols * (width + 0.6))
    ax.set_ylim(-1.4 * (len(rows) - 1) - 0.7, 0.7)
    ax.axis("off")
    if title:
        ax.set_title(title)
    ax.boxes_ = boxes
    return ax
