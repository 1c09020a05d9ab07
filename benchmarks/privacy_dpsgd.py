"""DP-SGD cost and accounting parity.

    .venv/bin/python benchmarks/privacy_dpsgd.py     (full mode; ODL_QUICK=1 for a smoke run)

1. Step time of :class:`odlkit.privacy.DPSGD` (vectorized per-example gradients, numpy
   clipping + noise, update) divided by the step time of plain SGD (one compiled
   GradientTape step) on the same model and batch. Goal: <= 3x. Measured as the median of
   interleaved repeats in one run (the machine is shared: ratios, not absolute times).
2. Epsilon from :func:`odlkit.privacy.compute_epsilon` vs a direct dp_accounting call
   (RDP and PLD) for a few configurations. Goal: equal (they are the same computation).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_results  # noqa: E402

from odlkit.config import quick, seed_everything  # noqa: E402


def step_times(make_model, X, y, batch: int, repeats: int):
    from odlkit.privacy import DPSGD, sgd_step_fn

    a, b = make_model(), make_model()
    dp = DPSGD(a, l2_norm_clip=1.0, noise_multiplier=1.0, learning_rate=0.05)
    sgd = sgd_step_fn(b, 0.05)
    rng = np.random.default_rng(0)
    batches = [rng.choice(len(y), batch, replace=False) for _ in range(repeats + 3)]
    for idx in batches[:3]:  # warm-up: tracing
        dp.step(X[idx], y[idx])
        sgd(X[idx], y[idx])
    t_dp, t_sgd = [], []
    for idx in batches[3:]:
        t0 = time.perf_counter()
        dp.step(X[idx], y[idx])
        t1 = time.perf_counter()
        sgd(X[idx], y[idx])
        t2 = time.perf_counter()
        t_dp.append(t1 - t0)
        t_sgd.append(t2 - t1)
    return float(np.median(t_dp)), float(np.median(t_sgd)), dp.n_params


def main():
    import dp_accounting
    from dp_accounting import pld, rdp

    from odlkit import data, models
    from odlkit.privacy import compute_epsilon

    seed_everything(0)
    repeats = quick(full=60, quick=8)
    digits = data.load("digits")
    Xd, yd = digits.X.astype(np.float32), digits.y
    imu = data.imu_windows("basic_motions")
    Xi, yi = imu.X.astype(np.float32), imu.y
    feats = np.random.default_rng(0).normal(size=(len(yi), 64)).astype(np.float32)

    def built(m, shape):
        m(np.zeros((1, *shape), np.float32))
        return m

    cases = [
        ("head 64->4 (backbone features)", lambda: built(models.build_head(64, 4), (64,)), feats, yi),
        ("mlp 64-32-10 (digits)", lambda: built(models.build_mlp(64, 10, hidden=(32,)), (64,)), Xd, yd),
        ("backbone+head, all trainable (IMU)",
         lambda: built(models.build_classifier(models.build_backbone(), models.build_head(64, 4), trainable_backbone=True),
                       (50, 6)), Xi, yi),
    ]
    rows = []
    for name, make, X, y in cases:
        for batch in (32, 64):
            t_dp, t_sgd, n_params = step_times(make, X, y, batch, repeats)
            rows.append({"model": name, "params": n_params, "batch": batch, "dpsgd_ms": 1e3 * t_dp,
                         "sgd_ms": 1e3 * t_sgd, "ratio": t_dp / t_sgd, "goal_le_3x": bool(t_dp / t_sgd <= 3)})
    print_table(rows, "DP-SGD step time vs plain SGD (median of interleaved steps)")

    acc_rows = []
    for sigma, q, steps in [(1.1, 256 / 60000, 14063), (1.0, 0.01, 1000), (0.8, 64 / 1797, 300), (2.0, 0.1, 100)]:
        ev = dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)
        for name, fresh in (("rdp", rdp.RdpAccountant),
                            ("pld", lambda: pld.PLDAccountant(value_discretization_interval=1e-3))):
            direct = fresh().compose(ev).get_epsilon(1e-5)
            ours = compute_epsilon(sigma, q, steps, 1e-5, accountant=name)
            acc_rows.append({"noise": sigma, "q": q, "steps": steps, "accountant": name, "epsilon_odlkit": ours,
                             "epsilon_direct": direct, "equal": bool(ours == direct)})
    print_table(acc_rows, "epsilon (delta=1e-5): odlkit wrapper vs direct dp_accounting")
    write_results("privacy_dpsgd", {"step_time": rows, "accounting": acc_rows})


if __name__ == "__main__":
    main()
