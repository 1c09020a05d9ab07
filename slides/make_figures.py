"""Generate the slide figures into ``slides/figures/`` from real runs of ``odlkit`` code.

Each deck has one function ``<assignment>(out_dir)`` registered in ``FIGURES``; run

    .venv/bin/python slides/make_figures.py                      # every deck
    .venv/bin/python slides/make_figures.py ch01_transfer_learning
    ODL_QUICK=1 .venv/bin/python slides/make_figures.py ...       # fast, fewer points

Figures are written as PNG named ``<assignment>_<what>.png``; decks reference them as
``figures/<name>.png``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

OUT_DIR = Path(__file__).resolve().parent / "figures"


def _save(fig, out_dir: Path, name: str) -> Path:
    path = out_dir / f"{name}.png"
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    print("wrote", path)
    return path


def ch01_transfer_learning(out_dir: Path = OUT_DIR) -> list[Path]:
    """Chapter 1: sample efficiency, negative transfer, pipelines, transductive transfer, forgetting."""
    from odlkit import data, plots, pretrain, transfer
    from odlkit.config import SEED, quick, seed_everything

    seed_everything(SEED)
    out = []
    backbone, meta = pretrain.load_backbone()
    mu, sd = np.asarray(meta["input_mean"], "float32"), np.asarray(meta["input_std"], "float32")
    ntr, nte = data.train_test_split(data.imu_windows("basic_motions"), test_size=0.25, by_group=True)
    Xn_tr, Xn_te = (ntr.X - mu) / sd, (nte.X - mu) / sd
    far = data.fixed_length(data.load("japanese_vowels"), 50)
    ftr, fte = data.train_test_split(far, test_size=0.25, seed=SEED)
    sc = data.Standardizer().fit(ftr.X[:, :, :6])
    Xf_tr = transfer.match_input_shape(sc.transform(ftr.X[:, :, :6]), 50, 6)
    Xf_te = transfer.match_input_shape(sc.transform(fte.X[:, :, :6]), 50, 6)
    _, stest = pretrain.source_split(SEED)
    Xs_te = (stest.X - mu) / sd

    steps, seeds = quick(full=200, quick=60), quick(full=(0, 1), quick=(0,))
    shots_n = quick(full=[1, 2, 5, 10, 20, 50], quick=[2, 10])
    shots_f = quick(full=[1, 2, 5, 10, 20, 40], quick=[2, 10])
    cn = transfer.sample_efficiency(backbone, Xn_tr, ntr.y, Xn_te, nte.y, shots_n, seeds=seeds, k=2, steps=steps)
    cf = transfer.sample_efficiency(backbone, Xf_tr, ftr.y, Xf_te, fte.y, shots_f, seeds=seeds, k=2, steps=steps)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    plots.accuracy_vs_samples(shots_n, cn, ax=axes[0], chance=0.25, logx=True, title="near: basic_motions")
    plots.accuracy_vs_samples(shots_f, cf, ax=axes[1], chance=1 / 9, logx=True, title="far: japanese_vowels")
    out.append(_save(fig, out_dir, "ch01_transfer_learning_sample_efficiency"))

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
    for ax, (name, (Xtr, ytr, Xte, yte)) in zip(axes, {"near": (Xn_tr, ntr.y, Xn_te, nte.y),
                                                        "far": (Xf_tr, ftr.y, Xf_te, fte.y)}.items(), strict=True):
        n_classes = int(ytr.max() + 1)
        head = transfer.train_head_on_features(transfer.extract_features(backbone, Xtr), ytr, n_classes, steps=600)
        acc = {"feature_extraction": transfer.accuracy(head, transfer.extract_features(backbone, Xte), yte)}
        for strategy, lr in [("fine_tune", 2e-3), ("scratch", 3e-3)]:
            model, _, _ = transfer.make_transfer_model(backbone, n_classes, strategy, k=2, seed=SEED)
            transfer.train(model, Xtr, ytr, steps=600, lr=lr, batch_size=64)
            acc[strategy] = transfer.accuracy(model, Xte, yte)
        plots.bar_comparison(acc, ax=ax, reference=acc["scratch"], reference_label="scratch",
                             title=f"{name} target, all labels")
    out.append(_save(fig, out_dir, "ch01_transfer_learning_negative_transfer"))

    ax = plots.pipeline_diagram({
        "pre-deployment": ["pretrain on source\n(server)", "collect labelled\ntarget data",
                           "fine-tune last k\n(server)", "export int8\n& flash", "inference only"],
        "post-deployment": ["pretrain on source\n(server)", "export int8\n& flash", "user labels a few\nwindows",
                            "train head on\nstored features", "inference +\nkeep adapting"],
    }, highlight={"pre-deployment": [4], "post-deployment": [2, 3, 4]})
    out.append(_save(ax.figure, out_dir, "ch01_transfer_learning_pipelines"))

    idx = transfer.per_class_indices(ntr.y, 5, seed=SEED)
    head = transfer.train_head_on_features(transfer.extract_features(backbone, Xn_tr[idx]), ntr.y[idx], 4, steps=steps)
    acc = {"inductive\n5 labels/class": transfer.accuracy(head, transfer.extract_features(backbone, Xn_te), nte.y)}
    bb = transfer.copy_model(backbone)
    transfer.reestimate_batchnorm(bb, Xn_tr)
    F_lab, F_un, F_te = (transfer.extract_features(bb, X) for X in (Xn_tr[idx], Xn_tr, Xn_te))
    head = transfer.train_head_on_features(F_lab, ntr.y[idx], 4, steps=steps)
    acc["+ BN\nre-estimation"] = transfer.accuracy(head, F_te, nte.y)
    transfer.self_train(head, F_lab, ntr.y[idx], F_un, rounds=quick(full=3, quick=2), threshold=0.9, steps=steps,
                        lr=1e-2)
    acc["+ self-\ntraining"] = transfer.accuracy(head, F_te, nte.y)
    acc["k-means\n(no labels)"] = transfer.cluster_accuracy(nte.y, transfer.cluster_features(F_te, 4, seed=SEED))
    acc["k-means raw\n(no labels)"] = transfer.cluster_accuracy(
        nte.y, transfer.cluster_features(Xn_te.reshape(len(Xn_te), -1), 4, seed=SEED))
    ax = plots.bar_comparison(acc, reference=0.25, reference_label="chance", title="near target, test accuracy")
    out.append(_save(ax.figure, out_dir, "ch01_transfer_learning_transductive"))

    rows = transfer.forgetting_curve(backbone, transfer.head_from_weights(**meta["source_head"]), Xs_te, stest.y,
                                     Xn_tr, ntr.y, Xn_te, nte.y, ks=quick(full=(0, 1, 2, 3, 5), quick=(0, 2, 5)),
                                     steps=quick(full=300, quick=100))
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ks = [r["k"] for r in rows]
    ax.plot(ks, [r["target_accuracy"] for r in rows], "o-", label="target (basic_motions)")
    ax.plot(ks, [r["source_accuracy"] for r in rows], "o-", label="source (watch), source head fixed")
    ax.set_xlabel("k (last layers fine-tuned on the target)")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    out.append(_save(fig, out_dir, "ch01_transfer_learning_forgetting"))
    return out


FIGURES = {
    "ch01_transfer_learning": ch01_transfer_learning,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("decks", nargs="*", help=f"decks to build (default: all of {sorted(FIGURES)})")
    args = p.parse_args(argv)
    unknown = [d for d in args.decks if d not in FIGURES]
    if unknown:
        p.error(f"no figure function for {unknown}; known decks: {sorted(FIGURES)}")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for deck in args.decks or sorted(FIGURES):
        FIGURES[deck](OUT_DIR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
