"""Client updates per second: odlkit.fl (vectorized pool, and client-by-client loop) vs Flower.

    .venv/bin/python benchmarks/fl_speed.py    (full mode; ODL_QUICK=1 for a smoke run)

Same task (digits, standardized), same model (softmax regression, 650 parameters), same
Dirichlet(0.5) partition into N clients, every client every round, 1 local epoch of minibatch
SGD (batch 16, lr 0.1), same seeds. A client update = one client's local training in one round.
Flower runs in its simulation engine (Ray backend): we report the whole wall time (with Ray
start-up) and the steady-state time per round measured between the server's evaluations.
Also reports the final accuracies, which should agree (same arithmetic).

The floor (20 and 1,000 clients): the clients' local training alone, i.e. the same
``odlkit.fl.local_sgd`` updates from the same global weights on data padded once, with a plain
weighted average between rounds and nothing else (no selection, no pool bookkeeping, no
history). ``pool/floor`` is ``run_fedavg`` on a ``ClientPool`` (no evaluation) over that floor,
timed alternately in the same run (best of 3 repeats each, the machine is shared); goal <= 1.2x.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_results  # noqa: E402

from odlkit import fl  # noqa: E402
from odlkit.config import quick  # noqa: E402
from odlkit.fl.tasks import digits_task  # noqa: E402

POOL_OVER_FLOOR_GOAL = 1.2


def floor_vs_pool(n_clients: int, rounds: int, repeats: int = 3) -> dict:
    """Best-of-``repeats`` seconds of ``run_fedavg`` + ``ClientPool`` and of the bare local training."""
    task = digits_task(seed=0)
    parts = (fl.dirichlet_partition(task.y_train, n_clients, 0.5, seed=0) if n_clients <= 100
             else fl.iid_partition(len(task.y_train), n_clients, seed=0))  # 1,000 clients: ~1-2 samples each
    data = task.clients(parts)
    model = fl.SoftmaxRegression(task.n_features, task.n_classes)
    kw = dict(local_epochs=1, lr=0.1, batch_size=16, seed=0)
    X, y, n = fl.pad_clients(data)
    ids = np.arange(n_clients)

    def floor():
        w = model.init(0)
        for t in range(1, rounds + 1):
            W, _ = fl.local_sgd(model, np.broadcast_to(w, (n_clients, w.size)), X, y, n, ids, {"round": t, **kw})
            w = ((n / n.sum()) @ W).astype(np.float32)
        return w

    def pool():
        w, _ = fl.run_fedavg(fl.ClientPool(model, data), model.init(0), rounds, eval_clients=False, **kw)
        return w

    best = {"floor": np.inf, "pool": np.inf}
    for _ in range(repeats):
        for name, fn in (("floor", floor), ("pool", pool)):
            t0 = time.perf_counter()
            w = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
            best[f"w_{name}"] = w
    same = bool(np.allclose(best.pop("w_floor"), best.pop("w_pool"), atol=1e-5))
    return {"clients": n_clients, "rounds": rounds, "floor_s": best["floor"], "pool_s": best["pool"],
            "pool_over_floor": best["pool"] / best["floor"], "goal": POOL_OVER_FLOOR_GOAL,
            "same_weights": same}


def main():
    n_clients, rounds = quick(full=20, quick=4), quick(full=10, quick=2)
    task = digits_task(seed=0)
    parts = fl.dirichlet_partition(task.y_train, n_clients, 0.5, seed=0)
    data = task.clients(parts)
    model = fl.SoftmaxRegression(task.n_features, task.n_classes)
    ev = fl.central_accuracy(model, task.X_test, task.y_test)
    kw = dict(local_epochs=1, lr=0.1, batch_size=16, seed=0)
    rows = []

    def client_fn(cid):
        return fl.NumpyClient(model, *data[cid], cid=cid)

    for name, make in [("odlkit ClientPool (vectorized)", lambda: fl.ClientPool(model, data)),
                       ("odlkit client loop", lambda: [client_fn(k) for k in range(n_clients)])]:
        t0 = time.perf_counter()
        _, h = fl.run_fedavg(make(), model.init(0), rounds, evaluate_fn=ev, eval_clients=False, **kw)
        dt = time.perf_counter() - t0
        steady = float(np.sum(h.seconds[1:]))
        rows.append({"engine": name, "wall_s": dt, "updates_per_s": n_clients * rounds / dt,
                     "steady_updates_per_s": n_clients * rounds / steady, "final_accuracy": float(h.accuracy[-1])})

    try:
        from odlkit.fl.flower import run_flower_simulation

        t0 = time.perf_counter()
        _, hf = run_flower_simulation(client_fn, n_clients, model.init(0), rounds, evaluate_fn=ev, **kw)
        dt = time.perf_counter() - t0
        steady = float(np.sum(hf.seconds[2:]))  # rounds 2.. (round 1 includes actor start-up)
        rows.append({"engine": "Flower simulation (Ray)", "wall_s": dt, "updates_per_s": n_clients * rounds / dt,
                     "steady_updates_per_s": n_clients * (rounds - 1) / steady if steady > 0 else float("nan"),
                     "final_accuracy": float(hf.accuracy[-1])})
    except Exception as err:  # Ray may fail to start on an overloaded machine: record it, do not hide it
        rows.append({"engine": "Flower simulation (Ray)", "wall_s": None, "updates_per_s": None,
                     "steady_updates_per_s": None, "final_accuracy": None,
                     "error": f"{type(err).__name__}: {err}"[:300]})

    print_table([{k: v for k, v in r.items() if k != "error"} for r in rows],
                f"FedAvg, {n_clients} clients x {rounds} rounds, digits, softmax regression")
    flower = rows[-1]
    ratio = rows[0]["updates_per_s"] / flower["updates_per_s"] if flower["updates_per_s"] else None
    if ratio is not None:
        print(f"\nodlkit vectorized / Flower simulation, client updates per second (wall): {ratio:.0f}x; "
              f"accuracy odlkit {rows[0]['final_accuracy']:.3f} vs Flower {flower['final_accuracy']:.3f}")
    else:
        print("\nFlower run failed:", flower.get("error"))
    floors = [floor_vs_pool(k, rounds) for k in (20, 1000)]
    print_table(floors, "ClientPool (run_fedavg, no evaluation) vs the floor: local training alone")
    write_results("fl_speed", {"n_clients": n_clients, "rounds": rounds, "rows": rows, "ratio_vectorized_over_flower": ratio,
                               "pool_vs_floor": floors})


if __name__ == "__main__":
    main()
