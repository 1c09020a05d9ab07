"""odlkit.export.c_header: the generated odl_model_data.h compiles and the C++ backbone
computes the same features as Keras on real windows."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "engine"))
from enginebuild import HERE, gxx, library_sources, model_header, run  # noqa: E402
from lazy_imports import lazy_module  # noqa: E402

lazy_module("keras")  # skips the file without Keras, imports nothing at collection

# one worker builds this module's programs once (pytest -n with --dist loadgroup)
pytestmark = pytest.mark.xdist_group("c_header")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("engine_header")
    folder, backbone, mean, std, label, head = model_header(d / "model")
    exe = gxx([HERE / "engine_cli.cpp", *library_sources()], d / "engine_cli", includes=[folder])
    return exe, backbone, mean, std, label, folder


def test_backbone_features_match_keras(built, tmp_path):
    from odlkit.data import imu_windows

    exe, backbone, mean, std, label, _ = built
    ds = imu_windows("basic_motions")
    idx = np.random.default_rng(0).choice(len(ds.X), size=64, replace=False)
    X = ds.X[np.sort(idx)].astype(np.float32)
    (tmp_path / "w.f32").write_bytes(np.ascontiguousarray(X).tobytes())
    run([exe, "features", tmp_path / "w.f32", len(X), tmp_path / "f.f32"])
    ours = np.fromfile(tmp_path / "f.f32", dtype=np.float32).reshape(len(X), -1)
    ref = backbone.predict(((X - mean) / std).astype(np.float32), verbose=0)
    err = np.abs(ours - ref).max()
    scale = max(1.0, float(np.abs(ref).max()))
    print(f"{label} backbone, {len(X)} real basic_motions windows: max |C++ - Keras| = {err:.3g} "
          f"(feature scale {scale:.3g}), {int((ref > 0).sum())} non-zero features")
    assert ours.shape == ref.shape
    assert (ref > 0).mean() > 0.1, "features are almost all zero: the comparison would be meaningless"
    # Both sides are float32; only the summation order (and BN folding done in float64 then
    # rounded to float32) differ: ~1e-4 relative to the feature scale bounds that with margin,
    # while any wrong layout, missing bias or unfolded BN gives errors of order 1e-1.
    assert err <= 1e-4 * scale


def test_header_contents(built):
    *_, folder = built
    text = (folder / "odl_model_data.h").read_text()
    for macro, value in [("ODL_INPUT_LEN", 50), ("ODL_INPUT_CHANNELS", 6), ("ODL_FEATURE_DIM", 64),
                         ("ODL_NUM_CLASSES", 4), ("ODL_MAX_CLASSES", 8), ("ODL_ARENA_FLOATS", 2 * 46 * 16)]:
        assert f"#define {macro} {value}\n" in text
    assert "BatchNormalization" not in text and "kOdlModel" in text
    assert '"badminton"' in text


def test_export_rejects_unsupported_layers(tmp_path):
    import keras
    from keras import layers

    from odlkit.export.c_header import write_model_header

    inp = keras.Input((50, 6))
    out = layers.GlobalAveragePooling1D()(layers.Conv1D(8, 3, padding="same")(inp))
    with pytest.raises(ValueError, match="padding"):
        write_model_header(keras.Model(inp, out), None, tmp_path / "m.h", np.zeros(6), np.ones(6), ["a"], 4)
    out = layers.Dense(4, activation="tanh")(layers.GlobalAveragePooling1D()(inp))
    with pytest.raises(ValueError, match="tanh"):
        write_model_header(keras.Model(inp, out), None, tmp_path / "m.h", np.zeros(6), np.ones(6), ["a"], 4)
    out = layers.Dense(4)(layers.GlobalAveragePooling1D()(inp))
    with pytest.raises(ValueError, match="input_std"):
        write_model_header(keras.Model(inp, out), None, tmp_path / "m.h", np.zeros(6), np.zeros(6), ["a"], 4)
    with pytest.raises(ValueError, match="15"):
        write_model_header(keras.Model(inp, out), None, tmp_path / "m.h", np.zeros(6), np.ones(6), ["x" * 16], 4)


def _c_floats(text: str, name: str) -> np.ndarray:
    body = text.split(f"static const float {name}[", 1)[1].split("{", 1)[1].split("};", 1)[0]
    return np.array([float(v.strip().rstrip("f")) for v in body.replace("\n", " ").split(",") if v.strip()],
                    np.float32)


def test_keras_head_is_stored_class_major():
    from odlkit.export.c_header import model_header_text
    from odlkit.models import build_backbone, build_head

    backbone, head = build_backbone(seed=0), build_head(64, 3, seed=2)
    text = model_header_text(backbone, head, np.zeros(6), np.ones(6), ["a", "b", "c"], 4)
    kernel, bias = head.layers[-1].get_weights()
    assert np.array_equal(_c_floats(text, "kOdlHeadWeights"), kernel.T.reshape(-1).astype(np.float32))
    assert np.array_equal(_c_floats(text, "kOdlHeadBias"), bias.astype(np.float32))
    with pytest.raises(ValueError, match="do not match"):
        model_header_text(backbone, head, np.zeros(6), np.ones(6), ["a", "b"], 4)


def test_train_head_example_header_is_up_to_date():
    """examples/TrainHead/odl_model_data.h must match the committed backbone
    (regenerate with arduino_sketches/ODLEngine/extras/make_example_data.py)."""
    from odlkit.data import imu_windows
    from odlkit.export.c_header import model_header_text
    from odlkit.pretrain import load_backbone

    backbone, meta = load_backbone()
    names = list(imu_windows("basic_motions").class_names)[:3]
    want = model_header_text(backbone, None, meta["input_mean"], meta["input_std"], names, 8)
    have = (HERE.parents[1] / "arduino_sketches" / "ODLEngine" / "examples" / "TrainHead" / "odl_model_data.h").read_text()
    assert want == have, "stale: run .venv/bin/python arduino_sketches/ODLEngine/extras/make_example_data.py"
