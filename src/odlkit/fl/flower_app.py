"""Importable Flower app objects for a real deployment (``flwr run`` against a SuperLink).

A Flower deployment loads its ``ServerApp`` and ``ClientApp`` by reference from the app's
``pyproject.toml``::

    [tool.flwr.app.components]
    serverapp = "odlkit.fl.flower_app:server_app"
    clientapp = "odlkit.fl.flower_app:client_app"

Both are thin wrappers around :func:`odlkit.fl.flower.make_server_app` and
:func:`odlkit.fl.flower.make_client_app`: they read the task and the FedAvg settings from the
run config (``[tool.flwr.app.config]``, overridable with ``flwr run --run-config``), build the
same clients as an in-process :func:`odlkit.fl.run_fedavg` run with :func:`make_task`, and the
server writes its :class:`odlkit.fl.History` plus the final weights to the JSON file named by
``history-path``. Each SuperNode picks its client by ``partition-id`` in its node config.

Run-config keys (all required; :func:`odlkit.fl.flower_deploy.run_config` writes them):
``task`` (``"digits"``), ``num-clients``, ``alpha`` (Dirichlet label skew), ``partition-seed``,
``rounds``, ``local-epochs``, ``lr``, ``batch-size`` (-1 = full batch), ``seed``,
``history-path``.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from odlkit import fl
from odlkit.fl.flower import make_client_app, make_server_app, result_to_history

TASKS = ("digits",)
RUN_CONFIG_KEYS = ("task", "num-clients", "alpha", "partition-seed", "rounds", "local-epochs", "lr",
                   "batch-size", "seed", "history-path")


@lru_cache(maxsize=4)
def make_task(task: str = "digits", num_clients: int = 3, alpha: float = 0.5, partition_seed: int = 0):
    """``(model, [(X_k, y_k)], (X_test, y_test))`` for a named task, split over ``num_clients``.

    ``digits``: :func:`odlkit.fl.tasks.digits_task` (standardized 8x8 digits, stratified test
    split), softmax regression, training set split with :func:`odlkit.fl.dirichlet_partition`.
    Deterministic, so the ServerApp, every ClientApp process and an in-process reference run
    all build the same partitions.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")
    if int(num_clients) < 1:
        raise ValueError(f"num_clients must be >= 1, got {num_clients}")
    from odlkit.fl.tasks import digits_task

    t = digits_task(seed=int(partition_seed))
    parts = fl.dirichlet_partition(t.y_train, int(num_clients), float(alpha), seed=int(partition_seed))
    model = fl.SoftmaxRegression(t.n_features, t.n_classes)
    return model, t.clients(parts), (t.X_test, t.y_test)


def _settings(run_config) -> dict:
    missing = [k for k in RUN_CONFIG_KEYS if k not in run_config]
    if missing:
        raise KeyError(f"the Flower run config lacks {missing}; set them in [tool.flwr.app.config] of the app's "
                       "pyproject.toml (odlkit.fl.flower_deploy.write_app writes all of them)")
    rc = {k: run_config[k] for k in RUN_CONFIG_KEYS}
    bs = int(rc["batch-size"])
    return dict(task=str(rc["task"]), num_clients=int(rc["num-clients"]), alpha=float(rc["alpha"]),
                partition_seed=int(rc["partition-seed"]), rounds=int(rc["rounds"]),
                local_epochs=int(rc["local-epochs"]), lr=float(rc["lr"]), batch_size=None if bs <= 0 else bs,
                seed=int(rc["seed"]), history_path=str(rc["history-path"]))


# ---------------------------------------------------------------- server side
server_app = ServerApp()


@server_app.main()
def _server_main(grid: Grid, context: Context) -> None:
    s = _settings(context.run_config)
    model, _, (Xte, yte) = make_task(s["task"], s["num_clients"], s["alpha"], s["partition_seed"])
    sink: dict = {}
    inner = make_server_app(model.init(s["seed"]), s["rounds"], s["num_clients"], fraction_train=1.0,
                            fraction_evaluate=0.0, local_epochs=s["local_epochs"], lr=s["lr"],
                            batch_size=s["batch_size"], seed=s["seed"],
                            evaluate_fn=fl.central_accuracy(model, Xte, yte), sink=sink)
    inner(grid, context)
    cfg = {k: v for k, v in s.items() if k != "history_path"}
    hist = result_to_history(sink["result"], s["rounds"], sink["times"], dict(cfg, deployment="superlink"))
    out = Path(s["history_path"])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    # float32 -> Python float is exact, so the weights survive the JSON round trip bit for bit
    tmp.write_text(json.dumps({"history": hist.to_dict(), "weights": np.asarray(sink["weights"]).tolist(),
                               "run_id": int(context.run_id), "serverapp_pid": os.getpid()}))
    tmp.replace(out)  # atomic: a reader never sees half a file


# ---------------------------------------------------------------- client side
@lru_cache(maxsize=4)
def _client_app_for(task: str, num_clients: int, alpha: float, partition_seed: int) -> ClientApp:
    model, data, _ = make_task(task, num_clients, alpha, partition_seed)

    def client_fn(cid: int):
        if not 0 <= cid < len(data):
            raise ValueError(f"partition-id {cid} is out of range for num-clients={len(data)}")
        return fl.NumpyClient(model, *data[cid], cid=cid)

    return make_client_app(client_fn)


def _inner_client(context: Context) -> ClientApp:
    s = _settings(context.run_config)
    return _client_app_for(s["task"], s["num_clients"], s["alpha"], s["partition_seed"])


client_app = ClientApp()


@client_app.train()
def _train(msg: Message, context: Context) -> Message:
    return _inner_client(context)(msg, context)


@client_app.evaluate()
def _evaluate(msg: Message, context: Context) -> Message:
    return _inner_client(context)(msg, context)
