"""Membership inference: how much does a trained model reveal about who was in its training set?

Both attacks only need the model's predicted probabilities (black-box access):

* :func:`loss_threshold_attack` (Yeom et al. 2018): training examples tend to have a lower
  loss, so the score ``-loss`` ranks members above non-members. Reported as ROC AUC (0.5 =
  no leakage) and membership advantage ``max_t (TPR - FPR)`` (0 = no leakage), which bounds
  ``e^epsilon - 1`` from below for an epsilon-DP model (Yeom et al., Thm. 1).
* :func:`shadow_model_attack` (Shokri et al. 2017): train ``n_shadows`` models the same way
  as the target on data from the same distribution where membership is known, learn an
  attack classifier on their output features, and apply it to the target.

AUC and the best ``TPR - FPR`` average over all thresholds and pick the threshold with the very
membership labels being evaluated. Carlini et al. (2022, "Membership inference attacks from first
principles") argue that what matters is whether an attack identifies *some* members *confidently*:

* :func:`tpr_at_fpr`: the true positive rate at a low false positive rate (0.1 %, 1 %), the
  fraction of members caught while wrongly accusing at most that fraction of non-members;
* :func:`threshold_at_fpr` / :func:`apply_threshold`: a threshold an attacker can really use,
  chosen on *reference* data it knows are non-members (its own population sample), never with
  the target's membership labels; then the TPR and FPR it actually achieves on the target.
"""

from __future__ import annotations

import numpy as np


def per_example_loss(probs, y, eps: float = 1e-12):
    """Cross-entropy ``-log p[y]`` of each row of a (n, classes) probability matrix."""
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y)
    if probs.ndim != 2 or probs.shape[0] != y.shape[0]:
        raise ValueError(f"probs must be (n, n_classes) matching y (n,); got {probs.shape} and {y.shape}")
    return -np.log(np.clip(probs[np.arange(len(y)), y], eps, 1.0))


def attack_metrics(scores_members, scores_nonmembers) -> dict:
    """ROC AUC and membership advantage of scores where *higher means member*."""
    from sklearn.metrics import roc_auc_score, roc_curve

    s_in = np.asarray(scores_members, dtype=np.float64).ravel()
    s_out = np.asarray(scores_nonmembers, dtype=np.float64).ravel()
    if len(s_in) == 0 or len(s_out) == 0:
        raise ValueError("need at least one member and one non-member score")
    labels = np.r_[np.ones(len(s_in)), np.zeros(len(s_out))]
    scores = np.r_[s_in, s_out]
    fpr, tpr, thr = roc_curve(labels, scores)
    k = int(np.argmax(tpr - fpr))
    return {
        "auc": float(roc_auc_score(labels, scores)),
        "advantage": float(tpr[k] - fpr[k]),
        "threshold": float(thr[k]),
        "n_members": len(s_in),
        "n_nonmembers": len(s_out),
        "fpr": fpr,
        "tpr": tpr,
    }


def _scores(x, what: str) -> np.ndarray:
    s = np.asarray(x, dtype=np.float64).ravel()
    if len(s) == 0:
        raise ValueError(f"need at least one {what} score")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{what} scores contain NaN or inf")
    return s


def tpr_at_fpr(scores_members, scores_nonmembers, max_fpr: float = 0.01) -> float:
    """Largest TPR of a threshold rule ``member if score > t`` whose FPR is at most ``max_fpr``.

    Exact on the finite sample (no interpolation of the ROC curve): with ``m = floor(max_fpr *
    n_nonmembers)`` false positives allowed, ``t`` sits at the ``(m+1)``-th largest non-member score,
    so members tied with it are not counted. Higher scores mean "member".
    """
    s_in, s_out = _scores(scores_members, "member"), _scores(scores_nonmembers, "non-member")
    if not 0.0 <= max_fpr <= 1.0:
        raise ValueError(f"max_fpr must be in [0, 1], got {max_fpr}")
    allowed = int(np.floor(max_fpr * len(s_out) + 1e-9))
    if allowed >= len(s_out):
        return 1.0
    t = np.sort(s_out)[::-1][allowed]
    return float(np.mean(s_in > t))


def threshold_at_fpr(reference_nonmember_scores, target_fpr: float = 0.01) -> float:
    """A threshold chosen without any membership labels of the target's data.

    ``reference_nonmember_scores`` are the attack scores of examples the attacker knows were not
    in training (its own sample of the population, run through the target model). The rule
    ``member if score > t`` then flags at most ``target_fpr`` of those reference examples; on the
    target's true non-members it flags about as many, up to sampling error.
    """
    ref = _scores(reference_nonmember_scores, "reference")
    if not 0.0 < target_fpr < 1.0:
        raise ValueError(f"target_fpr must be in (0, 1), got {target_fpr}")
    allowed = int(np.floor(target_fpr * len(ref) + 1e-9))
    return float(np.sort(ref)[::-1][allowed]) if allowed < len(ref) else float(ref.min() - 1.0)


def apply_threshold(threshold: float, scores_members, scores_nonmembers) -> dict:
    """TPR and FPR that the rule ``member if score > threshold`` achieves on the target."""
    s_in, s_out = _scores(scores_members, "member"), _scores(scores_nonmembers, "non-member")
    return {"threshold": float(threshold), "tpr": float(np.mean(s_in > threshold)),
            "fpr": float(np.mean(s_out > threshold))}


def loss_threshold_attack(predict_proba, X_members, y_members, X_nonmembers, y_nonmembers,
                          X_reference=None, y_reference=None, target_fpr: float = 0.05) -> dict:
    """Loss-threshold attack on a model given as ``predict_proba(X) -> (n, classes)``.

    Besides AUC and advantage (which use the membership labels), reports ``tpr_at_0.1%_fpr``,
    ``tpr_at_1%_fpr`` and ``tpr_at_10%_fpr``. With ``X_reference, y_reference`` (attacker data known
    not to be in training) it also picks a threshold on them at ``target_fpr`` and reports what that
    label-free rule achieves on the target as ``calibrated`` (``threshold``, ``tpr``, ``fpr``).
    """
    l_in = per_example_loss(predict_proba(X_members), y_members)
    l_out = per_example_loss(predict_proba(X_nonmembers), y_nonmembers)
    out = attack_metrics(-l_in, -l_out)
    out["loss_members"] = float(l_in.mean())
    out["loss_nonmembers"] = float(l_out.mean())
    for f in (0.001, 0.01, 0.1):
        out[f"tpr_at_{f:.1%}_fpr".replace(".0%", "%")] = tpr_at_fpr(-l_in, -l_out, f)
    if X_reference is not None:
        l_ref = per_example_loss(predict_proba(X_reference), y_reference)
        out["calibrated"] = apply_threshold(threshold_at_fpr(-l_ref, target_fpr), -l_in, -l_out)
        out["calibrated"]["target_fpr"] = float(target_fpr)
    return out


def attack_features(probs, y):
    """Class-agnostic features of one prediction: top-3 sorted probabilities, p[y], loss, entropy."""
    probs = np.asarray(probs, dtype=np.float64)
    top = -np.sort(-probs, axis=1)[:, :3]
    if top.shape[1] < 3:
        top = np.pad(top, ((0, 0), (0, 3 - top.shape[1])))
    p_true = probs[np.arange(len(y)), y]
    loss = per_example_loss(probs, y)
    ent = -np.sum(probs * np.log(np.clip(probs, 1e-12, 1)), axis=1)
    return np.column_stack([top, p_true, loss, ent])


def shadow_model_attack(
    train_fn,
    X_shadow,
    y_shadow,
    target_predict_proba,
    X_members,
    y_members,
    X_nonmembers,
    y_nonmembers,
    n_shadows: int = 4,
    seed: int = 0,
) -> dict:
    """Shokri-style attack.

    ``train_fn(X, y) -> predict_proba`` must train a fresh model the same way as the target.
    ``(X_shadow, y_shadow)`` is attacker data from the same distribution, disjoint from the
    target's training set; each shadow model trains on a random half and the other half
    serves as its known non-members. Returns :func:`attack_metrics` of the attack
    classifier's member probability on the target's members / non-members, plus the
    attack's accuracy on held-out shadow data (``shadow_auc``).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    X_shadow = np.asarray(X_shadow)
    y_shadow = np.asarray(y_shadow)
    if n_shadows < 1:
        raise ValueError("n_shadows must be >= 1")
    if len(X_shadow) < 4:
        raise ValueError("shadow data too small: need at least 4 examples")
    rng = np.random.default_rng(seed)
    feats, labels, shadow_ids = [], [], []
    for s in range(n_shadows):
        perm = rng.permutation(len(X_shadow))
        half = len(perm) // 2
        tr, te = perm[:half], perm[half:]
        proba = train_fn(X_shadow[tr], y_shadow[tr])
        feats += [attack_features(proba(X_shadow[tr]), y_shadow[tr]), attack_features(proba(X_shadow[te]), y_shadow[te])]
        labels += [np.ones(len(tr)), np.zeros(len(te))]
        shadow_ids += [np.full(len(tr), s), np.full(len(te), s)]
    F, L, S = np.vstack(feats), np.concatenate(labels), np.concatenate(shadow_ids)
    shadow_auc = None
    if n_shadows > 1:
        # honest check of the attack model itself: train on shadows 1.., test on shadow 0
        clf = HistGradientBoostingClassifier(max_iter=100, random_state=seed).fit(F[S != 0], L[S != 0])
        p = clf.predict_proba(F[S == 0])[:, 1]
        shadow_auc = attack_metrics(p[L[S == 0] == 1], p[L[S == 0] == 0])["auc"]
    clf = HistGradientBoostingClassifier(max_iter=100, random_state=seed).fit(F, L)
    p_in = clf.predict_proba(attack_features(target_predict_proba(X_members), y_members))[:, 1]
    p_out = clf.predict_proba(attack_features(target_predict_proba(X_nonmembers), y_nonmembers))[:, 1]
    out = attack_metrics(p_in, p_out)
    out["shadow_auc"] = shadow_auc
    return out
