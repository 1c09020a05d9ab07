"""Rounds to a target accuracy, IID vs non-IID, and bytes per round with/without compression.

    .venv/bin/python benchmarks/fl_rounds.py    (full mode; ODL_QUICK=1 for a smoke run)

Digits, a 64-32-10 MLP (2,410 parameters), 20 clients, 5 per round, lr 0.1, batch 16, 3 seeds
(partition and sampling). Table 1: rounds until the global test accuracy first reaches the
target, by Dirichlet alpha and local epochs (None = not reached within the budget).
Table 2 (alpha = 0.3, E = 1): exact bytes per round up and down for each codec, final accuracy,
and uplink megabytes until the target.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_results  # noqa: E402

from odlkit import fl  # noqa: E402
from odlkit.config import quick  # noqa: E402
from odlkit.fl.tasks import digits_task  # noqa: E402

TARGET = 0.85


def run(task, model, ev, alpha, seed, rounds, **kw):
    parts = fl.dirichlet_partition(task.y_train, 20, alpha, seed=seed)
    _, h = fl.run_fedavg(fl.ClientPool(model, task.clients(parts)), model.init(0), rounds, clients_per_round=5,
                         lr=0.1, batch_size=16, seed=seed, evaluate_fn=ev, eval_clients=False, **kw)
    return h


def main():
    rounds = quick(full=60, quick=6)
    seeds = quick(full=[0, 1, 2], quick=[0])
    task = digits_task(seed=0)
    model = fl.MLP(task.n_features, task.n_classes, hidden=32)
    ev = fl.central_accuracy(model, task.X_test, task.y_test)

    rows1 = []
    grid = [(a, e) for a in quick(full=[100, 1.0, 0.3, 0.1, 0.05], quick=[100, 0.05]) for e in quick(full=[1, 5], quick=[1])]
    for alpha, E in tqdm(grid, desc="alpha x epochs"):
        hs = [run(task, model, ev, alpha, s, rounds, local_epochs=E) for s in seeds]
        r = [h.rounds_to(TARGET) for h in hs]
        rows1.append({"alpha": alpha, "local_epochs": E, "rounds_to_target": r,
                      "median_rounds": (None if sum(x is None for x in r) * 2 >= len(r)
                                        else float(np.median([x if x is not None else rounds + 1 for x in r]))),
                      "final_accuracy": float(np.mean([h.accuracy[-1] for h in hs]))})
    print_table(rows1, f"rounds to {TARGET:.0%} test accuracy (budget {rounds} rounds, seeds {seeds})")

    rows2 = []
    codecs = [("float32", fl.Float32Codec(), False), ("int8", fl.Int8Codec(), False),
              ("top10%", fl.TopKCodec(0.1), False), ("top10% + EF", fl.TopKCodec(0.1), True),
              ("top5% + int8 + EF", fl.ChainCodec(0.05), True)]
    for name, codec, ef in tqdm(codecs, desc="codecs"):
        hs = [run(task, model, ev, 0.3, s, rounds, codec=codec, error_feedback=ef) for s in seeds]
        mb_to = []
        for h in hs:
            t = h.rounds_to(TARGET)
            mb_to.append(None if t is None else float(np.cumsum(h.bytes_up)[t] / 1e6))
        rows2.append({"codec": name, "bytes_up_per_client": codec.nbytes(model.size),
                      "bytes_up_per_round": int(hs[0].bytes_up[1]), "bytes_down_per_round": int(hs[0].bytes_down[1]),
                      "final_accuracy": float(np.mean([h.accuracy[-1] for h in hs])),
                      "uplink_MB_to_target": mb_to})
    print_table(rows2, f"compression, alpha=0.3, {model.size} parameters, 5 clients per round")
    write_results("fl_rounds", {"target": TARGET, "rounds_budget": rounds, "seeds": seeds, "model_parameters": model.size,
                                "rounds_to_target": rows1, "compression": rows2})


if __name__ == "__main__":
    main()
