"""odlkit.models and odlkit.pretrain: shapes, determinism, and the committed backbone."""

from __future__ import annotations

import json

import numpy as np
import pytest
from lazy_imports import lazy_module

from odlkit import pretrain

models = lazy_module("odlkit.models")  # Keras: imported by the first test that needs it


def test_backbone_shapes_and_layer_types() -> None:
    bb = models.build_backbone()
    assert bb.input_shape == (None, 50, 6) and bb.output_shape == (None, 64)
    allowed = {"InputLayer", "Conv1D", "DepthwiseConv1D", "BatchNormalization", "ReLU", "MaxPooling1D",
               "GlobalAveragePooling1D", "Dense"}
    assert {type(layer).__name__ for layer in bb.layers} <= allowed


def test_same_seed_same_model() -> None:
    a, b = models.build_backbone(seed=3), models.build_backbone(seed=3)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    c = models.build_backbone(seed=4)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


def test_mac_count_by_hand() -> None:
    # conv1 46*16*5*6 + dw2 19*16*5 + pw2 19*32*16 + conv3 7*64*3*32 + dense 64*64
    assert models.count_macs(models.build_backbone()) == 22080 + 1520 + 9728 + 43008 + 4096


def test_classifier_freezes_the_backbone() -> None:
    bb = models.build_backbone()
    clf = models.build_classifier(bb, models.build_head(64, 4))
    assert len(clf.trainable_weights) == 2  # only the head's kernel and bias
    with pytest.raises(ValueError, match="features"):
        models.build_classifier(bb, models.build_head(32, 4))


def test_committed_backbone_loads_and_beats_chance() -> None:
    bb, meta = pretrain.load_backbone()
    assert meta["source"] == "watch" and meta["feature_dim"] == 64
    assert meta["test_accuracy"] > 0.7  # 7 classes: chance is 0.14; held-out subjects
    assert len(meta["input_mean"]) == 6 and all(s > 0 for s in meta["input_std"])


def test_corrupted_backbone_is_detected(tmp_path) -> None:
    meta = json.loads(pretrain.METADATA_PATH.read_text())
    meta["weights_sha256"] = "0" * 64
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="make pretrain"):
        pretrain.load_backbone(pretrain.BACKBONE_PATH, tmp_path / "m.json")
    with pytest.raises(FileNotFoundError, match="make pretrain"):
        pretrain.load_backbone(tmp_path / "none.keras", tmp_path / "m.json")


@pytest.mark.slow
def test_pretraining_reproduces_the_committed_backbone() -> None:
    """The script regenerates the committed model: same test accuracy within 1 point."""
    _, meta = pretrain.train_backbone()
    committed = json.loads(pretrain.METADATA_PATH.read_text())
    assert abs(meta["test_accuracy"] - committed["test_accuracy"]) <= 0.01
