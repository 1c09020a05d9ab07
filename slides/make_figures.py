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


def _imu_model_data():
    """The committed backbone, its metadata and basic_motions windows split by recording."""
    from odlkit import data, pretrain

    backbone, meta = pretrain.load_backbone()
    target = data.imu_windows("basic_motions")
    return backbone, meta, target


def ch00_getting_started(out_dir: Path = OUT_DIR) -> list[Path]:
    """Chapter 0: one window per target class; float32 vs int8 size and the quantization error."""
    from odlkit import data, export, models, plots
    from odlkit.config import SEED, quick, seed_everything

    seed_everything(SEED)
    out = []
    backbone, meta, target = _imu_model_data()
    w = backbone.get_weights()[0].ravel()  # the committed first conv kernel, before any training below
    fig, axes = plt.subplots(1, 4, figsize=(16, 3), sharey=True)
    for c, ax in enumerate(axes):
        i = int(np.flatnonzero(target.y == c)[0])
        plots.imu_window(target.X[i], target.channels, target.sample_rate_hz, ax=ax, title=target.class_names[c])
        if c and ax.get_legend() is not None:
            ax.get_legend().remove()
    fig.tight_layout()
    out.append(_save(fig, out_dir, "ch00_getting_started_windows"))

    train, test = data.train_test_split(target, test_size=0.25, by_group=True, seed=SEED)
    scaler = data.Standardizer().fit(train.X)
    X_train, X_test = scaler.transform(train.X), scaler.transform(test.X)
    clf = models.compile_classifier(models.build_classifier(backbone, models.build_head(64, 4, seed=SEED)),
                                    learning_rate=1e-2)
    clf.fit(X_train, train.y, epochs=quick(full=30, quick=8), batch_size=32, verbose=0)
    t_float = export.to_tflite(clf)
    t_int8 = export.to_tflite(clf, representative=X_train, int8=True)
    acc_f = float(np.mean(export.tflite_predict(t_float, X_test).argmax(1) == test.y))
    acc_q = float(np.mean(export.tflite_predict(t_int8, X_test).argmax(1) == test.y))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    kb = {"float32": len(t_float) / 1024, "int8": len(t_int8) / 1024}
    bars = axes[0].bar(list(kb), list(kb.values()), color=["C0", "C1"])
    axes[0].bar_label(bars, [f"{v:.1f} KB" for v in kb.values()])
    axes[0].set(ylabel=".tflite size (KB)", title="classifier (backbone + head) on flash")
    bars = axes[1].bar(["float32", "int8"], [acc_f, acc_q], color=["C0", "C1"])
    axes[1].bar_label(bars, [f"{acc_f:.2f}", f"{acc_q:.2f}"])
    axes[1].axhline(0.25, color="k", ls=":", label="chance")
    axes[1].set(ylim=(0, 1.05), ylabel="accuracy on held-out recordings", title="basic_motions, classifier trained 8+ epochs")
    axes[1].legend(frameon=False)
    fig.tight_layout()
    out.append(_save(fig, out_dir, "ch00_getting_started_int8"))

    scale = float(np.abs(w).max() / 127)
    q = np.clip(np.round(w / scale), -128, 127)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3))
    axes[0].hist(w, bins=60)
    axes[0].set(title=f"first conv kernel: {w.size} float32 weights", xlabel="weight")
    axes[1].hist(w - scale * q, bins=60, color="C1")
    axes[1].set(title=f"int8 rounding error (scale s = {scale:.4f}, |err| <= s/2)", xlabel="w - s * q")
    fig.tight_layout()
    out.append(_save(fig, out_dir, "ch00_getting_started_quantization"))
    return out


def lab1_motion(out_dir: Path = OUT_DIR) -> list[Path]:
    """Lab 1: generic vs personal per subject; the backbone's embedding of the user's data; few-shot."""
    from odlkit import data, plots
    from odlkit.config import SEED, quick, seed_everything
    from odlkit.labs import lab1

    seed_everything(SEED)
    out = []
    gvp = lab1.generic_vs_personal(subjects=quick(full=None, quick=[1, 2, 5, 10]))
    ax = lab1.plot_generic_vs_personal(gvp)
    ax.set_title("watch: accuracy per person (simple features + logistic regression)")
    out.append(_save(ax.figure, out_dir, "lab1_motion_generic_vs_personal"))

    backbone, meta, user = _imu_model_data()
    feats = lab1.embed(backbone, meta, user.X)
    ax = plots.embedding_scatter(feats, user.y, user.class_names, method="pca",
                                 title="basic_motions through the frozen watch backbone (PCA of 64 features)")
    out.append(_save(ax.figure, out_dir, "lab1_motion_embedding"))

    watch = data.imu_windows("watch")
    person = meta["test_subjects"][-1]
    own = np.flatnonzero(watch.groups == person)
    tr, te = lab1.time_split(watch.y[own], 0.5)
    shots = quick(full=(1, 3, 5, 10, 20), quick=(1, 5, 10))
    others = np.flatnonzero(np.isin(watch.groups, meta["test_subjects"], invert=True))
    fsc = lab1.few_shot_comparison(backbone, meta, watch.subset(own[tr]), watch.subset(own[te]),
                                   generic_ds=watch.subset(others), shots=shots, progress=False)
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    plots.accuracy_vs_samples(list(shots), fsc, ax=ax, chance=1 / 7, logx=True,
                              title=f"watch subject {person} (held out of pretraining)")
    out.append(_save(fig, out_dir, "lab1_motion_few_shot"))
    return out


def lab3_federated(out_dir: Path = OUT_DIR) -> list[Path]:
    """Lab 3: FedAvg over virtual boards: honest, with a malicious board, with the median, with DP."""
    from odlkit import data
    from odlkit.attacks import coordinate_median
    from odlkit.fl import run_fedavg
    from odlkit.fl.plots import accuracy_per_round
    from odlkit.labs import lab3 as fb
    from odlkit.privacy import DPFedAvg

    out = []
    rounds = 8
    ds = data.imu_windows("basic_motions")
    parts, test = fb.split_for_boards(ds, 4, seed=0)
    parts[3] = fb.poison_labels(parts[3], seed=0)
    heldout = fb.heldout_features(test)
    boards = fb.open_virtual_boards(parts)
    try:
        for b, p in zip(boards, parts, strict=True):
            fb.record_dataset(b, p)
        init = boards[0].get_weights()
        kw = dict(evaluate_fn=fb.head_accuracy_fn(heldout, init), evaluate_local=True,
                  **fb.server_kwargs(dict(epochs=5, lr=0.001)))

        def pool(n, attack=None):
            return fb.BoardPool([fb.BoardClient(b, f"board{k}", attack=attack if k == 3 else None, boost=5.0)
                                 for k, b in enumerate(boards[:n])], init)

        w0 = fb.flatten_head(init)
        runs = {}
        _, runs["3 honest boards, FedAvg"] = run_fedavg(pool(3), w0, rounds, **kw)
        _, runs["+ malicious board (x5), FedAvg"] = run_fedavg(pool(4, "scaled"), w0, rounds, **kw)
        _, runs["+ malicious board, median"] = run_fedavg(pool(4, "scaled"), w0, rounds, aggregator=coordinate_median,
                                                          **kw)
        dp = DPFedAvg(clip_norm=1.0, noise_multiplier=0.3, seed=0)
        _, runs["3 honest boards, DP-FedAvg z=0.3"] = run_fedavg(pool(3), w0, rounds, aggregator=dp, **kw)
    finally:
        for b in boards:
            b.close()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    accuracy_per_round(runs, ax=ax, title="global head on held-out recordings (virtual boards)", ylim=(0, 1.02))
    ax.axhline(0.25, color="k", ls=":", lw=0.8)
    out.append(_save(fig, out_dir, "lab3_federated_rounds"))

    h = runs["3 honest boards, FedAvg"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.3))
    axes[0].plot(h.megabytes * 1e3, h.accuracy, "o-")
    axes[0].set(xlabel="cumulative kB over serial (both directions)", ylabel="accuracy", title="accuracy vs bytes")
    axes[0].grid(alpha=0.3)
    norms = np.array(runs["+ malicious board (x5), FedAvg"].update_norm[1:], dtype=float)
    for k in range(norms.shape[1]):
        axes[1].plot(range(1, len(norms) + 1), norms[:, k], "o-", label=f"board{k}" + (" (malicious)" if k == 3 else ""))
    axes[1].set(xlabel="round", ylabel="update L2 norm", yscale="log", title="what the server receives")
    axes[1].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    out.append(_save(fig, out_dir, "lab3_federated_bytes_norms"))
    return out


def ch04_differential_privacy(out_dir: Path = OUT_DIR) -> list[Path]:
    """Chapter 4: privacy/utility curve with a real accountant, DP-FedAvg, secure aggregation masks."""
    import math

    from odlkit import data
    from odlkit.config import SEED, quick, seed_everything
    from odlkit.fl import ClientPool, SoftmaxRegression, iid_partition, run_fedavg, weighted_mean
    from odlkit.models import build_mlp
    from odlkit.privacy import (
        DPSGD,
        AdaptiveClipDPFedAvg,
        DPFedAvg,
        SecureAggregator,
        compute_epsilon,
        loss_threshold_attack,
        secagg,
    )

    seed_everything(SEED)
    rng = np.random.default_rng(SEED)
    out = []
    digits = data.load("digits")
    perm = rng.permutation(len(digits.y))
    n_train, batch, lr = 150, 16, 0.5
    epochs = quick(full=60, quick=40)
    X_in, y_in = digits.X[perm[:n_train]].astype(np.float32), digits.y[perm[:n_train]]
    X_out, y_out = digits.X[perm[n_train:2 * n_train]].astype(np.float32), digits.y[perm[n_train:2 * n_train]]
    q, delta = batch / n_train, 1 / (10 * n_train)
    rows = []
    for sigma in quick(full=[0.0, 0.5, 0.8, 1.2, 2.0, 4.0], quick=[0.0, 0.8, 2.0, 4.0]):
        model = build_mlp(64, 10, hidden=(128,), seed=SEED)
        model(X_in[:1])
        dp = DPSGD(model, l2_norm_clip=1.0 if sigma > 0 else np.inf, noise_multiplier=sigma, learning_rate=lr,
                   seed=SEED)
        dp.fit(X_in, y_in, batch_size=batch, epochs=epochs)

        def proba(X, model=model):
            return model(np.asarray(X, np.float32), training=False).numpy()

        atk = loss_threshold_attack(proba, X_in, y_in, X_out, y_out)
        rows.append({"noise": sigma, "auc": atk["auc"], "accuracy": float((proba(X_out).argmax(1) == y_out).mean()),
                     "epsilon": compute_epsilon(sigma, q, dp.steps_done, delta) if sigma > 0 else math.inf})
        print(rows[-1])
    priv = [r for r in rows if math.isfinite(r["epsilon"])]
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    eps = [r["epsilon"] for r in priv]
    ax.semilogx(eps, [r["accuracy"] for r in priv], "o-", label="test accuracy")
    ax.semilogx(eps, [r["auc"] for r in priv], "s-", label="membership attack AUC")
    ax.axhline(rows[0]["accuracy"], color="C0", ls=":", label="accuracy without DP")
    ax.axhline(rows[0]["auc"], color="C1", ls=":", label="attack AUC without DP")
    ax.axhline(0.5, color="k", lw=0.5)
    for r in priv:
        ax.annotate(f"σ={r['noise']:g}", (r["epsilon"], r["accuracy"]), textcoords="offset points", xytext=(0, 6),
                    fontsize=8, ha="center")
    ax.set(xlabel="epsilon (RDP accountant, log scale)", title=f"DP-SGD on digits, {n_train} training images, C=1")
    ax.invert_xaxis()
    ax.legend(fontsize=8, frameon=False)
    out.append(_save(fig, out_dir, "ch04_differential_privacy_privacy_utility"))

    steps = math.ceil(epochs * n_train / batch)
    sig = np.linspace(0.5, 4.0, 15)
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for acc in ("rdp", "pld"):
        ax.semilogy(sig, [compute_epsilon(s, q, steps, delta, accountant=acc) for s in sig], "o-", ms=3,
                    label=acc.upper())
    ax.set(xlabel="noise multiplier σ", ylabel="epsilon", title=f"q={q:.3f}, T={steps} steps, δ={delta:.0e}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(frameon=False)
    out.append(_save(fig, out_dir, "ch04_differential_privacy_accountants"))

    model = SoftmaxRegression(64, 10)
    X_all, y_all = digits.X.astype(np.float32), digits.y
    test_idx, pool = perm[:400], perm[400:]
    clients = [(X_all[pool[p]], y_all[pool[p]]) for p in iid_partition(len(pool), 20, seed=SEED)]

    def fl_run(aggregator):
        _, h = run_fedavg(ClientPool(model, clients), model.init(SEED), rounds=40, lr=0.5,
                          aggregator=aggregator, eval_clients=False, seed=SEED,
                          evaluate_fn=lambda w: model.accuracy(w, X_all[test_idx], y_all[test_idx]))
        return h

    curves = {"FedAvg": fl_run(weighted_mean)}
    for z in (0.5, 2.0):
        curves[f"DP-FedAvg C=1 z={z}"] = fl_run(DPFedAvg(clip_norm=1.0, noise_multiplier=z, seed=SEED))
    adaptive = AdaptiveClipDPFedAvg(initial_clip=0.05, noise_multiplier=0.5, target_quantile=0.5, seed=SEED)
    curves["DP-FedAvg adaptive z=0.5"] = fl_run(adaptive)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.3))
    for name, h in curves.items():
        axes[0].plot(h.round, h.global_accuracy, label=name)
    axes[0].set(xlabel="round", ylabel="test accuracy", title="DP-FedAvg, 20 clients (digits)")
    axes[0].legend(fontsize=7, frameon=False)
    axes[1].plot([r["clip_norm"] for r in adaptive.history], label="adaptive C")
    axes[1].plot([r["median_norm"] for r in adaptive.history], label="median update norm")
    axes[1].set(xlabel="round", title="adaptive clipping: C moves towards the median norm")
    axes[1].legend(fontsize=8, frameon=False)
    fig.tight_layout()
    out.append(_save(fig, out_dir, "ch04_differential_privacy_dp_fedavg"))

    K, D = 8, 2000
    updates = rng.normal(0, 0.1, size=(K, D))
    sa = SecureAggregator(K, seed=SEED)
    messages = {i: sa.client_message(i, updates[i]) for i in range(K)}
    err = np.abs(sa.unmask_sum(messages) - updates.sum(0)).max()
    fig, axes = plt.subplots(1, 2, figsize=(10, 2.8))
    axes[0].hist(secagg.encode(updates[0]) / secagg.MOD, bins=50)
    axes[0].set(title="client 0 update, fixed point", xlabel="ring value / 2^32")
    axes[1].hist(messages[0] / secagg.MOD, bins=50, color="C1")
    axes[1].set(title=f"what the server receives (sum exact to {err:.0e})", xlabel="ring value / 2^32")
    fig.tight_layout()
    out.append(_save(fig, out_dir, "ch04_differential_privacy_secagg"))
    return out


def ch05_poisoning_and_attacks(out_dir: Path = OUT_DIR) -> list[Path]:
    """Chapter 5: label flipping, robust aggregation table, FGSM/PGD, model inversion, input validation."""
    from sklearn.linear_model import LogisticRegression

    from odlkit import data
    from odlkit.attacks import adversarial, experiments, flip_labels
    from odlkit.attacks.inversion import invert_class
    from odlkit.config import SEED, quick, seed_everything
    from odlkit.models import build_mlp

    seed_everything(SEED)
    out = []
    digits = data.load("digits")
    tr, te = data.train_test_split(digits, test_size=0.3, seed=SEED)
    Xtr, Xte = tr.X.astype(np.float32), te.X.astype(np.float32)  # digits pixels are already in [0, 1]
    fracs = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    accs, acc_1 = [], []
    for f in fracs:
        yp, _ = flip_labels(tr.y, f, 10, mode="random", seed=SEED)
        accs.append(float((LogisticRegression(max_iter=2000).fit(Xtr, yp).predict(Xte) == te.y).mean()))
        yt, _ = flip_labels(tr.y, f, 10, mode="targeted", source=1, target=7, seed=SEED)
        pred = LogisticRegression(max_iter=2000).fit(Xtr, yt).predict(Xte)
        acc_1.append(float((pred[te.y == 1] == 1).mean()))
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ax.plot(fracs, accs, "o-", label="random flips: test accuracy (all digits)")
    ax.plot(fracs, acc_1, "s-", label="targeted 1 -> 7: recall of digit 1")
    ax.set(xlabel="fraction of labels flipped", ylabel="accuracy", ylim=(0, 1.02),
           title="label flipping, logistic regression on digits")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    out.append(_save(fig, out_dir, "ch05_poisoning_and_attacks_label_flip"))

    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for ax, attack, value in [(axes[0], "sign_flip", "accuracy"), (axes[1], "backdoor", "asr")]:
        rows = experiments.fl_robustness_table(tr.X, tr.y, te.X, te.y, attack=attack, fractions=(0.0, 0.1, 0.2, 0.3),
                                               rounds=quick(full=20, quick=10), seed=SEED)
        aggs = list(dict.fromkeys(r["aggregator"] for r in rows))
        fr = sorted({r["fraction"] for r in rows})
        M = np.array([[next(r[value] for r in rows if r["aggregator"] == a and r["fraction"] == f) for f in fr]
                      for a in aggs])
        cmap = "RdYlGn" if value == "accuracy" else "RdYlGn_r"
        ax.imshow(np.nan_to_num(M, nan=0.0 if value == "accuracy" else 1.0), vmin=0, vmax=1, cmap=cmap, aspect="auto")
        for i in range(len(aggs)):
            for j in range(len(fr)):
                ax.text(j, i, "diverged" if not np.isfinite(M[i, j]) else f"{M[i, j]:.2f}", ha="center",
                        va="center", fontsize=9)
        ax.set_xticks(range(len(fr)), [f"{f:.0%}" for f in fr])
        ax.set_yticks(range(len(aggs)), aggs)
        ax.set_xlabel(f"fraction of {attack.replace('_', '-')} clients")
        ax.set_title("test accuracy under sign flips (x4)" if value == "accuracy"
                     else "backdoor success rate (trigger -> '0')")
    fig.suptitle("FedAvg vs robust aggregation, 20 clients on digits")
    fig.tight_layout()
    out.append(_save(fig, out_dir, "ch05_poisoning_and_attacks_robust_aggregation"))

    model = build_mlp(64, 10, hidden=(64,), seed=SEED)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(Xtr, tr.y, epochs=quick(full=60, quick=40), batch_size=32, verbose=0)
    eps = [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3]
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for attack in ("fgsm", "pgd"):
        ax.plot(eps, adversarial.robust_accuracy_curve(model, Xte, te.y, eps, attack=attack, clip=(0.0, 1.0)), "o-",
                label=attack.upper())
    ax.set(xlabel="L∞ budget ε (pixels in [0, 1])", ylabel="test accuracy", ylim=(0, 1.02),
           title="adversarial examples, MLP on digits")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    out.append(_save(fig, out_dir, "ch05_poisoning_and_attacks_adversarial"))

    fig, axes = plt.subplots(2, 5, figsize=(10, 4.4))
    for c in range(5):
        rec = invert_class(model, c, (64,), steps=quick(full=300, quick=150), clip=(0.0, 1.0), seed=SEED)
        axes[0, c].imshow(np.asarray(rec).reshape(8, 8), cmap="gray_r")
        axes[0, c].set_title(f"inverted '{c}'", fontsize=9)
        axes[1, c].imshow(Xtr[tr.y == c].mean(0).reshape(8, 8), cmap="gray_r")
        axes[1, c].set_title(f"true mean '{c}'", fontsize=9)
    for a in axes.ravel():
        a.set_xticks([])
        a.set_yticks([])
    fig.suptitle("model inversion: what the weights reveal about each class")
    fig.tight_layout()
    out.append(_save(fig, out_dir, "ch05_poisoning_and_attacks_inversion"))
    return out


def lab2_microphone(out_dir: Path = OUT_DIR) -> list[Path]:
    """Lab 2: LPC analysis of a vowel, SGD sweep and replay sweep on the (virtual) Lab 2 board."""
    import tempfile

    from odlkit import audio
    from odlkit.config import quick
    from odlkit.labs import lab2

    out = []
    work = Path(tempfile.mkdtemp(prefix="slides_lab2_"))
    x16, _, how = lab2.vowel_audio(work / "vowel.wav", text="aaa")
    x10 = audio.resample_16k_to_10k(x16)
    frame = audio.frames(x10)[lab2.loudest_frame(x10)] * audio.hamming()
    a, _, err = audio.levinson_durbin(audio.autocorrelation(frame))
    axes = lab2.plot_lpc_analysis(frame, a, err, audio.lpc_to_cepstrum(a), title=how)
    axes[0].figure.tight_layout()
    out.append(_save(axes[0].figure, out_dir, "lab2_microphone_lpc"))

    speakers, test = list(lab2.SPEAKERS), lab2.heldout_utterances()
    with lab2.open_board(prefer_real=False, verbose=False) as board:
        lab2.record_team(board, speakers, 30)
        w0 = board.get_network()
        rows = lab2.sgd_sweep(board, w0, test, speakers, lrs=quick(full=(0.003, 0.01, 0.03, 0.1, 0.3), quick=(0.01, 0.1)),
                              momenta=(0.0, 0.9), batch_sizes=(1, 8, 32), epochs=20, progress=False)
    axes = lab2.plot_sgd_sweep(rows)
    axes[0].figure.tight_layout()
    out.append(_save(axes[0].figure, out_dir, "lab2_microphone_sgd_sweep"))
    groups = [speakers[0:3], speakers[3:6], speakers[6:9]]
    rows = lab2.replay_sweep(lambda: lab2.open_board(prefer_real=False, verbose=False), groups,
                             quick(full=(0, 1, 2, 5, 10, 20), quick=(0, 2, 10)), 30, test, speakers,
                             dict(epochs=20, lr=0.05, momentum=0.9, batch_size=8, seed=1), progress=False)
    ax = lab2.plot_replay_sweep(rows)
    out.append(_save(ax.figure, out_dir, "lab2_microphone_replay"))
    return out


FIGURES = {
    "ch00_getting_started": ch00_getting_started,
    "ch01_transfer_learning": ch01_transfer_learning,
    "lab1_motion": lab1_motion,
    "lab2_microphone": lab2_microphone,
    "lab3_federated": lab3_federated,
    "ch04_differential_privacy": ch04_differential_privacy,
    "ch05_poisoning_and_attacks": ch05_poisoning_and_attacks,
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
