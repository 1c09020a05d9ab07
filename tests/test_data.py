"""odlkit.data: real datasets load offline with the documented shapes, and bad input is named."""

from __future__ import annotations

import json

import numpy as np
import pytest

from odlkit import data
from odlkit.data import DatasetError


@pytest.mark.parametrize(
    "name, n, n_classes",
    [("watch", 140, 7), ("basic_motions", 80, 4), ("japanese_vowels", 640, 9), ("pickup_gesture", 100, 10),
     ("digits", 1797, 10)],
)
def test_builtin_datasets_load(name: str, n: int, n_classes: int) -> None:
    ds = data.load(name)
    assert len(ds) == n and ds.n_classes == n_classes
    assert set(np.unique(ds.y)) == set(range(n_classes))
    assert ds.source


def test_imu_windows_have_the_backbone_format() -> None:
    for name in ["watch", "basic_motions"]:
        ds = data.imu_windows(name)
        assert ds.X.shape[1:] == (50, 6) and ds.X.dtype == np.float32
        assert ds.sample_rate_hz == 25.0 and ds.channels == data.IMU_CHANNELS
        assert np.all(np.isfinite(ds.X))
    bm = data.imu_windows("basic_motions")
    # 10 s at 10 Hz -> 250 samples at 25 Hz -> windows starting every 25 samples.
    assert len(bm) == 80 * ((250 - 50) // 25 + 1)


def test_resample_keeps_a_linear_signal_exact() -> None:
    t = np.arange(100, dtype=np.float32)
    ds = data.Dataset("ramp", X=np.stack([t, 2 * t], axis=1)[None], y=[0], class_names=["a"], channels=["u", "v"],
                      sample_rate_hz=10.0)
    up = data.resample(ds, 25.0)
    assert up.X.shape == (1, 250, 2)
    np.testing.assert_allclose(up.X[0, :, 1], 2 * up.X[0, :, 0], rtol=1e-6)
    np.testing.assert_allclose(up.X[0, [0, -1], 0], [0, 99])


def test_group_split_never_shares_a_subject() -> None:
    ds = data.imu_windows("watch")
    train, test = data.train_test_split(ds, test_size=0.2, by_group=True)
    assert not set(train.groups) & set(test.groups)
    assert len(train) + len(test) == len(ds)
    assert set(np.unique(test.y)) == set(range(ds.n_classes))


def test_stratified_split_and_few_shot() -> None:
    ds = data.load("digits")
    train, test = data.train_test_split(ds, test_size=0.25, seed=1)
    assert abs(len(test) - 0.25 * len(ds)) <= 1
    shots = data.few_shot(train, 3, seed=2)
    assert shots.counts() == {c: 3 for c in ds.class_names}
    again = data.few_shot(train, 3, seed=2)
    np.testing.assert_array_equal(shots.X, again.X)


def test_select_classes_relabels_in_the_given_order() -> None:
    ds = data.load("basic_motions").select_classes(["running", "standing"])
    assert ds.class_names == ["running", "standing"] and set(ds.y) == {0, 1} and len(ds) == 40


def test_standardizer_uses_training_statistics_only() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(3.0, 2.0, size=(200, 50, 6)).astype(np.float32)
    s = data.Standardizer().fit(X)
    Z = s.transform(X)
    np.testing.assert_allclose(Z.reshape(-1, 6).mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(Z.reshape(-1, 6).std(0), 1, atol=1e-3)
    with pytest.raises(DatasetError, match="channels"):
        s.transform(X[..., :3])
    with pytest.raises(RuntimeError, match="fit"):
        data.Standardizer().transform(X)


def test_loading_returns_independent_copies() -> None:
    a = data.load("basic_motions")
    a.X[:] = 0
    assert np.abs(data.load("basic_motions").X).sum() > 0


def test_unknown_dataset_names_the_choices() -> None:
    with pytest.raises(DatasetError) as e:
        data.load("basic_motion")
    assert "basic_motions" in str(e.value) and "Available" in str(e.value)


def test_recordings_round_trip_in_both_formats(tmp_path) -> None:
    ds = data.load("basic_motions").subset(np.arange(0, 80, 10))
    for fmt in ["csv", "json"]:
        folder = tmp_path / fmt
        data.write_recordings(folder, ds, fmt=fmt)
        back = data.read_recordings(folder)
        assert back.class_names == ds.class_names
        assert back.sample_rate_hz == pytest.approx(10.0)
        order = np.argsort([f"{ds.class_names[y]}.{i:04d}" for i, y in enumerate(ds.y)])
        np.testing.assert_allclose(back.X, ds.X[order], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(back.y, ds.y[order])


def test_edge_impulse_file_has_the_acquisition_format(tmp_path) -> None:
    x = np.zeros((10, 6), np.float32)
    doc = json.loads(data.write_edge_impulse(tmp_path / "wave.1.json", x, 25.0).read_text())
    assert doc["protected"]["alg"] == "none" and doc["payload"]["interval_ms"] == 40.0
    assert [s["name"] for s in doc["payload"]["sensors"]] == data.IMU_CHANNELS


@pytest.mark.parametrize(
    "content, message",
    [("t,ax\n0,1\n", "header"), ("timestamp,ax\n0,1\n40,x\n", "not numeric"), ("timestamp,ax\n0,1\n0,2\n", "increase"),
     ("timestamp,ax,ay\n0,1\n40,2\n", "numbers")],
)
def test_malformed_csv_is_named(tmp_path, content: str, message: str) -> None:
    p = tmp_path / "wave.1.csv"
    p.write_text(content)
    with pytest.raises(DatasetError, match=message) as e:
        data.read_csv(p)
    assert str(p) in str(e.value)


def test_malformed_edge_impulse_file_is_named(tmp_path) -> None:
    p = tmp_path / "wave.1.json"
    p.write_text('{"payload": {"values": []}}')
    with pytest.raises(DatasetError, match="Edge Impulse"):
        data.read_edge_impulse(p)


def test_wrong_shapes_are_rejected(tmp_path) -> None:
    with pytest.raises(DatasetError, match=r"\(T, 6\)"):
        data.write_csv(tmp_path / "a.1.csv", np.zeros((5, 3)), 25.0)
    with pytest.raises(DatasetError, match="one label per sample"):
        data.Dataset("bad", X=np.zeros((3, 4)), y=[0, 1], class_names=["a", "b"])
    with pytest.raises(DatasetError, match="not the 6-axis IMU"):
        data.imu_windows("japanese_vowels")


def test_shipped_recordings_load() -> None:
    folders = [n for n in data.list_datasets() if n not in data._BUILTIN]
    assert folders, "datasets/ should ship at least one recording folder"
    for name in folders:
        ds = data.load(name)
        assert len(ds) > 0 and ds.sample_rate_hz
