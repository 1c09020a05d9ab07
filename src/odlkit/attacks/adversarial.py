"""Adversarial examples (FGSM, PGD), transfer attacks and adversarial training for Keras models.

``eps`` is an L-infinity budget in the model's input units (for standardized IMU windows,
0.1 = a tenth of a channel's standard deviation at every time step).

* FGSM (Goodfellow et al. 2015): ``x' = x + eps * sign(grad_x loss)``.
* PGD (Madry et al. 2018): ``steps`` of size ``alpha`` from a random start in the eps-ball,
  projected back after each step.
* Transfer: craft on a *surrogate* model (the attacker's own, trained on other data), evaluate
  on the target: :func:`transfer_attack`.
* Adversarial training: each batch trained on a mix of clean and FGSM/PGD examples crafted
  against the current model: :func:`adversarial_training`; costs one extra forward/backward
  per batch for FGSM, ``steps`` for PGD.
"""

from __future__ import annotations

import time

import numpy as np

from odlkit.keras_utils import accuracy, classification_loss


def _loss_fn(model):
    return classification_loss(model)


def input_gradient(model, X, y):
    """Gradient of the mean loss w.r.t. the inputs (numpy, same shape as X)."""
    import tensorflow as tf

    x = tf.convert_to_tensor(np.asarray(X, np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = _loss_fn(model)(tf.convert_to_tensor(np.asarray(y)), model(x, training=False))
    return tape.gradient(loss, x).numpy()


def _check_eps(eps):
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0 (got {eps})")


def fgsm(model, X, y, eps: float, clip=None):
    """Fast gradient sign method. ``clip=(lo, hi)`` keeps inputs in a valid range."""
    _check_eps(eps)
    X = np.asarray(X, np.float32)
    adv = X + eps * np.sign(input_gradient(model, X, y))
    return np.clip(adv, *clip) if clip is not None else adv.astype(np.float32)


def pgd(model, X, y, eps: float, alpha: float | None = None, steps: int = 10, random_start: bool = True,
        seed: int = 0, clip=None):
    """Projected gradient descent in the L-infinity ball of radius ``eps`` (``alpha`` defaults to 2.5 eps / steps)."""
    _check_eps(eps)
    if steps < 1:
        raise ValueError("steps must be >= 1")
    alpha = 2.5 * eps / steps if alpha is None else alpha
    X = np.asarray(X, np.float32)
    rng = np.random.default_rng(seed)
    adv = X + (rng.uniform(-eps, eps, X.shape).astype(np.float32) if random_start else 0)
    for _ in range(steps):
        adv = adv + alpha * np.sign(input_gradient(model, adv, y))
        adv = np.clip(adv, X - eps, X + eps)
        if clip is not None:
            adv = np.clip(adv, *clip)
    return adv.astype(np.float32)


def robust_accuracy_curve(model, X, y, eps_values, attack: str = "fgsm", **kw) -> list[float]:
    """Accuracy under ``attack`` for each eps (eps=0 is clean accuracy)."""
    fn = {"fgsm": fgsm, "pgd": pgd}[attack]
    return [accuracy(model, fn(model, X, y, e, **kw) if e > 0 else X, y) for e in eps_values]


def transfer_attack(surrogate, target, X, y, eps: float, attack: str = "fgsm", **kw) -> dict:
    """Craft on ``surrogate``, test on ``target``: accuracies of both on clean and adversarial inputs."""
    fn = {"fgsm": fgsm, "pgd": pgd}[attack]
    adv = fn(surrogate, X, y, eps, **kw)
    return {
        "target_clean": accuracy(target, X, y),
        "target_adv_transfer": accuracy(target, adv, y),
        "target_adv_whitebox": accuracy(target, fn(target, X, y, eps, **kw), y),
        "surrogate_adv": accuracy(surrogate, adv, y),
    }


def adversarial_training(model, X, y, eps: float, epochs: int = 5, batch_size: int = 32, attack: str = "fgsm",
                         adv_ratio: float = 0.5, learning_rate: float = 1e-3, seed: int = 0, pgd_steps: int = 5,
                         progress: bool = False) -> dict:
    """Train ``model`` in place on batches where ``adv_ratio`` of the examples are adversarial.

    Returns ``{"seconds": ..., "losses": [...]}``; compare ``seconds`` with the same call at
    ``adv_ratio=0`` (or ``eps=0``) to see the cost.
    """
    import tensorflow as tf

    if not 0 <= adv_ratio <= 1:
        raise ValueError(f"adv_ratio must be in [0, 1] (got {adv_ratio})")
    X = np.asarray(X, np.float32)
    y = np.asarray(y)
    opt = tf.keras.optimizers.Adam(learning_rate)
    loss_obj = _loss_fn(model)
    rng = np.random.default_rng(seed)

    @tf.function(reduce_retracing=True)
    def train_step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_obj(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    t0 = time.perf_counter()
    losses = []
    it = range(epochs)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="adversarial training")
    for _ in it:
        perm = rng.permutation(len(y))
        for s in range(0, len(y), batch_size):
            idx = perm[s : s + batch_size]
            xb, yb = X[idx].copy(), y[idx]
            n_adv = int(round(adv_ratio * len(idx)))
            if n_adv and eps > 0:
                if attack == "fgsm":
                    xb[:n_adv] = fgsm(model, xb[:n_adv], yb[:n_adv], eps)
                else:
                    xb[:n_adv] = pgd(model, xb[:n_adv], yb[:n_adv], eps, steps=pgd_steps, seed=int(rng.integers(1 << 30)))
            losses.append(float(train_step(tf.constant(xb), tf.constant(yb))))
    return {"seconds": time.perf_counter() - t0, "losses": losses}
