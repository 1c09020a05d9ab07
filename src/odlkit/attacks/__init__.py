"""Attacks on on-device and federated learning, and defences (chapter 5).

* :mod:`~odlkit.attacks.poisoning`: label flipping, data insertion, backdoor triggers (IMU pulse).
* :mod:`~odlkit.attacks.malicious`: malicious FL clients (sign flip, scaled, backdoor) as a pool wrapper.
* :mod:`~odlkit.attacks.robust`: coordinate median, trimmed mean, (multi-)Krum, norm clipping.
* :mod:`~odlkit.attacks.experiments`: the robustness table (accuracy / attack success vs attackers).
* :mod:`~odlkit.attacks.detection`: PCA and clustering outlier flags, CUSUM on a stream.
* :mod:`~odlkit.attacks.validation`: cosine distance to class centroids.
* :mod:`~odlkit.attacks.adversarial`: FGSM, PGD, transfer attacks, adversarial training (TensorFlow).
* :mod:`~odlkit.attacks.inversion`: model inversion of a class prototype (TensorFlow).

The numpy parts import without TensorFlow; the last two import it on first use.
"""

from odlkit.attacks.detection import CUSUM, cluster_flags, pca_flags, pca_scores, precision_recall, robust_z
from odlkit.attacks.malicious import MaliciousPool, malicious_update
from odlkit.attacks.poisoning import (
    add_trigger,
    attack_success_rate,
    backdoor_poison,
    flip_labels,
    imu_trigger,
    insert_points,
)
from odlkit.attacks.robust import (
    coordinate_median,
    default_aggregators,
    krum,
    krum_scores,
    norm_clipping,
    trimmed_mean,
)
from odlkit.attacks.validation import CentroidValidator

__all__ = [
    "CUSUM", "CentroidValidator", "MaliciousPool", "add_trigger", "attack_success_rate", "backdoor_poison",
    "cluster_flags", "coordinate_median", "default_aggregators", "flip_labels", "imu_trigger", "insert_points",
    "krum", "krum_scores", "malicious_update", "norm_clipping", "pca_flags", "pca_scores", "precision_recall",
    "robust_z", "trimmed_mean",
]
