"""The same clients scaled out with Flower (``flwr`` 1.42, Message API).

:func:`make_client_app` wraps any object with the ``fit``/``evaluate`` API of
:class:`odlkit.fl.NumpyClient` into a Flower ``ClientApp``; :func:`make_server_app` runs Flower's
own ``FedAvg`` strategy. :func:`run_flower_simulation` runs both in Flower's simulation engine
(Ray backend, one process per virtual node) and returns the same :class:`odlkit.fl.History`
as :func:`odlkit.fl.run_fedavg`, so the two can be compared round by round.

Each client is identified by the ``partition-id`` of its node (set by the simulation engine, or
by ``flower-supernode --node-config "partition-id=3 num-partitions=10"`` on a real deployment),
and ``client_fn(partition_id)`` builds it. Clients are re-created for every message, as Flower
ClientApps are stateless: use full sharing here (personal layers would have to live in
``context.state``).
"""

from __future__ import annotations

import logging
import time

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from odlkit.fl.server import History


def _weights(arrays: ArrayRecord) -> np.ndarray:
    return np.asarray(arrays.to_numpy_ndarrays()[0], dtype=np.float32)


def _partition_id(context: Context) -> int:
    try:
        return int(context.node_config["partition-id"])
    except KeyError as err:
        raise KeyError("this Flower node has no 'partition-id' in its node config; start it with "
                       "flower-supernode --node-config \"partition-id=0 num-partitions=N\"") from err


def make_client_app(client_fn) -> ClientApp:
    """A Flower ``ClientApp`` that trains/evaluates ``client_fn(partition_id)`` (an odlkit client)."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        cid = _partition_id(context)
        client = client_fn(cid)
        cfg = dict(msg.content["config"])
        config = {"round": int(cfg.get("server-round", 1)), "local_epochs": int(cfg["local_epochs"]),
                  "lr": float(cfg["lr"]), "batch_size": int(cfg["batch_size"]) if cfg["batch_size"] > 0 else None,
                  "seed": int(cfg["seed"])}
        w, n, metrics = client.fit(_weights(msg.content["arrays"]), config)
        content = RecordDict({"arrays": ArrayRecord([np.asarray(w, dtype=np.float32)]),
                              "metrics": MetricRecord({"num-examples": int(n),
                                                       **{k: float(v) for k, v in metrics.items()}})})
        return Message(content=content, reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        cid = _partition_id(context)
        loss, n, metrics = client_fn(cid).evaluate(_weights(msg.content["arrays"]), {})
        content = RecordDict({"metrics": MetricRecord({"num-examples": int(n), "loss": float(loss),
                                                       **{k: float(v) for k, v in metrics.items()}})})
        return Message(content=content, reply_to=msg)

    return app


def make_server_app(init_weights, rounds: int, n_clients: int, *, fraction_train: float = 1.0,
                    fraction_evaluate: float = 1.0, local_epochs: int = 1, lr: float = 0.1,
                    batch_size: int | None = 32, seed: int = 0, evaluate_fn=None, sink: dict | None = None) -> ServerApp:
    """A Flower ``ServerApp`` running ``flwr.serverapp.strategy.FedAvg`` for ``rounds`` rounds.

    ``evaluate_fn(weights) -> accuracy`` scores the global model centrally each round.
    ``sink`` (a dict) receives the final weights, the ``Result`` and per-round timings.
    """
    app = ServerApp()
    sink = {} if sink is None else sink

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        # min_*_nodes = the intended sample size: Flower computes the sample size from the nodes
        # connected *so far*, so without it round 1 may start with 1 node while the rest boot
        strategy = FedAvg(fraction_train=fraction_train, fraction_evaluate=fraction_evaluate,
                          min_train_nodes=max(1, int(n_clients * fraction_train)),
                          min_evaluate_nodes=max(0, int(n_clients * fraction_evaluate)),
                          min_available_nodes=n_clients)
        times = []

        def central(server_round: int, arrays: ArrayRecord):
            times.append(time.perf_counter())
            if evaluate_fn is None:
                return None
            return MetricRecord({"accuracy": float(evaluate_fn(_weights(arrays)))})

        cfg = ConfigRecord({"local_epochs": int(local_epochs), "lr": float(lr),
                            "batch_size": -1 if batch_size is None else int(batch_size), "seed": int(seed)})
        result = strategy.start(grid=grid, initial_arrays=ArrayRecord([np.asarray(init_weights, np.float32)]),
                                num_rounds=rounds, train_config=cfg, evaluate_fn=central)
        sink.update(weights=_weights(result.arrays), result=result, times=times)

    return app


def result_to_history(result, rounds: int, times=(), config=None) -> History:
    """Convert a Flower ``Result`` into an :class:`odlkit.fl.History` (accuracy per round)."""
    h = History(config=dict(config or {}, engine="flower"))
    for t in range(rounds + 1):
        h.round.append(t)
        central = result.evaluate_metrics_serverapp.get(t)
        h.global_accuracy.append(float(central["accuracy"]) if central is not None and "accuracy" in central else np.nan)
        fed = result.evaluate_metrics_clientapp.get(t)
        h.federated_accuracy.append(float(fed["accuracy"]) if fed is not None and "accuracy" in fed else np.nan)
        h.client_accuracy.append(np.array([]))
        tr = result.train_metrics_clientapp.get(t)
        h.train_loss.append(float(tr["train_loss"]) if tr is not None and "train_loss" in tr else np.nan)
        h.selected.append(np.array([], dtype=int))
        h.reported.append(0)
        h.bytes_up.append(0)
        h.bytes_down.append(0)
        h.seconds.append(float(times[t] - times[t - 1]) if 0 < t < len(times) else 0.0)
    return h


def start_ray(num_cpus: int = 2) -> list[str]:
    """Connect to this process's local Ray node (started once, shared by every simulation of the
    process; see :mod:`odlkit.raystart` for what makes its start-up hold under load), which
    Flower's simulation engine then reuses: Flower calls ``ray.init`` only if Ray is not
    initialised yet, and its ``ray.shutdown()`` at the end of a run only disconnects this driver.
    Returns the start-up attempts that failed (also logged and in ``odlkit.raystart.start_log``)."""
    from odlkit import raystart

    return raystart.connect_local(num_cpus)


def run_flower_simulation(client_fn, n_clients: int, init_weights, rounds: int, *, local_epochs: int = 1,
                          lr: float = 0.1, batch_size: int | None = 32, seed: int = 0, evaluate_fn=None,
                          fraction_train: float = 1.0, fraction_evaluate: float = 0.0,
                          num_cpus: float = 1.0, quiet: bool = True,
                          retries: int = 0) -> tuple[np.ndarray, History]:
    """Run FedAvg in Flower's simulation engine (Ray backend) with ``n_clients`` virtual nodes.

    ``client_fn(partition_id)`` must return an odlkit client (e.g. ``NumpyClient``); it is
    shipped to Ray worker processes, so keep the data it closes over small.
    Ray comes from :func:`start_ray` (one local node per process, retried start-up; failed
    attempts are in the returned history's ``config["ray_start_failures"]``). ``retries`` re-runs the whole (deterministic)
    simulation if it still fails before round 1 (a raylet can crash waiting for its agents).
    Returns the final weights and a :class:`History`.
    """
    from flwr.simulation import run_simulation

    if n_clients < 1:
        raise ValueError(f"n_clients must be >= 1, got {n_clients}")
    sink: dict = {}
    server = make_server_app(init_weights, rounds, n_clients, fraction_train=fraction_train,
                             fraction_evaluate=fraction_evaluate, local_epochs=local_epochs, lr=lr,
                             batch_size=batch_size, seed=seed, evaluate_fn=evaluate_fn, sink=sink)
    client = make_client_app(client_fn)
    flwr_logger = logging.getLogger("flwr")
    old = flwr_logger.level
    if quiet:
        flwr_logger.setLevel(logging.WARNING)
    try:
        for attempt in range(retries + 1):
            start_failures = start_ray(num_cpus=2)
            try:
                run_simulation(server_app=server, client_app=client, num_supernodes=n_clients,
                               backend_config={"client_resources": {"num_cpus": num_cpus, "num_gpus": 0.0},
                                               "init_args": {"num_cpus": 2, "include_dashboard": False,
                                                             "logging_level": "error", "log_to_driver": False}})
                break
            except RuntimeError:
                # Ray start-up can still fail on an overloaded machine before any round ran:
                # retry the whole (deterministic) run.
                import ray

                ray.shutdown()
                if attempt == retries or "weights" in sink:
                    raise
    finally:
        flwr_logger.setLevel(old)
    if "weights" not in sink:
        raise RuntimeError("the Flower simulation finished without a result; rerun with quiet=False to see its log")
    cfg = dict(rounds=rounds, clients=n_clients, local_epochs=local_epochs, lr=lr, batch_size=batch_size, seed=seed,
               ray_start_failures=start_failures)
    return sink["weights"], result_to_history(sink["result"], rounds, sink["times"], cfg)
