"""Magnitude pruning of a backbone and what it does to training memory.

Unstructured pruning zeroes the smallest-magnitude weights of each kernel. Stored sparsely
(a float32 value + a 16-bit index per nonzero), the weights shrink, and a sparse update
needs gradients and optimizer state only for the nonzeros; the stored activations do not
shrink (the layers keep their width), which is why structured (channel) pruning matters for
activation memory.
"""

from __future__ import annotations

import numpy as np

from odlkit.tiny.memory import OPTIMIZER_SLOTS, training_memory
from odlkit.tiny.techniques import select_variables

__all__ = ["magnitude_prune", "sparse_bytes", "pruned_training_memory"]


def magnitude_prune(model, sparsity: float, layer_names=None) -> dict:
    """Zero the ``sparsity`` fraction of smallest |w| in each kernel (in place) and return the
    masks ``{variable.path: 0/1 array}`` (pass them to ``train(..., masks=...)``).
    ``layer_names``: layers to prune (default: every layer with a kernel except the last)."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}")
    with_kernels = [la for la in model.layers if any(len(v.shape) >= 2 for v in la.weights)]
    if layer_names is None:
        layers = with_kernels[:-1]
    else:
        known = {la.name for la in with_kernels}
        bad = [n for n in layer_names if n not in known]
        if bad:
            raise ValueError(f"layers {bad} have no kernel; choose among {sorted(known)}")
        layers = [la for la in with_kernels if la.name in set(layer_names)]
    masks = {}
    for la in layers:
        for v in la.weights:
            if len(v.shape) < 2:
                continue
            w = np.asarray(v.numpy())
            k = int(round(sparsity * w.size))
            mask = np.ones(w.size, dtype=np.float32)
            if k > 0:
                mask[np.argsort(np.abs(w).ravel(), kind="stable")[:k]] = 0.0
            mask = mask.reshape(w.shape)
            v.assign(w * mask)
            masks[v.path] = mask
    return masks


def sparse_bytes(n_nonzero: int, value_bytes: int = 4, index_bytes: int = 2) -> int:
    """Bytes of a sparse tensor stored as (value, index) pairs."""
    if n_nonzero < 0:
        raise ValueError("n_nonzero must be >= 0")
    return n_nonzero * (value_bytes + index_bytes)


def pruned_training_memory(model, masks: dict, strategy="full", optimizer: str = "momentum",
                           batch_size: int = 1) -> dict:
    """Training memory (float32) when pruned kernels are stored sparsely and updated sparsely.

    Starts from :func:`odlkit.tiny.training_memory` and, for each masked kernel, replaces its
    dense weight bytes by :func:`sparse_bytes` and counts gradients/optimizer state for the
    nonzeros only. Activations and working buffers are unchanged (the layers keep their width).
    Returns a dict like ``MemoryReport.as_dict()`` (``peak_bytes`` and ``ram_bytes`` adjusted).
    """
    rep = training_memory(model, strategy, optimizer, batch_size, "float32")
    updated = {v.path for v in select_variables(model, strategy)}
    slots = OPTIMIZER_SLOTS[optimizer]
    w, g, o = rep.weight_bytes, rep.gradient_bytes, rep.optimizer_bytes
    ram = rep.ram_bytes  # peak RAM, frozen weights in flash: only updated kernels shrink it
    for v in model.weights:
        if v.path not in masks:
            continue
        size = int(np.prod(v.shape))
        nnz = int(np.count_nonzero(masks[v.path]))
        w += sparse_bytes(nnz) - size * 4
        if v.path in updated:
            g -= (size - nnz) * 4
            o -= (size - nnz) * 4 * slots
            ram += sparse_bytes(nnz) - size * 4 - (size - nnz) * 4 * (1 + slots)
    d = rep.as_dict()
    d.update({"weights": w, "gradients": g, "optimizer_state": o,
              "training_bytes": g + o + rep.activation_bytes,
              "total_bytes": w + g + o + rep.activation_bytes,
              "peak_bytes": rep.peak_bytes + (w - rep.weight_bytes) + (g - rep.gradient_bytes)
              + (o - rep.optimizer_bytes), "ram_bytes": ram})
    return d
