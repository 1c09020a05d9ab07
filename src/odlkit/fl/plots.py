"""Plots for federated runs (matplotlib): accuracy per round, client label mix, per-client accuracy."""

from __future__ import annotations

import numpy as np


def _ax(ax, figsize=(6.0, 4.0)):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=figsize)
    return ax


def accuracy_per_round(histories: dict, ax=None, title: str | None = None, metric: str = "accuracy",
                       ylim: tuple[float, float] | None = None):
    """One line per run: accuracy (global if available, else federated) against the round."""
    ax = _ax(ax)
    for label, h in histories.items():
        y = getattr(h, metric) if metric != "accuracy" else h.accuracy
        ax.plot(h.round, y, marker=".", label=label)
    ax.set_xlabel("round")
    ax.set_ylabel(metric.replace("_", " "))
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def label_mix(counts: np.ndarray, class_names=None, ax=None, title: str | None = None):
    """Stacked bars: how many samples of each class every client holds."""
    ax = _ax(ax, (8.0, 3.0))
    counts = np.asarray(counts)
    bottom = np.zeros(len(counts))
    cmap = __import__("matplotlib").colormaps["tab10"]
    for c in range(counts.shape[1]):
        ax.bar(np.arange(len(counts)), counts[:, c], bottom=bottom, color=cmap(c % 10),
               label=None if class_names is None else str(class_names[c]))
        bottom += counts[:, c]
    ax.set_xlabel("client")
    ax.set_ylabel("samples")
    if class_names is not None and counts.shape[1] <= 12:
        ax.legend(fontsize=7, ncol=2, loc="upper right")
    if title:
        ax.set_title(title)
    return ax


def client_accuracy(h, ax=None, names=None, title: str | None = None):
    """Final accuracy of the global model on each client's own data (federated evaluation)."""
    ax = _ax(ax, (8.0, 3.0))
    acc = np.asarray(h.client_accuracy[-1])
    ax.bar(np.arange(len(acc)), acc, color="tab:blue")
    fed = h.federated_accuracy[-1]
    ax.axhline(fed, color="k", ls="--", lw=1, label=f"sample-weighted mean {fed:.2f}")
    ax.set_xticks(np.arange(len(acc)), names if names is not None else np.arange(len(acc)),
                  rotation=45 if names is not None else 0, fontsize=7)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("accuracy on the client's data")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax
