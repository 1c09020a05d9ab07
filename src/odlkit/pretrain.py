"""Pretrain the IMU backbone on the source task and load the committed copy.

The source task is ``watch`` (7 shoulder exercises, 10 subjects, smartwatch accel + gyro).
Every target task in the chapters and labs is different data (``basic_motions`` activities,
recordings of the board's user) or a different modality, so transfer is real transfer.

Regenerate the committed backbone (deterministic: same seed, same accuracy)::

    python -m odlkit.pretrain            # or: make pretrain
    python -m odlkit.pretrain --check    # retrain in memory, compare with the committed one
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from ._quiet import quiet_call
from .config import ASSETS_DIR, SEED, seed_everything
from .data import Dataset, Standardizer, imu_windows, train_test_split

BACKBONE_PATH = ASSETS_DIR / "backbone.keras"
METADATA_PATH = ASSETS_DIR / "backbone.json"
SOURCE = "watch"
EPOCHS = 30


def weights_sha256(model) -> str:
    """Checksum of a model's weights (not of the file, whose zip carries a timestamp)."""
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w, dtype=np.float32).tobytes())
    return h.hexdigest()


def source_split(seed: int = SEED) -> tuple[Dataset, Dataset]:
    """The source task's windows split by subject (no subject on both sides)."""
    return train_test_split(imu_windows(SOURCE), test_size=0.2, seed=seed, by_group=True)


@quiet_call(native=True)  # tf.data's "E0000 ... NodeDef mentions attribute" lines
def train_backbone(epochs: int = EPOCHS, seed: int = SEED, verbose: int = 0, progress: bool = False):
    """Train backbone + a temporary source head on ``watch``; return (backbone, metadata).

    ``progress``: a tqdm bar over the epochs (for notebooks; it does not change the training).

    Deterministic on one machine: seeded initializers, data order and TensorFlow's
    deterministic ops.
    """
    import keras
    import tensorflow as tf

    from .keras_utils import epoch_progress
    from .models import build_backbone, build_classifier, build_head, compile_classifier

    seed_everything(seed)
    tf.config.experimental.enable_op_determinism()
    train, test = source_split(seed)
    scaler = Standardizer().fit(train.X)
    Xtr, Xte = scaler.transform(train.X), scaler.transform(test.X)
    backbone = build_backbone(seed=seed)
    head = build_head(backbone.output_shape[-1], train.n_classes, seed=seed)
    model = compile_classifier(build_classifier(backbone, head, trainable_backbone=True), 3e-3)
    t0 = time.perf_counter()
    model.fit(
        Xtr, train.y, epochs=epochs, batch_size=64, shuffle=True, verbose=verbose,
        callbacks=[keras.callbacks.ReduceLROnPlateau("loss", factor=0.5, patience=4, verbose=0)]
        + ([epoch_progress(epochs, "backbone epochs")] if progress else []),
    )
    seconds = time.perf_counter() - t0
    train_acc = float(model.evaluate(Xtr, train.y, verbose=0)[1])
    test_acc = float(model.evaluate(Xte, test.y, verbose=0)[1])
    meta = {
        "source": SOURCE,
        "classes": train.class_names,
        "input_shape": list(backbone.input_shape[1:]),
        "feature_dim": int(backbone.output_shape[-1]),
        "input_mean": scaler.mean_.tolist(),
        "input_std": scaler.std_.tolist(),
        "test_subjects": sorted(int(g) for g in np.unique(test.groups)),
        "n_train_windows": len(train),
        "n_test_windows": len(test),
        "epochs": epochs,
        "seed": seed,
        "train_accuracy": round(train_acc, 4),
        "test_accuracy": round(test_acc, 4),
        "train_seconds": round(seconds, 1),
        "keras_version": keras.__version__,
        "source_head": {"kernel": head.get_weights()[0].tolist(), "bias": head.get_weights()[1].tolist()},
        "weights_sha256": weights_sha256(backbone),
    }
    return backbone, meta


def save_backbone(backbone, meta: dict, path: Path = BACKBONE_PATH, meta_path: Path = METADATA_PATH) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    backbone.trainable = True
    backbone.save(path)
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")


def load_backbone(path: Path = BACKBONE_PATH, meta_path: Path = METADATA_PATH):
    """The committed pretrained backbone and its metadata (source task, normalization, accuracy).

    Raises a clear error when the file is missing or its weights do not match the recorded
    checksum (a corrupted or half-written asset).
    """
    import keras

    if not path.exists() or not meta_path.exists():
        raise FileNotFoundError(f"no pretrained backbone at {path}; run `make pretrain` (python -m odlkit.pretrain)")
    meta = json.loads(meta_path.read_text())
    backbone = keras.models.load_model(path, compile=False)
    digest = weights_sha256(backbone)
    if digest != meta["weights_sha256"]:
        raise ValueError(
            f"{path} does not match {meta_path.name} (weights checksum {digest[:12]} != "
            f"{meta['weights_sha256'][:12]}); regenerate both with `make pretrain`"
        )
    return backbone, meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m odlkit.pretrain", description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--check", action="store_true", help="retrain and compare with the committed backbone, save nothing")
    p.add_argument("--tolerance", type=float, default=0.01, help="allowed test-accuracy difference for --check")
    args = p.parse_args(argv)
    backbone, meta = train_backbone(args.epochs, args.seed, verbose=2)
    print(f"source={meta['source']} train_acc={meta['train_accuracy']:.4f} test_acc={meta['test_accuracy']:.4f} "
          f"({meta['train_seconds']} s)")
    if args.check:
        committed = json.loads(METADATA_PATH.read_text())
        diff = abs(committed["test_accuracy"] - meta["test_accuracy"])
        same = committed["weights_sha256"] == meta["weights_sha256"]
        print(f"committed test_acc={committed['test_accuracy']:.4f}  difference={diff:.4f}  identical weights={same}")
        return 0 if diff <= args.tolerance else 1
    save_backbone(backbone, meta)
    print(f"saved {BACKBONE_PATH} and {METADATA_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
