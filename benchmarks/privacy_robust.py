"""Robust aggregation table: FedAvg vs norm clipping, median, trimmed mean, Krum, multi-Krum.

    .venv/bin/python benchmarks/privacy_robust.py    (full mode; ODL_QUICK=1 for a smoke run)

20 clients (digits, softmax regression, every client every round), 0/10/20/30% attackers:
sign flip (x4), scaled label-flip updates (model replacement) and a backdoor (2x2 corner
patch -> class 0). Clean test accuracy for each, attack success rate for the backdoor.
All runs go through odlkit.fl.run_fedavg.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

from odlkit import data  # noqa: E402
from odlkit.attacks.experiments import fl_robustness_table, format_table  # noqa: E402
from odlkit.config import quick  # noqa: E402


def main():
    ds = data.load("digits")
    p = np.random.default_rng(0).permutation(len(ds.y))
    X, y, Xt, yt = ds.X[p[:1400]], ds.y[p[:1400]], ds.X[p[1400:]], ds.y[p[1400:]]
    rounds = quick(full=30, quick=8)
    out = {}
    for attack in ("sign_flip", "scaled", "backdoor"):
        t0 = time.perf_counter()
        rows = fl_robustness_table(X, y, Xt, yt, attack=attack, rounds=rounds, n_clients=20, progress=False)
        secs = time.perf_counter() - t0
        print(f"\n{attack}: clean test accuracy ({rounds} rounds, {secs:.1f} s)")
        print(format_table(rows, "accuracy"))
        if attack == "backdoor":
            print(f"\n{attack}: attack success rate (triggered non-target test digits classified as 0)")
            print(format_table(rows, "asr"))
        # JSON has no NaN: "asr" is null where it does not apply
        out[attack] = [{**r, "asr": None if r["asr"] != r["asr"] else r["asr"]} for r in rows]
    write_results("privacy_robust", {"rounds": rounds, "n_clients": 20, "tables": out})


if __name__ == "__main__":
    main()
