"""Federated learning from scratch (numpy only): chapter 3 and lab 3 (:mod:`odlkit.labs.lab3`) build on this.

* partitioners -- :mod:`odlkit.fl.partition` (IID, Dirichlet label skew, quantity skew, natural groups)
* models       -- :mod:`odlkit.fl.models` (softmax regression, small MLP; parameters = one flat vector)
* clients      -- :mod:`odlkit.fl.client` (Flower-style ``fit``/``evaluate``; ``ClientPool`` trains K at once;
                   every pool follows the :class:`Pool` protocol, failures are data)
* aggregators  -- :mod:`odlkit.fl.aggregators` (plain functions ``(updates[K, D], weights[K]) -> [D]``)
* compression  -- :mod:`odlkit.fl.compression` (int8, top-k, error feedback, exact bytes)
* the server   -- :func:`run_fedavg`, the one FedAvg loop (selection, dropout, FedAvg/FedAvgM, history)
* Flower       -- :mod:`odlkit.fl.flower` (imported on demand; needs ``flwr``)
"""

from odlkit.fl.aggregators import (
    Aggregator,
    ServerOptimizer,
    check_updates,
    clipped_mean,
    uniform_mean,
    weighted_mean,
)
from odlkit.fl.client import (
    ClientPool,
    Failure,
    FitResults,
    LoopPool,
    ManagedPool,
    NumpyClient,
    Pool,
    batch_schedule,
    local_sgd,
    pad_clients,
)
from odlkit.fl.compression import ChainCodec, ErrorFeedback, Float32Codec, Int8Codec, TopKCodec, get_codec
from odlkit.fl.models import MLP, Layout, SoftmaxRegression
from odlkit.fl.partition import (
    client_groups,
    dirichlet_partition,
    group_partition,
    iid_partition,
    label_counts,
    quantity_skew_partition,
)
from odlkit.fl.server import History, central_accuracy, run_fedavg, select_clients

__all__ = [
    "Aggregator", "ServerOptimizer", "check_updates", "clipped_mean", "uniform_mean", "weighted_mean",
    "ClientPool", "Failure", "FitResults", "LoopPool", "ManagedPool", "NumpyClient", "Pool", "batch_schedule", "local_sgd", "pad_clients",
    "ChainCodec", "ErrorFeedback", "Float32Codec", "Int8Codec", "TopKCodec", "get_codec",
    "MLP", "Layout", "SoftmaxRegression",
    "client_groups", "dirichlet_partition", "group_partition", "iid_partition", "label_counts",
    "quantity_skew_partition",
    "History", "central_accuracy", "run_fedavg", "select_clients",
]
