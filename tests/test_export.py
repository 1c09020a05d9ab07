"""odlkit.export: int8 keeps accuracy, and TFLite Micro computes exactly what LiteRT computes."""

from __future__ import annotations

import numpy as np
import pytest
from lazy_imports import lazy_module

from odlkit import data, export, pretrain

models = lazy_module("odlkit.models")  # Keras: imported by the first test that needs it


@pytest.fixture(scope="module")
def trained():
    bb, _ = pretrain.load_backbone()
    ds = data.imu_windows("basic_motions")
    train, test = data.train_test_split(ds, by_group=True)
    scaler = data.Standardizer().fit(train.X)
    clf = models.compile_classifier(models.build_classifier(bb, models.build_head(64, 4)), 1e-2)
    clf.fit(scaler.transform(train.X), train.y, epochs=15, batch_size=32, verbose=0)
    return clf, scaler.transform(train.X), scaler.transform(test.X), test.y


@pytest.fixture(scope="module")
def converted(trained):
    clf, Xtr, _, _ = trained
    return export.to_tflite(clf), export.to_tflite(clf, Xtr, int8=True)


def test_float_tflite_matches_keras(trained, converted) -> None:
    clf, _, Xte, _ = trained
    # Same float32 graph, different kernels: probabilities agree to float rounding.
    np.testing.assert_allclose(export.tflite_predict(converted[0], Xte), clf.predict(Xte, verbose=0), atol=1e-4)


def test_int8_accuracy_within_two_points_of_float(trained, converted) -> None:
    _, _, Xte, yte = trained
    acc_f = np.mean(export.tflite_predict(converted[0], Xte).argmax(1) == yte)
    acc_q = np.mean(export.tflite_predict(converted[1], Xte).argmax(1) == yte)
    assert acc_f > 0.8
    assert abs(acc_f - acc_q) <= 0.02, (acc_f, acc_q)
    assert len(converted[1]) < 0.6 * len(converted[0])


def test_tflite_micro_is_bit_exact_with_litert(trained, converted) -> None:
    _, _, Xte, _ = trained
    a = export.tflite_predict(converted[1], Xte[:40], raw=True)
    b = export.tflm_predict(converted[1], Xte[:40], raw=True)
    assert a.dtype == np.int8
    np.testing.assert_array_equal(a, b)


def test_c_array_holds_the_bytes(converted) -> None:
    src = export.tflite_to_c_array(converted[1], "g_motion")
    assert f"g_motion_len = {len(converted[1])};" in src
    body = src.split("{", 1)[1].split("}", 1)[0]
    assert bytes(int(t, 16) for t in body.replace(",", " ").split()) == converted[1]
    with pytest.raises(export.ExportError):
        export.tflite_to_c_array(converted[1], "not a name")


def test_bad_inputs_are_named(trained, converted) -> None:
    with pytest.raises(export.ExportError, match="representative"):
        export.to_tflite(trained[0], int8=True)
    with pytest.raises(export.ExportError, match="shape"):
        export.tflite_predict(converted[0], np.zeros((2, 40, 6)))
