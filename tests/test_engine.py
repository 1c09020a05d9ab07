"""The ODLEngine library core on the host: C++ unit tests (plain and sanitized) and the
trainable head against the numpy reference ``odlkit.head`` on real backbone features."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "engine"))
from enginebuild import HERE, SANITIZE_FLAGS, gxx, library_sources, model_header, run  # noqa: E402

from odlkit.weights import decode  # noqa: E402

# one worker builds this module's programs once (pytest -n with --dist loadgroup)
pytestmark = pytest.mark.xdist_group("engine")


def test_cpp_unit_tests(tmp_path):
    exe = gxx([HERE / "test_unit.cpp", *library_sources()], tmp_path / "test_unit")
    res = run([exe], check=False)
    print(res.stdout)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 failures" in res.stdout


def test_cpp_unit_tests_sanitized(tmp_path):
    exe = gxx([HERE / "test_unit.cpp", *library_sources()], tmp_path / "test_unit_asan", flags=SANITIZE_FLAGS)
    res = run([exe], check=False, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "runtime error" not in res.stderr and "AddressSanitizer" not in res.stderr


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """engine_cli built with a generated model header, and real features of basic_motions
    windows computed by the C++ backbone itself (what the board would store)."""
    pytest.importorskip("keras")
    from odlkit.data import imu_windows

    d = tmp_path_factory.mktemp("engine_head")
    folder, *_ , head = model_header(d / "model")
    exe = gxx([HERE / "engine_cli.cpp", *library_sources()], d / "engine_cli", includes=[folder])
    ds = imu_windows("basic_motions")
    idx = np.sort(np.random.default_rng(0).choice(len(ds.X), size=96, replace=False))
    X = np.ascontiguousarray(ds.X[idx], dtype=np.float32)
    (d / "w.f32").write_bytes(X.tobytes())
    run([exe, "features", d / "w.f32", len(X), d / "f.f32"])
    feats = np.fromfile(d / "f.f32", dtype=np.float32).reshape(len(X), -1)
    # The pretrained features are large on this data (up to ~1e2), so the learning rates below
    # are small: with lr=1e-3 and momentum 0.9 training oscillates and float rounding
    # differences grow chaotically over epochs (measured: 1.7e-3 after 3 epochs, while one
    # epoch agrees to 3e-8), which would test the conditioning, not the code.
    return exe, d, feats, ds.y[idx].astype(np.uint16), head


def _train_cpp(exe, d, feats, labels, epochs, batch, lr, mom, wd, mode, seed, new_classes=(), shuffle=1, replay=1):
    (d / "tf.f32").write_bytes(np.ascontiguousarray(feats, np.float32).tobytes())
    (d / "tl.u16").write_bytes(np.ascontiguousarray(labels, "<u2").tobytes())
    out = d / "out.blob"
    res = run([exe, "train", d / "tf.f32", d / "tl.u16", len(feats), epochs, batch, repr(lr), repr(mom), repr(wd),
               mode, replay, shuffle, seed, out, *new_classes])
    losses = [float(line.split()[3]) for line in res.stdout.splitlines() if line.startswith("epoch")]
    return decode(out.read_bytes()), losses


@pytest.mark.parametrize(
    "mode,epochs,batch,lr,mom,wd,seed",
    [("full", 3, 8, 1e-4, 0.9, 1e-3, 1), ("full", 2, 5, 2e-4, 0.0, 0.0, 7), ("bias", 3, 16, 1e-2, 0.9, 0.0, 3)],
)
def test_head_training_matches_numpy(engine, mode, epochs, batch, lr, mom, wd, seed):
    from odlkit.head import Head

    exe, d, feats, labels, head0 = engine
    got, losses = _train_cpp(exe, d, feats, labels, epochs, batch, lr, mom, wd, mode, seed)
    ref = Head.from_weights(head0)
    hist = ref.fit(feats, labels.astype(np.int64), epochs=epochs, lr=lr, momentum=mom, weight_decay=wd,
                   batch_size=batch, mode="bias" if mode == "bias" else "full", order="shuffle", seed=seed)
    moved = max(np.abs(ref.W - head0.W).max(), np.abs(ref.b - head0.b).max())
    err = max(np.abs(got.W - ref.W).max(), np.abs(got.b - ref.b).max())
    n_steps = epochs * -(-len(feats) // batch)
    print(f"{mode}: {n_steps} SGD steps on {len(feats)} real features, weights moved {moved:.3g}, "
          f"max |C++ - numpy| = {err:.3g}")
    assert got.class_names == head0.class_names
    assert moved > 1e-2, "training barely moved the weights: the comparison would prove nothing"
    # Same float32 arithmetic, same data order (xorshift32 shuffle); only summation order and
    # exp/log implementations differ (~1e-7 relative per step). 1e-4 absolute on weights that
    # move by > 1e-2 leaves room for that and catches any wrong order or update rule.
    assert err <= 1e-4
    if mode == "bias":
        assert np.array_equal(got.W, head0.W)
    assert np.allclose(losses, [h.loss for h in hist], rtol=1e-4, atol=1e-4)
    # the test can fail: another data order gives clearly different weights
    other = Head.from_weights(head0)
    other.fit(feats, labels.astype(np.int64), epochs=epochs, lr=lr, momentum=mom, weight_decay=wd,
              batch_size=batch, mode="bias" if mode == "bias" else "full", order="shuffle", seed=seed + 100)
    assert max(np.abs(got.W - other.W).max(), np.abs(got.b - other.b).max()) > 10 * 1e-4


def test_added_class_trains_like_numpy(engine):
    from odlkit.head import Head

    exe, d, feats, labels, head0 = engine
    # relabel 'badminton' windows as a new run-time class "serve" (index 4)
    y = labels.astype(np.int64).copy()
    y[y == 3] = 4
    got, _ = _train_cpp(exe, d, feats, y, 3, 8, 1e-4, 0.9, 0.0, "full", 5, new_classes=["serve"])
    ref = Head.from_weights(head0)
    assert ref.add_class("serve") == 4
    ref.fit(feats, y, epochs=3, lr=1e-4, momentum=0.9, batch_size=8, order="shuffle", seed=5)
    assert got.class_names == [*head0.class_names, "serve"]
    assert np.abs(got.W[:, 4]).max() > 1e-3, "the new class row did not train"
    assert max(np.abs(got.W - ref.W).max(), np.abs(got.b - ref.b).max()) <= 1e-4


def test_train_errors_are_reported(engine):
    exe, d, feats, labels, _ = engine
    y = labels.copy()
    y[0] = 6  # no such class
    (d / "tf.f32").write_bytes(np.ascontiguousarray(feats, np.float32).tobytes())
    (d / "tl.u16").write_bytes(np.ascontiguousarray(y, "<u2").tobytes())
    res = run([exe, "train", d / "tf.f32", d / "tl.u16", len(feats), 1, 8, "0.01", "0.9", "0", "full", 1, 1, 1,
               d / "x.blob"], check=False)
    assert res.returncode != 0
    assert "label out of range" in res.stderr


# ------------------------------------------------------------------ board compile check
REPO_ROOT = Path(__file__).resolve().parents[1]
COMPILE_CHECK = REPO_ROOT.parent / "shared" / "arduino-nano33ble" / "compile-check"
LIBRARY = REPO_ROOT / "arduino_sketches" / "ODLEngine"
SKETCHES = [LIBRARY / "examples" / "TrainHead"] + sorted(
    p for p in (REPO_ROOT / "arduino_sketches").iterdir() if p.is_dir() and any(p.glob("*.ino"))
)


WRAPPER = LIBRARY / "extras" / "compile_check.py"
# A sketch needs the IMU libraries exactly when it reads the IMU (odl_nano33_app.h).
NEEDS_IMU = {"lab1_motion": True, "lab3_federated": True, "TrainHead": False, "lab2_microphone": False}


def _compile_check(sketch, *args):
    import shutil

    if not COMPILE_CHECK.exists():
        pytest.skip(f"{COMPILE_CHECK} not found (the shared Nano 33 BLE core headers live beside the repository)")
    if shutil.which("arm-none-eabi-g++") is None:
        pytest.skip("arm-none-eabi-g++ not installed (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
                    "libstdc++-arm-none-eabi-newlib)")
    res = run([sys.executable, WRAPPER, sketch, *args], check=False, timeout=600)
    print(res.stdout[-500:])
    assert "compile-check: using " in res.stdout, "the check must say which Arduino core it used"
    return res


def test_every_sketch_has_an_expected_outcome():
    assert {p.name for p in SKETCHES} == set(NEEDS_IMU)


@pytest.mark.parametrize("sketch", SKETCHES, ids=lambda p: p.name)
def test_sketch_compiles_for_nano33ble(sketch):
    res = _compile_check(sketch)
    assert res.returncode == 0, f"{sketch.name} does not compile for the Nano 33 BLE:\n{res.stdout[-3000:]}\n{res.stderr[-6000:]}"
    assert "compile-check: ok" in res.stdout


@pytest.mark.parametrize("sketch", SKETCHES, ids=lambda p: p.name)
def test_sketch_without_the_imu_libraries(sketch):
    """The library installed from a ZIP alone: a sketch that does not read the IMU builds, one that
    does fails at compile time naming the missing library."""
    res = _compile_check(sketch, "--without-imu")
    if NEEDS_IMU[sketch.name]:
        assert res.returncode != 0
        assert re.search(r"Arduino_(LSM9DS1|BMI270_BMM150)", res.stderr), res.stderr[-3000:]
    else:
        assert res.returncode == 0, res.stderr[-6000:]
        assert "compile-check: ok" in res.stdout


def test_imu_glue_without_the_libraries_says_what_is_missing(tmp_path):
    """A sketch that includes the Nano 33 app but not the IMU headers, without the libraries: the
    library's own #error tells the user which libraries to install."""
    sketch = tmp_path / "uses_imu"
    sketch.mkdir()
    (sketch / "uses_imu.ino").write_text("#include <odl_nano33_app.h>\nvoid setup() {}\nvoid loop() {}\n")
    res = _compile_check(sketch, "--without-imu")
    assert res.returncode != 0
    assert "needs the Arduino_LSM9DS1 (Rev1) and Arduino_BMI270_BMM150 (Rev2) libraries" in res.stderr


def test_board_flags_are_the_variants_own():
    """cxxflags.BOARD (what the qemu tests and benchmarks build with) is the Arduino mbed core's
    ARDUINO_NANO33BLE cxxflags.txt: every flag there is either in BOARD or listed as not
    affecting code generation, and BOARD adds nothing the board does not use (only -Wall -Wextra
    are shared with the project's warning set)."""
    from odlkit.board import cxxflags

    variant = COMPILE_CHECK.parent / "variants" / "ARDUINO_NANO33BLE" / "cxxflags.txt"
    if not variant.exists():
        pytest.skip(f"{variant} not found")
    real = [f for f in variant.read_text().split() if not f.startswith("-D")]
    assert set(real) == set(cxxflags.BOARD) | set(cxxflags.BOARD_NOT_CODEGEN)
    assert not any(f.startswith("-ffp-contract") for f in real), "the board leaves GCC's default contraction on"


def test_flash_iap_storage_against_an_nrf52840_model(tmp_path):
    """FlashIAPStorage (the board's weight storage) on a model of mbed::FlashIAP on the nRF52840:
    slot placement refused where it overlaps the firmware or is misaligned, and a power cut at
    every program and erase step of three saves leaves the old or the new record loadable."""
    from enginebuild import LIB_SRC

    sources = [HERE / "flash_iap_test.cpp", LIB_SRC / "nano33ble" / "odl_flash_iap.cpp", *library_sources()]
    exe = gxx(sources, tmp_path / "flash_iap_test", includes=[HERE / "fake_mbed"], flags=["-DODL_FLASHIAP_MODEL"])
    res = run([exe], check=False, timeout=300)
    print(res.stdout[-800:])
    assert res.returncode == 0 and "0 failures" in res.stdout, res.stdout[-3000:]
    cuts, old, new, other = (int(v) for v in re.search(
        r"(\d+) power cuts, old record loaded (\d+), new (\d+), anything else (\d+)", res.stdout).groups())  # fmt: skip
    assert cuts > 3 * 2 * 2208 // 4 and other == 0 and old > 0 and new > 0


EXAMPLE = LIBRARY / "examples" / "TrainHead"


def test_trainhead_example_windows_are_current(tmp_path):
    """The committed example_windows.h is what extras/make_example_data.py writes from the
    pipeline today (accelerations in g, angular rates in deg/s), not an older export."""
    res = run([sys.executable, LIBRARY / "extras" / "make_example_data.py", "--out", tmp_path, "--windows-only"])
    assert "example_windows.h" in res.stdout
    assert (tmp_path / "example_windows.h").read_text() == (EXAMPLE / "example_windows.h").read_text(), (
        "examples/TrainHead/example_windows.h is stale: run arduino_sketches/ODLEngine/extras/make_example_data.py")
    # units, independently of odlkit.data: converted back (x 9.80665 m/s^2 per g, x pi/180 rad/s
    # per deg/s), the windows have the RMS of the UEA archive's own recordings as aeon ships them
    # (m/s^2, rad/s); in the wrong units the ratio is ~9.8 (accel) or ~57 (gyro)
    aeon = pytest.importorskip("aeon.datasets")
    raw = np.concatenate([aeon.load_classification("BasicMotions", split=p)[0] for p in ("train", "test")])
    rows = re.findall(r"\{([^{}]*)\},", (EXAMPLE / "example_windows.h").read_text())
    X = np.array([[float(v.strip().rstrip("f")) for v in r.split(",")] for r in rows]).reshape(len(rows), 50, 6)
    rms = lambda a: float(np.sqrt(np.mean(np.square(a))))  # noqa: E731
    accel_ratio = rms(X[..., :3] * 9.80665) / rms(raw[:, :3])
    gyro_ratio = rms(X[..., 3:] * np.pi / 180) / rms(raw[:, 3:])
    print(f"RMS example / archive: accel {accel_ratio:.2f}, gyro {gyro_ratio:.2f}")
    assert 0.5 < accel_ratio < 2 and 0.5 < gyro_ratio < 2


def test_trainhead_example_learns_with_its_own_configuration(tmp_path):
    """TrainHead.ino's training configuration, run on the host with the example's own headers,
    fits its 16 windows (with the old m/s^2 + rad/s windows and lr=1e-4 it reached 0.56)."""
    ino = (EXAMPLE / "TrainHead.ino").read_text()
    cfg = {k: re.search(rf"cfg\.{k} = ([0-9.e+-]+)f?;", ino).group(1) for k in ("epochs", "batch_size", "lr", "momentum")}
    exe = gxx([HERE / "trainhead_host.cpp", *library_sources()], tmp_path / "trainhead", includes=[EXAMPLE])
    res = run([exe, cfg["epochs"], cfg["batch_size"], cfg["lr"], cfg["momentum"]])
    print(cfg, res.stdout.splitlines()[-3:])
    losses = [float(line.split()[3]) for line in res.stdout.splitlines() if line.startswith("epoch")]
    accuracy = float(res.stdout.split("accuracy ")[-1])
    assert accuracy >= 0.9 and losses[-1] < 0.5 * losses[0]


def test_compile_check_uses_an_installed_ide_core(tmp_path):
    """Outside this repository: a core installed by the Arduino IDE (~/.arduino15 layout, with
    its own arm-none-eabi-g++) is found and used, and the check says so."""
    import os
    import shutil

    if not COMPILE_CHECK.exists() or shutil.which("arm-none-eabi-g++") is None:
        pytest.skip("needs the shared core copy and arm-none-eabi-g++")
    data = tmp_path / "home" / ".arduino15" / "packages" / "arduino"
    core = data / "hardware" / "mbed_nano" / "4.1.5"
    core.parent.mkdir(parents=True)
    core.symlink_to(COMPILE_CHECK.parent, target_is_directory=True)
    gcc_bin = data / "tools" / "arm-none-eabi-gcc" / "7-2017q4" / "bin"
    gcc_bin.mkdir(parents=True)
    for tool in ("arm-none-eabi-g++", "arm-none-eabi-size"):
        (gcc_bin / tool).symlink_to(shutil.which(tool))
    env = {**os.environ, "HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, WRAPPER, EXAMPLE, "--without-imu"], capture_output=True, text=True,
                         env=env, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    assert f"using the installed Arduino Mbed OS Nano Boards core {core}" in res.stdout
    assert "compile-check: ok" in res.stdout


def test_compile_check_runs_arduino_cli_when_present(tmp_path):
    """With arduino-cli on the PATH and the core installed, the check is a real
    `arduino-cli compile --fqbn arduino:mbed_nano:nano33ble` (here a stand-in records the call)."""
    import os

    log = tmp_path / "calls.txt"
    cli = tmp_path / "bin" / "arduino-cli"
    cli.parent.mkdir()
    cli.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\nif [ \"$1\" = core ]; then echo 'arduino:mbed_nano 4.1.5'; fi\n"
                   "exit 0\n")  # fmt: skip
    cli.chmod(0o755)
    env = {**os.environ, "PATH": f"{cli.parent}:{os.environ['PATH']}"}
    res = subprocess.run([sys.executable, WRAPPER, EXAMPLE], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0 and "using arduino-cli compile --fqbn arduino:mbed_nano:nano33ble" in res.stdout
    calls = log.read_text().splitlines()
    assert calls[0] == "core list"
    assert calls[1].startswith("compile --fqbn arduino:mbed_nano:nano33ble --library ")
    assert calls[1].endswith(str(EXAMPLE)) and str(LIBRARY) in calls[1]
