"""Transfer learning: move a backbone pretrained on a source task to a target task.

The chapter 1 notebook and Lab 1 use these functions; each works on any Keras 3
backbone mapping an input window to a feature vector (e.g. ``odlkit.pretrain.load_backbone()``)
and is unit-tested on small random models.

Inductive transfer (labelled target data)
    :func:`make_transfer_model` builds one of three learners from a backbone:
    ``"feature_extraction"`` (frozen backbone + new head), ``"fine_tune"`` (the last ``k``
    weight layers of the backbone are trained with the head) and ``"scratch"`` (same
    architecture, fresh random weights, everything trained). :func:`train` fits a model for a
    fixed number of gradient steps (so 1 and 50 samples per class get the same budget) and
    :func:`sample_efficiency` draws accuracy against samples per class for each learner.
Transductive transfer (unlabelled target inputs)
    :func:`reestimate_batchnorm` (AdaBN: replace the BatchNorm running statistics by the
    target's) and :func:`self_train` (pseudo-label confident target inputs and retrain).
Unsupervised transfer (no labels at all)
    :func:`cluster_features` (k-means on backbone features) scored by
    :func:`cluster_accuracy` (best one-to-one matching of clusters to classes).
Catastrophic forgetting
    :func:`forgetting_curve` fine-tunes more and more layers on the target and measures
    the source task's accuracy with the source head kept fixed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from odlkit.config import SEED
from odlkit.keras_utils import accuracy, copy_model, flat_layers
from odlkit.validation import check_xy

STRATEGIES = ("feature_extraction", "fine_tune", "scratch")
"""The three inductive-transfer learners compared in chapter 1."""

_KERNEL_LAYERS = ("Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "Dense")


def _keras():
    import keras

    return keras


# --------------------------------------------------------------------------------------------
# model surgery
# --------------------------------------------------------------------------------------------


def kernel_layers(model) -> list:
    """The layers that hold a learned kernel (Conv / DepthwiseConv / Dense), input to output.

    These are what "the last k layers" counts; BatchNorm layers are not counted.
    """
    return [layer for layer in flat_layers(model) if type(layer).__name__ in _KERNEL_LAYERS]


def fresh_copy(model, seed: int = SEED):
    """Same architecture as ``model``, new random weights drawn with ``seed`` (the from-scratch baseline).

    Every kernel gets a Glorot-uniform draw seeded from ``seed`` (Keras' default initializer;
    ``clone_model`` alone would repeat the seeded initial weights the model was built with),
    biases and BatchNorm statistics start at their defaults.
    """
    keras = _keras()
    clone = keras.models.clone_model(model)
    i = 0
    for layer in flat_layers(clone):
        for attr in ("kernel", "depthwise_kernel", "pointwise_kernel"):
            w = getattr(layer, attr, None)
            if w is not None and hasattr(w, "assign"):
                i += 1
                init = keras.initializers.GlorotUniform(seed=int(seed) * 7919 + i)
                w.assign(np.asarray(init(tuple(w.shape)), dtype="float32"))
    return clone


def head_from_weights(kernel, bias, seed: int = SEED):
    """A head (``odlkit.models.build_head``) holding the given weights, e.g. the source head of the
    pretrained backbone's metadata: ``head_from_weights(**meta["source_head"])``."""
    from odlkit.models import build_head

    kernel = np.asarray(kernel, dtype="float32")
    bias = np.asarray(bias, dtype="float32")
    if kernel.ndim != 2 or bias.shape != (kernel.shape[1],):
        raise ValueError(f"kernel must be (d, n_classes) and bias (n_classes,), got {kernel.shape} and {bias.shape}")
    head = build_head(kernel.shape[0], kernel.shape[1], seed=seed)
    head.set_weights([kernel, bias])
    return head


def set_trainable_last(model, k: int, train_batchnorm: bool = False) -> list[str]:
    """Freeze ``model`` except its last ``k`` kernel layers; return the names of the trainable layers.

    ``k=0`` freezes everything, ``k=-1`` (or ``k >= number of kernel layers``) trains every
    kernel layer. BatchNorm layers stay frozen (inference mode: running statistics are used
    and not updated) unless ``train_batchnorm=True``, the usual choice when a few target
    samples would give noisy batch statistics.
    """
    keras = _keras()
    if not isinstance(k, (int, np.integer)) or k < -1:
        raise ValueError(f"k must be an int >= 0 (or -1 for all layers), got {k!r}")
    kl = kernel_layers(model)
    if not kl:
        raise ValueError("the model has no Conv/Dense layers to fine-tune")
    n = len(kl) if k == -1 else min(int(k), len(kl))
    model.trainable = True  # nested models: parent must be trainable for children to be
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            layer.trainable = True
    for layer in flat_layers(model):
        layer.trainable = False
    chosen = kl[len(kl) - n:] if n else []
    for layer in chosen:
        layer.trainable = True
    if train_batchnorm:
        for layer in flat_layers(model):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = True
    return [layer.name for layer in chosen]


def n_trainable_params(model) -> int:
    """Number of scalar weights that an optimizer would update."""
    return int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))


def _feature_dim(backbone) -> int:
    shape = backbone.output_shape
    if len(shape) != 2:
        raise ValueError(f"the backbone must output a feature vector (batch, d), got output shape {shape}")
    return int(shape[-1])


def make_transfer_model(backbone, n_classes: int, strategy: str, k: int = 1, seed: int = SEED,
                        train_batchnorm: bool | None = None, bn_momentum: float = 0.9):
    """Build a classifier for the target task from ``backbone`` (which is never modified).

    - ``"feature_extraction"``: copy of the pretrained backbone, frozen, plus a new head.
    - ``"fine_tune"``: copy of the pretrained backbone with its last ``k`` kernel layers
      trainable, plus a new head.
    - ``"scratch"``: the same architecture with fresh random weights, everything trainable.

    BatchNorm layers that train (``scratch``, or ``train_batchnorm=True``) get running-statistics
    momentum ``bn_momentum``: with Keras' default 0.99 the running mean and variance still carry
    ``0.99**200 = 13 %`` of their initial values after 200 steps, so a model trained for a few
    hundred steps would be evaluated with wrong statistics.

    Returns ``(model, new_backbone, head)``; ``model`` is uncompiled (see :func:`train`).
    """
    import keras

    from odlkit.models import build_classifier, build_head

    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    d = _feature_dim(backbone)
    if strategy == "scratch":
        bb = fresh_copy(backbone, seed=seed)
    else:
        bb = copy_model(backbone)
    head = build_head(d, n_classes, seed=seed)
    model = build_classifier(bb, head, trainable_backbone=strategy != "feature_extraction")
    # build_classifier sets the backbone's trainable flag as a whole: choose the layers after it
    if strategy == "scratch":
        set_trainable_last(bb, -1, train_batchnorm=True if train_batchnorm is None else train_batchnorm)
    else:
        set_trainable_last(bb, 0 if strategy == "feature_extraction" else k, train_batchnorm=bool(train_batchnorm))
    if not 0.0 <= bn_momentum < 1.0:
        raise ValueError(f"bn_momentum must be in [0, 1), got {bn_momentum}")
    for layer in flat_layers(bb):
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable:
            layer.momentum = float(bn_momentum)
    return model, bb, head


# --------------------------------------------------------------------------------------------
# training and evaluation
# --------------------------------------------------------------------------------------------


def _check_xy(X, y, model=None):
    return check_xy(X, y, sample_shape=None if model is None else model.input_shape[1:],
                    shape_hint="use odlkit.data.imu_windows or match_input_shape to convert them")


# Tracing Keras' train function costs far more than running it for a few hundred steps of these
# small models (measured in ch01: ~20 of 24 s of one 60-step call under load, ~85 %), and
# ``compile`` + ``fit`` on every new model traces it again. So ``train`` fits a cached *trainer*:
# a compiled copy of a model with the same architecture and the same trainable layers, into which
# the model's weights are loaded, whose optimizer state is reset to a fresh optimizer's, and out of
# which the trained weights are copied back. Same graph, same initial state, same batches: the
# weights are bit-for-bit those of ``model.compile(...)`` + ``model.fit(...)``
# (tests/test_transfer.py checks it), at one trace per architecture instead of one per call.
_TRAINERS: dict[tuple, object] = {}
_MAX_TRAINERS = 32  # ch01 needs 8; a bound keeps a long session from keeping every graph alive
_OPTIMIZERS = ("adam", "sgd")


def _without_initializers(config):
    """A model config without its initializers (they do not matter once the weights are loaded)."""
    if isinstance(config, dict):
        return {k: _without_initializers(v) for k, v in config.items() if not k.endswith("_initializer")}
    if isinstance(config, list):
        return [_without_initializers(v) for v in config]
    return config


def _trainer_key(model, optimizer: str) -> tuple:
    import json

    return (optimizer, json.dumps(_without_initializers(model.get_config()), sort_keys=True, default=str),
            tuple((v.path, tuple(v.shape), v.dtype, bool(v.trainable)) for v in model.weights))


def _copy_trainable_flags(src, dst) -> None:
    # a Model's trainable setter sets all its layers: set the parent first, then its layers
    dst.trainable = src.trainable
    for a, b in zip(src.layers, dst.layers, strict=True):
        if _is_keras_model(a):
            _copy_trainable_flags(a, b)
        else:
            b.trainable = a.trainable


def _is_keras_model(layer) -> bool:
    return isinstance(layer, _keras().Model)


def _new_optimizer(optimizer: str, lr: float):
    keras = _keras()
    return keras.optimizers.Adam(lr) if optimizer == "adam" else keras.optimizers.SGD(lr, momentum=0.9)


def _trainer_for(model, optimizer: str):
    """The cached compiled trainer for ``model``'s architecture and trainable layers (None: not cacheable)."""
    key = _trainer_key(model, optimizer)
    trainer = _TRAINERS.get(key)
    if trainer is None:
        trainer = copy_model(model)
        _copy_trainable_flags(model, trainer)
        if _trainer_key(trainer, optimizer) != key:  # the copy differs (a custom layer, say): no cache
            return None
        trainer.compile(optimizer=_new_optimizer(optimizer, 1e-3), loss="sparse_categorical_crossentropy",
                        metrics=["accuracy"])
        if len(_TRAINERS) >= _MAX_TRAINERS:
            _TRAINERS.pop(next(iter(_TRAINERS)))
        _TRAINERS[key] = trainer
    return trainer


def train(model, X, y, steps: int = 200, lr: float = 1e-3, batch_size: int = 32, seed: int = SEED,
          validation_data=None, optimizer: str = "adam", verbose: int = 0):
    """Train ``model`` for exactly ``steps`` gradient steps of a fresh optimizer; return the Keras ``History``.

    A fixed step budget (not a fixed number of epochs) gives 1 and 50 samples per class the
    same amount of optimisation, so curves against sample size compare data, not compute.
    The result is that of ``model.compile(optimizer, "sparse_categorical_crossentropy")`` and one
    ``model.fit`` over the ``steps`` batches; the fit runs on a cached compiled copy of the model
    (see the comment above), and ``model`` is left compiled with a fresh optimizer.
    """
    keras = _keras()
    X, y = _check_xy(X, y, model)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if optimizer not in _OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {_OPTIMIZERS}, got {optimizer!r}")
    keras.utils.set_random_seed(seed)
    bs = int(min(batch_size, len(X)))
    # One pass over a seeded stream of reshuffled epochs: ``steps`` batches without Keras'
    # per-epoch overhead, which dominates when 4 samples would mean 200 tiny epochs.
    rng = np.random.default_rng(seed)
    need = steps * bs
    order = np.concatenate([rng.permutation(len(X)) for _ in range(math.ceil(need / len(X)))])[:need]
    model.compile(optimizer=_new_optimizer(optimizer, lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    trainer = _trainer_for(model, optimizer)
    if trainer is None:
        return model.fit(X[order], y[order], batch_size=bs, epochs=1, shuffle=False, verbose=verbose,
                         validation_data=validation_data)
    trainer.set_weights(model.get_weights())
    opt = trainer.optimizer
    for v in opt.variables:  # a fresh optimizer: step 0, zero moments (built by the first fit)
        v.assign(np.zeros(tuple(v.shape), dtype=v.dtype))
    opt.learning_rate = lr
    history = trainer.fit(X[order], y[order], batch_size=bs, epochs=1, shuffle=False, verbose=verbose,
                          validation_data=validation_data)
    model.set_weights(trainer.get_weights())
    return history


def predict_proba(model, X, batch_size: int = 512) -> np.ndarray:
    """Class probabilities (inference mode), computed in batches without ``model.predict``'s overhead."""
    X = np.asarray(X, dtype="float32")
    outs = [np.asarray(model(X[i:i + batch_size], training=False)) for i in range(0, len(X), batch_size)]
    return np.concatenate(outs) if outs else np.zeros((0,) + tuple(model.output_shape[1:]), dtype="float32")


def extract_features(backbone, X, batch_size: int = 512) -> np.ndarray:
    """Feature vectors of ``X`` from ``backbone`` in inference mode, shape (n, feature_dim)."""
    return predict_proba(backbone, X, batch_size=batch_size)


def train_head_on_features(features, y, n_classes: int, steps: int = 200, lr: float = 1e-2, batch_size: int = 32,
                           seed: int = SEED):
    """Train a new head (``odlkit.models.build_head``) on precomputed features; return the head.

    Mathematically the same as feature extraction with a frozen backbone (the backbone
    runs in inference mode), but the backbone runs once instead of once per step; this is
    also what a device does when it stores features instead of raw windows.
    """
    from odlkit.models import build_head

    F = np.asarray(features, dtype="float32")
    if F.ndim != 2:
        raise ValueError(f"features must be (n, d), got shape {F.shape}")
    head = build_head(F.shape[1], n_classes, seed=seed)
    train(head, F, y, steps=steps, lr=lr, batch_size=batch_size, seed=seed)
    return head


def per_class_indices(y, per_class: int, seed: int = SEED) -> np.ndarray:
    """Indices of ``per_class`` random samples of every class in ``y`` (sorted).

    Raises if a class has fewer samples than asked for.
    """
    y = np.asarray(y).ravel()
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    rng = np.random.default_rng(seed)
    out = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) < per_class:
            raise ValueError(f"class {c} has only {len(idx)} samples, fewer than per_class={per_class}")
        out.append(rng.choice(idx, size=per_class, replace=False))
    return np.sort(np.concatenate(out))


def sample_efficiency(backbone, X_train, y_train, X_test, y_test, shots: Sequence[int],
                      strategies: Sequence[str] = STRATEGIES, seeds: Sequence[int] = (SEED,), k: int = 2,
                      steps: int = 150, lr: dict | None = None, batch_size: int = 32, progress: bool = True):
    """Test accuracy of each strategy against the number of labelled target samples per class.

    Returns ``{strategy: array of shape (len(seeds), len(shots))}``. For every (seed, shot)
    all strategies see the same training samples. Feature extraction trains its head on
    precomputed features (see :func:`train_head_on_features`).
    """
    from tqdm.auto import tqdm

    for s in strategies:
        if s not in STRATEGIES:
            raise ValueError(f"unknown strategy {s!r}; choose from {STRATEGIES}")
    X_train, y_train = _check_xy(X_train, y_train, backbone)
    X_test, y_test = _check_xy(X_test, y_test, backbone)
    n_classes = int(max(y_train.max(), y_test.max()) + 1)
    rates = {"feature_extraction": 1e-2, "fine_tune": 2e-3, "scratch": 3e-3}
    rates.update(lr or {})
    F_train = extract_features(backbone, X_train) if "feature_extraction" in strategies else None
    F_test = extract_features(backbone, X_test) if "feature_extraction" in strategies else None
    res = {s: np.zeros((len(seeds), len(shots))) for s in strategies}
    jobs = [(i, seed, j, n) for i, seed in enumerate(seeds) for j, n in enumerate(shots)]
    for i, seed, j, n in tqdm(jobs, desc="sample efficiency", disable=not progress):
        idx = per_class_indices(y_train, n, seed=seed)
        for s in strategies:
            if s == "feature_extraction":
                head = train_head_on_features(F_train[idx], y_train[idx], n_classes, steps=steps, lr=rates[s],
                                              batch_size=batch_size, seed=seed)
                res[s][i, j] = accuracy(head, F_test, y_test)
            else:
                model, _, _ = make_transfer_model(backbone, n_classes, s, k=k, seed=seed)
                train(model, X_train[idx], y_train[idx], steps=steps, lr=rates[s], batch_size=batch_size, seed=seed)
                res[s][i, j] = accuracy(model, X_test, y_test)
    return res


# --------------------------------------------------------------------------------------------
# transductive transfer: unlabelled target inputs
# --------------------------------------------------------------------------------------------


def reestimate_batchnorm(model, X_target) -> int:
    """AdaBN: set every BatchNorm layer's running mean/variance to the target data's statistics.

    One forward pass over all of ``X_target`` in training mode with momentum 0: each BatchNorm
    layer stores the mean/variance of its input over the target set, and the layers after it
    already see activations normalised with the new statistics. Weights are untouched; no
    labels and no gradient steps are used. ``model`` (pass the backbone) is changed in place.
    Returns the number of BatchNorm layers updated.
    """
    keras = _keras()
    X = np.asarray(X_target, dtype="float32")
    if len(X) < 2:
        raise ValueError("need at least 2 target inputs to estimate a variance")
    if tuple(X.shape[1:]) != tuple(model.input_shape[1:]):
        raise ValueError(f"inputs have shape {X.shape[1:]} but the model expects {tuple(model.input_shape[1:])}")
    bns = [layer for layer in flat_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [(layer.trainable, layer.momentum) for layer in bns]
    before = [keras.ops.convert_to_numpy(layer.moving_mean) for layer in bns]
    try:
        for layer in bns:
            layer.trainable = True
            layer.momentum = 0.0
        model(X, training=True)
    finally:
        for layer, (trainable, momentum) in zip(bns, saved, strict=True):
            layer.trainable = trainable
            layer.momentum = momentum
    stale = [layer.name for layer, b in zip(bns, before, strict=True)
             if np.array_equal(b, keras.ops.convert_to_numpy(layer.moving_mean))]
    if stale:
        raise RuntimeError(
            f"BatchNorm layers {stale} were not updated by a training-mode pass (a custom layer may force "
            "training=False, or the target data equal the old statistics exactly); pass the backbone itself"
        )
    return len(bns)


def self_train(model, X_labelled, y_labelled, X_unlabelled, rounds: int = 3, threshold: float = 0.9,
               steps: int = 100, lr: float = 1e-3, batch_size: int = 32, seed: int = SEED, y_unlabelled=None):
    """Self-training (pseudo-labelling) on unlabelled target inputs; ``model`` is trained in place.

    Each round predicts the unlabelled inputs, keeps those whose top probability is at least
    ``threshold`` with their predicted class as label, and trains on labelled + pseudo-labelled
    data. ``model`` should already be trained on the labelled data (its predictions seed round 1).
    Returns one dict per round: ``n_pseudo`` and, when ``y_unlabelled`` is given (for teaching
    only; never used for training), ``pseudo_accuracy`` (how many pseudo-labels are right).
    """
    XL, yL = _check_xy(X_labelled, y_labelled, model)
    XU = np.asarray(X_unlabelled, dtype="float32")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    log = []
    for r in range(rounds):
        P = predict_proba(model, XU)
        keep = P.max(1) >= threshold
        pseudo = P.argmax(1)
        entry = {"round": r + 1, "n_pseudo": int(keep.sum())}
        if y_unlabelled is not None:
            yu = np.asarray(y_unlabelled).ravel()
            entry["pseudo_accuracy"] = float(np.mean(pseudo[keep] == yu[keep])) if keep.any() else float("nan")
        X = np.concatenate([XL, XU[keep]])
        y = np.concatenate([yL, pseudo[keep]])
        train(model, X, y, steps=steps, lr=lr, batch_size=batch_size, seed=seed + r)
        log.append(entry)
    return log


# --------------------------------------------------------------------------------------------
# unsupervised transfer: no labels
# --------------------------------------------------------------------------------------------


def cluster_features(features, n_clusters: int, seed: int = SEED) -> np.ndarray:
    """k-means cluster ids of standardised feature vectors (n, d)."""
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler

    F = np.asarray(features, dtype="float64")
    if F.ndim != 2:
        raise ValueError(f"features must be (n, d), got shape {F.shape}; flatten raw windows with X.reshape(len(X), -1)")
    F = StandardScaler().fit_transform(F)
    return KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(F)


def cluster_accuracy(y_true, clusters) -> float:
    """Accuracy of clusters under the best one-to-one mapping of clusters to classes (Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    y = np.asarray(y_true).astype(int).ravel()
    c = np.asarray(clusters).astype(int).ravel()
    if len(y) != len(c):
        raise ValueError(f"{len(y)} labels but {len(c)} cluster ids")
    n = max(y.max(), c.max()) + 1
    M = np.zeros((n, n), dtype=int)
    np.add.at(M, (c, y), 1)
    rows, cols = linear_sum_assignment(-M)
    return float(M[rows, cols].sum() / len(y))


# --------------------------------------------------------------------------------------------
# catastrophic forgetting
# --------------------------------------------------------------------------------------------


def forgetting_curve(backbone, source_head, X_source_test, y_source_test, X_target_train, y_target_train,
                     X_target_test, y_target_test, ks: Iterable[int] = (0, 1, 2, -1), steps: int = 200,
                     lr: float = 2e-3, seed: int = SEED, progress: bool = True) -> list[dict]:
    """Fine-tune the last ``k`` layers on the target for each ``k``; measure target and source accuracy.

    The source accuracy is measured with ``source_head`` (trained for the source task on the
    original backbone, kept fixed) on top of the fine-tuned backbone: how much of the source
    task the shared backbone has forgotten. ``k=0`` is feature extraction (nothing forgotten).
    Returns rows ``{"k", "trainable_layers", "target_accuracy", "source_accuracy"}``.
    """
    from tqdm.auto import tqdm

    from odlkit.models import build_classifier

    yt = np.asarray(y_target_train).ravel()
    n_classes = int(max(yt.max(), np.max(y_target_test)) + 1)
    rows = []
    for k in tqdm(list(ks), desc="forgetting", disable=not progress):
        model, bb, _ = make_transfer_model(backbone, n_classes, "fine_tune", k=k, seed=seed)
        trainable = [layer.name for layer in kernel_layers(bb) if layer.trainable]
        train(model, X_target_train, yt, steps=steps, lr=lr, seed=seed)
        src_model = build_classifier(bb, source_head)
        rows.append({
            "k": len(kernel_layers(bb)) if k == -1 else k,
            "trainable_layers": len(trainable),
            "target_accuracy": accuracy(model, X_target_test, y_target_test),
            "source_accuracy": accuracy(src_model, X_source_test, y_source_test),
        })
    return rows


# --------------------------------------------------------------------------------------------
# input adaptation for a far target
# --------------------------------------------------------------------------------------------


def match_input_shape(X, length: int, channels: int) -> np.ndarray:
    """Map windows (n, T, C) to the backbone's (n, length, channels) input.

    Time is linearly interpolated to ``length`` steps; channels are truncated to the first
    ``channels`` or, if there are fewer, repeated cyclically. This is how a far target
    (audio LPC coefficients, a 1-axis gesture) is fed to an IMU backbone: the shapes fit,
    the meaning of the axes does not, which is what makes it a far domain.
    """
    X = np.asarray(X, dtype="float32")
    if X.ndim != 3:
        raise ValueError(f"X must be (n, T, C) windows, got shape {X.shape}")
    n, T, C = X.shape
    if T < 2:
        raise ValueError("windows need at least 2 time steps to interpolate")
    src = np.linspace(0.0, 1.0, T)
    dst = np.linspace(0.0, 1.0, length)
    pos = np.interp(dst, src, np.arange(T, dtype=float))
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, T - 1)
    w = (pos - lo)[None, :, None].astype("float32")
    Xt = X[:, lo, :] * (1 - w) + X[:, hi, :] * w
    ch = np.arange(channels) % C
    return np.ascontiguousarray(Xt[:, :, ch], dtype="float32")
