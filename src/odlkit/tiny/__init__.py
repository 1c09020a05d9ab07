"""Tiny training: where training memory goes and the techniques that shrink it (chapter 2).

- :mod:`odlkit.tiny.memory`: the memory calculator (``training_memory``, ``head_training_bytes``);
- :mod:`odlkit.tiny.techniques`: plan-based training, bias-only / lite residual, contribution
  analysis and sparse update, int8 training with quantization-aware scaling, layer-wise training,
  recomputation;
- :mod:`odlkit.tiny.classical`: online classical learners;
- :mod:`odlkit.tiny.pruning`, :mod:`odlkit.tiny.compression`.

TensorFlow is imported lazily (only by functions that need it).
"""

from odlkit.tiny.memory import (
    OPTIMIZER_SLOTS,
    LayerMemory,
    MemoryReport,
    dense_backward_bytes,
    format_bytes,
    head_training_bytes,
    head_training_memory,
    resolve_plan,
    training_memory,
)
from odlkit.tiny.techniques import (
    accuracy,
    add_lite_residual,
    clone_model,
    contribution_analysis,
    flat_classifier,
    grad_weight_ratios,
    layerwise_train,
    qas_scale_gradient,
    quant_scale,
    recompute_benchmark,
    select_under_budget,
    select_variables,
    train,
)

__all__ = [
    "OPTIMIZER_SLOTS", "LayerMemory", "MemoryReport", "dense_backward_bytes", "format_bytes",
    "head_training_bytes", "head_training_memory", "resolve_plan", "training_memory",
    "accuracy", "add_lite_residual", "clone_model", "contribution_analysis", "flat_classifier", "grad_weight_ratios",
    "layerwise_train", "qas_scale_gradient", "quant_scale", "recompute_benchmark",
    "select_under_budget", "select_variables", "train",
]
