"""The optimized int8 forward kernels (odl_int8.cpp: CMSIS-NN style, the Cortex-M4's SMLAD /
SXTB16 / SXTAB16 through ACLE, the same lane arithmetic in C on the host) against the reference
kernels they sit beside (TensorFlow Lite Micro's plain loops, ``qlayer_forward(..., reference=True)``),
bit for bit: on random layers (shapes, zero points, multipliers, shifts, biases, clamps),
requantization edge cases (rounding ties, every shift), and every layer of the real int8 backbone
on real windows; on the host and under qemu with the board's flags (the DSP path), whose outputs
must hash alike (the real backbone in the slow test: it needs the TFLite conversion). Bit-exactness with TFLite itself is tests/test_int8_training.py's (it runs
qrun_backbone, which uses the optimized kernels)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "engine"))
from enginebuild import HERE, LIB_SRC, arm_build, c_array, gxx, missing_arm_tools, model_header, qemu_run, run  # noqa: E402

pytestmark = pytest.mark.xdist_group("engine")
N_WINDOWS = 12
SOURCES = [HERE / "int8_kernels_cli.cpp", LIB_SRC / "odl_int8.cpp", LIB_SRC / "odl_head.cpp",
           LIB_SRC / "odl_kernels.cpp"]  # fmt: skip


def write_headers(folder: Path, n_windows: int = N_WINDOWS) -> Path:
    """odl_int8_model_data.h (the int8 backbone from its .tflite), odl_model_data.h (the float
    backbone) and int8_windows.h (real basic_motions windows: raw float and the engine's int8)."""
    from odlkit.data import imu_windows
    from odlkit.export.int8 import int8_backbone, write_int8_header
    from odlkit.export.tflite import to_tflite
    from odlkit.pretrain import load_backbone

    folder.mkdir(parents=True, exist_ok=True)
    backbone, meta = load_backbone()
    mean, std = np.asarray(meta["input_mean"]), np.asarray(meta["input_std"])
    ds = imu_windows("basic_motions")
    X = ((ds.X - mean) / std).astype(np.float32)
    qm = int8_backbone(backbone, to_tflite(backbone, X[::3], int8=True))
    write_int8_header(qm, folder / "odl_int8_model_data.h")
    header_dir, *_ = model_header(folder / "float")
    (folder / "odl_model_data.h").write_text((header_dir / "odl_model_data.h").read_text())
    idx = np.random.default_rng(5).choice(len(X), n_windows, replace=False)
    raw = np.asarray(ds.X[idx], np.float32).reshape(n_windows, -1)
    q = qm.quantize_input(X[idx]).reshape(n_windows, -1)
    (folder / "int8_windows.h").write_text("\n".join([
        "#pragma once", "#include <stdint.h>", f"static const uint32_t kInt8WindowCount = {n_windows};",
        f"static const int8_t kInt8Windows[{n_windows}][{q.shape[1]}] = {c_array('q', q, 'int')};",
        f"static const float kFloatWindows[{n_windows}][{raw.shape[1]}] = {c_array('x', raw)};", ""]))
    return folder


def parse(out: str) -> dict:
    res = {}
    for key in ("random layers", "requantize cases", "real windows"):
        m = re.search(rf"^{key} (\d+)(?: outputs (\d+))? mismatches (\d+)$", out, re.M)
        assert m or key == "real windows", f"no '{key}' line in:\n{out[-2000:]}"
        if m:
            res[key] = (int(m.group(1)), int(m.group(2) or 0), int(m.group(3)))
    res["hash"] = re.search(r"^hash (\d+)$", out, re.M).group(1)
    return res


def _check_random(r):
    assert r["random layers"][0] == 600 and r["random layers"][1] > 10_000
    assert r["requantize cases"][0] > 20_000
    assert r["random layers"][2] == 0, "optimized != reference on random layers"
    assert r["requantize cases"][2] == 0, "requantize != multiply_by_quantized_multiplier"


@pytest.fixture(scope="module")
def host_random(tmp_path_factory):
    d = tmp_path_factory.mktemp("int8k")
    out = run([gxx(SOURCES, d / "int8_kernels_host", includes=[HERE])]).stdout
    return d, out


def test_optimized_int8_kernels_equal_the_reference_on_the_host(host_random):
    """Random layers and requantization cases (no model needed: no TensorFlow, ~5 s)."""
    r = parse(host_random[1])
    print(r)
    _check_random(r)
    assert "real windows" not in r


ARM = pytest.mark.skipif(bool(missing_arm_tools()), reason="arm-none-eabi / qemu-system-arm not installed")


@pytest.mark.arm
@ARM
def test_dsp_path_under_qemu_equals_the_reference_and_the_host(host_random):
    """The board build (-Os, softfp, __ARM_FEATURE_DSP: SMLAD/SXTB16/SXTAB16) under qemu: no
    mismatch with the reference kernels, and the same output hash as the host's portable C."""
    d, host = host_random
    q = qemu_run(arm_build(SOURCES, d / "int8_kernels.elf", build="board"), timeout=600)
    assert q.returncode == 0 and "done" in q.stdout and "ERROR" not in q.stdout, q.stdout[-2000:] + q.stderr[-2000:]
    rq = parse(q.stdout)
    print(rq)
    _check_random(rq)
    assert rq["hash"] == parse(host)["hash"]


@pytest.mark.slow  # ~80 s: the TFLite int8 conversion and a qemu run of the real backbone
@pytest.mark.arm
@ARM
def test_real_backbone_layers_bit_exact_on_host_and_qemu(tmp_path):
    """Every layer of the real int8 backbone on real windows: optimized == reference on both
    builds, same hash. (The host path against TFLite itself: tests/test_int8_training.py.)"""
    pytest.importorskip("tensorflow")
    d = write_headers(tmp_path / "h")
    host = parse(run([gxx(SOURCES, d / "host", includes=[d, HERE])]).stdout)
    q = qemu_run(arm_build(SOURCES, d / "k.elf", includes=[d], build="board"), timeout=600)
    assert q.returncode == 0 and "done" in q.stdout and "ERROR" not in q.stdout, q.stdout[-2000:] + q.stderr[-2000:]
    rq = parse(q.stdout)
    print(rq, "\n", "\n".join(line for line in q.stdout.splitlines() if line.startswith(("per_window", "layer"))))
    for r in (host, rq):
        _check_random(r)
        assert r["real windows"][0] == N_WINDOWS and r["real windows"][1] > 1000
        assert r["real windows"][2] == 0, "optimized != reference on the real backbone"
    assert rq["hash"] == host["hash"]
