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


# --- Edge Impulse Studio exports of data recorded with Edge Impulse's own Nano 33 BLE Sense firmware
# The files below are written by hand from the data acquisition format spec
# (docs.edgeimpulse.com/reference/data-ingestion/data-acquisition-format: protected {ver, alg, iat},
# signature, payload {device_name, device_type, interval_ms, sensors [{name, units}], values}) and
# Edge Impulse's CSV format (a `timestamp` column in ms, then one column per axis), with the axes
# and units the firmware records: accX accY accZ in m/s2, gyrX gyrY gyrZ in dps.
G = 9.80665


def _firmware_export(folder, ds):
    """A Studio export folder (training/ JSON, testing/ CSV) of the recordings of ``ds`` (g, deg/s)."""
    to_firmware = np.array([G, G, G, 1.0, 1.0, 1.0])
    for i, (x, y) in enumerate(zip(ds.X, ds.y, strict=True)):
        label, values = ds.class_names[y], np.asarray(x, np.float64) * to_firmware
        if i % 2 == 0:
            doc = {"protected": {"ver": "v1", "alg": "HS256", "iat": 1700000000 + i},
                   "signature": f"{i:064x}",
                   "payload": {"device_name": "5C:E8:A1:33:0B:7D", "device_type": "ARDUINO_NANO33BLE",
                               "interval_ms": 1000.0 / ds.sample_rate_hz,
                               "sensors": [{"name": "accX", "units": "m/s2"}, {"name": "accY", "units": "m/s2"},
                                           {"name": "accZ", "units": "m/s2"}, {"name": "gyrX", "units": "dps"},
                                           {"name": "gyrY", "units": "dps"}, {"name": "gyrZ", "units": "dps"}],
                               "values": [[float(f"{v:.9g}") for v in row] for row in values]}}
            p = folder / "training" / f"{label}.rec{i}.3kq9{i:04d}.json"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps(doc))
        else:
            p = folder / "testing" / f"{label}.rec{i}.csv"
            p.parent.mkdir(parents=True, exist_ok=True)
            lines = ["timestamp,accX,accY,accZ,gyrX,gyrY,gyrZ"]
            lines += [",".join([f"{k * 1000.0 / ds.sample_rate_hz:g}", *(f"{v:.9g}" for v in row)])
                      for k, row in enumerate(values)]
            p.write_text("\n".join(lines) + "\n")


def test_edge_impulse_firmware_export_loads_into_the_imu_pipeline_in_kit_units(tmp_path) -> None:
    ds = data.load("basic_motions").subset(np.arange(0, 80, 8))  # 10 recordings, g and deg/s
    _firmware_export(tmp_path / "export", ds)
    back = data.read_recordings(tmp_path / "export")
    assert back.channels == data.IMU_CHANNELS and back.sample_rate_hz == pytest.approx(ds.sample_rate_hz)
    # files are read in path order (testing/ before training/): match them by their recording number
    rec = [int(f.split("rec")[1].split(".")[0]) for f in back.meta["files"]]
    np.testing.assert_allclose(back.X, ds.X[rec], rtol=1e-6, atol=1e-6)  # m/s2 -> g, dps -> deg/s
    assert [back.class_names[y] for y in back.y] == [ds.class_names[ds.y[i]] for i in rec]
    # ... and into Lab 1's pipeline: the backbone's (n, 50, 6) windows at 25 Hz, equal to the kit's own
    win, ref = data.imu_windows(back), data.imu_windows(ds.subset(rec))
    assert win.X.shape[1:] == (data.IMU_WINDOW, 6) and len(win) == len(ref) > 0
    np.testing.assert_allclose(win.X, ref.X, rtol=1e-5, atol=1e-5)


def test_edge_impulse_units_come_from_the_sensors_field(tmp_path) -> None:
    x = np.array([[G, 0, -G / 2, np.pi, 0, 0], [0, 2 * G, 0, 0, -np.pi / 2, 0]])
    doc = {"protected": {"ver": "v1", "alg": "none"}, "signature": "0" * 64,
           "payload": {"device_type": "X", "interval_ms": 10,
                       "sensors": [{"name": n, "units": "m/s2"} for n in ("accX", "accY", "accZ")]
                       + [{"name": n, "units": "rad/s"} for n in ("gyrX", "gyrY", "gyrZ")],
                       "values": x.tolist()}}
    p = tmp_path / "a.1.json"
    p.write_text(json.dumps(doc))
    got, rate, channels = data.read_edge_impulse(p)
    assert channels == data.IMU_CHANNELS and rate == pytest.approx(100.0)
    np.testing.assert_allclose(got, [[1, 0, -0.5, 180, 0, 0], [0, 2, 0, 0, -90, 0]], rtol=1e-6, atol=1e-5)
    raw, _, raw_channels = data.read_edge_impulse(p, kit_units=False)
    assert raw_channels[0] == "accX" and raw[0, 0] == pytest.approx(G)
    doc["payload"]["sensors"][4]["units"] = "furlongs"
    p.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match="gyrY is in 'furlongs'") as e:
        data.read_edge_impulse(p)
    assert str(p) in str(e.value)


def test_edge_impulse_export_in_firmware_units_without_iat_or_a_shared_device_name(tmp_path) -> None:
    x = data.load("basic_motions").X[3]
    doc = json.loads(data.write_edge_impulse(tmp_path / "walking.1.json", x, 10.0, axes="edge_impulse").read_text())
    assert doc["protected"] == {"ver": "v1", "alg": "none"}  # no iat: the board has no clock
    assert "device_name" not in doc["payload"] and doc["payload"]["device_type"] == "ARDUINO_NANO33BLE"
    assert [(s["name"], s["units"]) for s in doc["payload"]["sensors"]] == [
        ("accX", "m/s2"), ("accY", "m/s2"), ("accZ", "m/s2"), ("gyrX", "dps"), ("gyrY", "dps"), ("gyrZ", "dps")]
    np.testing.assert_allclose(np.array(doc["payload"]["values"])[:, :3], x[:, :3] * G, rtol=1e-5)
    back, _, channels = data.read_edge_impulse(tmp_path / "walking.1.json")
    assert channels == data.IMU_CHANNELS
    np.testing.assert_allclose(back, x, rtol=1e-5, atol=1e-5)
    kit = json.loads(data.write_edge_impulse(tmp_path / "walking.2.json", x, 10.0, device_name="5C:E8:A1:33:0B:7D")
                     .read_text())
    assert kit["payload"]["device_name"] == "5C:E8:A1:33:0B:7D" and "iat" not in kit["protected"]


# --- Edge Impulse Studio export with info.labels (docs.edgeimpulse.com/tools/specifications/
# data-annotation/ei-labels): {"version": 1, "files": [{"path", "name", "category", "label":
# {"type": "label" | "unlabeled" | "multi-label", ...}}]}, at the root and/or in each subfolder,
# paths relative to the info.labels file. The label there wins over the file name.
def _studio_sample(path, seed: int, rows: int = 20):
    """One hand-made firmware recording (accX..gyrZ in m/s2 and dps at 50 Hz); its kit values."""
    x = np.random.default_rng(seed).normal(size=(rows, 6))
    doc = {"protected": {"ver": "v1", "alg": "HS256"}, "signature": f"{seed:064x}",
           "payload": {"device_type": "ARDUINO_NANO33BLE", "interval_ms": 20,
                       "sensors": [{"name": n, "units": u} for n, u in zip(data.EDGE_IMPULSE_AXES,
                                                                            data.EDGE_IMPULSE_FIRMWARE_UNITS,
                                                                            strict=True)],
                       "values": x.tolist()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return x / np.array([G, G, G, 1, 1, 1])


def _studio_export_with_info_labels(root):
    kit = {}
    # Relabelled in Studio after recording: the file name still says idle, info.labels says wave.
    kit["training/idle.s1.4f2a.json"] = _studio_sample(root / "training" / "idle.s1.4f2a.json", 1)
    # A label with dots (a file name cannot carry it) and a file name that is no <label>.<id>.
    kit["training/rec_07.json"] = _studio_sample(root / "training" / "rec_07.json", 2)
    kit["training/noise.s3.json"] = _studio_sample(root / "training" / "noise.s3.json", 3)  # unlabeled
    kit["testing/wave.t1.json"] = _studio_sample(root / "testing" / "wave.t1.json", 4)
    kit["testing/t2.json"] = _studio_sample(root / "testing" / "t2.json", 5)  # one class in multi-label form
    (root / "info.labels").write_text(json.dumps({"version": 1, "files": [
        {"path": "training/idle.s1.4f2a.json", "name": "s1", "category": "training",
         "label": {"type": "label", "label": "wave"}},
        {"path": "training/rec_07.json", "name": "rec_07", "category": "training",
         "label": {"type": "label", "label": "speed.0.5"}, "metadata": {"site": "lab"}},
        {"path": "training/noise.s3.json", "name": "s3", "category": "training", "label": {"type": "unlabeled"}},
    ]}))
    (root / "testing" / "info.labels").write_text(json.dumps({"version": 1, "files": [
        {"path": "wave.t1.json", "name": "t1", "category": "testing", "label": {"type": "label", "label": "wave"}},
        {"path": "t2.json", "name": "t2", "category": "testing", "label": {"type": "multi-label", "labels": [
            {"label": "speed.0.5", "startIndex": 0, "endIndex": 199},
            {"label": "speed.0.5", "startIndex": 200, "endIndex": 399}]}},
    ]}))
    return kit


def test_studio_export_takes_labels_and_categories_from_info_labels(tmp_path) -> None:
    kit = _studio_export_with_info_labels(tmp_path / "export")
    ds = data.read_recordings(tmp_path / "export")
    got = {f: (ds.class_names[y], s) for f, y, s in zip(ds.meta["files"], ds.y, ds.meta["split"], strict=True)}
    assert got == {"training/idle.s1.4f2a.json": ("wave", "train"), "training/rec_07.json": ("speed.0.5", "train"),
                   "testing/wave.t1.json": ("wave", "test"), "testing/t2.json": ("speed.0.5", "test")}
    assert ds.meta["unlabeled"] == ["training/noise.s3.json"] and ds.class_names == ["speed.0.5", "wave"]
    for i, f in enumerate(ds.meta["files"]):
        np.testing.assert_allclose(ds.X[i], kit[f], rtol=1e-6, atol=1e-6)  # m/s2 -> g as before
    assert ds.channels == data.IMU_CHANNELS and ds.sample_rate_hz == pytest.approx(50.0)


def test_bad_info_labels_are_named(tmp_path) -> None:
    root = tmp_path / "export"
    _studio_export_with_info_labels(root)
    labels = root / "testing" / "info.labels"
    good = json.loads(labels.read_text())
    two = json.loads(labels.read_text())
    two["files"][1]["label"]["labels"][1]["label"] = "wave"
    for doc, message in [(two, "several labels over time"), ({"files": "x"}, "not an Edge Impulse info.labels"),
                         ({"version": 1, "files": [{"path": "gone.json", "label": {"type": "label", "label": "a"}}]},
                          "lists 'gone.json', which is not a file"),
                         ({"version": 1, "files": [{"path": "t2.json", "label": {"type": "box"}}]},
                          "expected {'type': 'label'")]:
        labels.write_text(json.dumps(doc))
        with pytest.raises(DatasetError, match=message) as e:
            data.read_recordings(root)
        assert str(labels) in str(e.value)
    labels.write_text(json.dumps(good))
    assert len(data.read_recordings(root)) == 4  # nothing was lost on the way
