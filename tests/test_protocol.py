"""The serial protocol's building blocks, in C++ (host build of the library sources) and Python.

The C++ unit tests (tests/protocol/protocol_unit.cpp) are built with AddressSanitizer and
UBSan, so out-of-bounds accesses in the parser fail the test, not only wrong results.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from odlkit.board import cxxflags
from odlkit.board.protocol import (
    MAX_LINE,
    FrameError,
    encode_frame,
    parse_frame,
    valid_class_name,
)

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "arduino_sketches" / "ODLEngine" / "src"

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")


@pytest.fixture(scope="module")
def unit_exe(tmp_path_factory) -> Path:
    exe = tmp_path_factory.mktemp("proto") / "protocol_unit"
    cmd = [
        "g++", *cxxflags.HOST_TEST, "-O1", *cxxflags.SANITIZE, f"-I{LIB}",
        str(ROOT / "tests" / "protocol" / "protocol_unit.cpp"), *map(str, sorted(LIB.glob("*.cpp"))), "-o", str(exe),
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    return exe


def test_cpp_unit_tests_pass(unit_exe):
    res = subprocess.run([str(unit_exe)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "failures=0" in res.stdout
    n = int(res.stdout.split("checks=")[1].split()[0])
    assert n >= 60  # the suite really ran


@pytest.mark.parametrize(
    "seq,word,tokens",
    [(1, "HELLO", []), (42, "TRAIN", ["epochs=3", "lr=0.05"]), (999999999, "SETW", ["total=20", "data=QUJD+/=="])],
)
def test_python_and_cpp_build_identical_frames(unit_exe, seq, word, tokens):
    res = subprocess.run([str(unit_exe), "frame", str(seq), word, *tokens], capture_output=True, timeout=30)
    assert res.returncode == 0
    assert res.stdout == encode_frame(seq, word, *tokens)


def test_cpp_float_format_matches_python_to_six_digits(unit_exe):
    values = [0.0, 1.0, -1.5, 3.14159265, 1e-7, 2.5e-5, 1e-4, 123456.7, 9999995.0, -0.000123456, 1e30, 65504.0]
    res = subprocess.run([str(unit_exe), "fmt", *map(repr, values)], capture_output=True, text=True, timeout=30)
    got = res.stdout.split()
    assert len(got) == len(values)
    for v, s in zip(values, got, strict=True):
        # 6 significant digits, like %.6g: the relative error is at most 5e-6 (+ float32 rounding of v)
        assert float(s) == pytest.approx(v, rel=6e-6, abs=0), (v, s)
        assert s == f"{float(np.float32(v)):.6g}"  # the same text as C's %.6g of the float32 value


def test_python_frame_round_trip():
    line = encode_frame(7, "OK", "TRAIN", "epochs=3", "loss=0.25", "acc=1")
    assert line.startswith(b"$7 OK TRAIN ") and line.endswith(b"\n")
    body = line[1 : line.rindex(b" *")]
    assert line.rstrip(b"\n")[-8:] == f"{zlib.crc32(body):08x}".encode()
    f = parse_frame(line)
    assert (f.seq, f.kind, f.cmd) == (7, "OK", "TRAIN")
    assert f.int("epochs") == 3 and f.float("loss") == 0.25
    err = parse_frame(encode_frame(3, "ERR", "8", "no", "samples"))
    assert (err.kind, err.code, err.message) == ("ERR", 8, "no samples")


def test_python_parser_detects_every_single_byte_corruption():
    line = encode_frame(12, "OK", "INFO", "names=standing,walking", "free=-1")
    content = line.rstrip(b"\n")
    n = 0
    for i in range(len(content)):
        for bit in range(8):
            bad = bytearray(content)
            bad[i] ^= 1 << bit
            with pytest.raises(FrameError):
                parse_frame(bytes(bad) + b"\n")
            n += 1
    assert n == 8 * len(content)
    # dropping any one byte is detected too
    for i in range(len(content)):
        with pytest.raises(FrameError):
            parse_frame(content[:i] + content[i + 1 :] + b"\n")


def test_encode_rejects_what_the_board_would_reject():
    with pytest.raises(ValueError, match="token"):
        encode_frame(1, "ADDCLASS", "two words")
    with pytest.raises(ValueError, match="token"):
        encode_frame(1, "ADDCLASS", "a$b")
    with pytest.raises(ValueError, match="line limit"):
        encode_frame(1, "SETW", "data=" + "A" * MAX_LINE)
    with pytest.raises(ValueError, match="seq"):
        encode_frame(-1, "HELLO")
    assert valid_class_name("wave_2") and not valid_class_name("12") and not valid_class_name("x" * 16)


# --------------------------------------------------------------------------------------------
# The same session on the Cortex-M4F (qemu) and on the host
# --------------------------------------------------------------------------------------------
QEMU_SUPPORT = ROOT / "tests" / "engine" / "qemu"  # ENGINE-CORE's startup.c + link.ld for mps2-an386
ARM_TOOLS = ("arm-none-eabi-g++", "arm-none-eabi-gcc", "qemu-system-arm")


def _session_input() -> tuple[bytes, list]:
    """Request bytes of a whole lab session with damaged frames mixed in."""
    from odlkit import weights

    seq = iter(range(1, 10_000))
    frames = [encode_frame(next(seq), "HELLO"), encode_frame(next(seq), "ADDCLASS", "badminton")]
    for c in ["standing", "walking", "running", "badminton"]:
        frames.append(encode_frame(next(seq), "RECORD", c, "n=3"))
    good = encode_frame(next(seq), "INFO")
    frames += [good[:-4] + b"0\n" if not good.endswith(b"0\n") else good[:-4] + b"1\n",  # bad CRC
               b"junk line\n", b"$" + b"A" * 2000 + b"\n", good[:-1]]  # overlong, lost newline  # fmt: skip
    frames += [encode_frame(next(seq), "TRAIN", "epochs=5", "lr=0.001", "batch=4"), encode_frame(next(seq), "EVAL")]
    frames += [encode_frame(next(seq), "PREDICT", c) for c in ["walking", "running"]]
    frames += [encode_frame(next(seq), "GETW", f"off={off}") for off in (0, 512, 1024)]
    frames += [encode_frame(next(seq), "GETF", f"i={i}") for i in (0, 11)]
    frames += [encode_frame(next(seq), "SAVE"), encode_frame(next(seq), "RESET"), encode_frame(next(seq), "LOAD")]
    rng = np.random.default_rng(0)
    head = weights.HeadWeights(rng.normal(size=(64, 4)).astype(np.float32), np.zeros(4, np.float32),
                               ["a", "b", "c", "d"])  # fmt: skip
    blob = weights.encode(head)
    for off in range(0, len(blob), 512):
        data = base64.b64encode(blob[off : off + 512]).decode()
        frames.append(encode_frame(next(seq), "SETW", f"total={len(blob)}", f"off={off}", f"data={data}"))
    frames += [encode_frame(next(seq), "GETW", f"off={off}") for off in (0, 512, 1024)]
    frames += [encode_frame(next(seq), "STREAM", "s=1"), encode_frame(next(seq), "INFO")]
    return b"".join(frames), head


def _session_header(path: Path, data: bytes) -> None:
    from odlkit import data as odl_data

    ds = odl_data.imu_windows("basic_motions")
    picks = [i for c in range(4) for i in np.flatnonzero(ds.y == c)[:3]]
    lines = ["#pragma once", f"static const int kNumWindows = {len(picks)};",
             f"static const float kWindows[{len(picks)}][300] = {{"]  # fmt: skip
    for i in picks:
        lines.append("{" + ",".join(f"{v:.9e}f" for v in ds.X[i].reshape(-1)) + "},")
    lines.append("};")
    lines.append("static const char* const kWindowLabels[] = {" + ",".join(f'"{ds.class_names[ds.y[i]]}"' for i in picks) + "};")
    lines.append(f"static const unsigned kInputLen = {len(data)};")
    lines.append("static const unsigned char kInput[] = {" + ",".join(str(b) for b in data) + "};")
    path.write_text("\n".join(lines) + "\n")


def _split(out: bytes) -> list:
    rows = []
    for line in out.splitlines(keepends=True):
        rows.append(parse_frame(line) if line.startswith(b"$") else line.decode().strip())
    return rows


@pytest.mark.arm
@pytest.mark.skipif(any(shutil.which(t) is None for t in ARM_TOOLS) or not (QEMU_SUPPORT / "link.ld").exists(),
                    reason="needs arm-none-eabi-g++, qemu-system-arm and tests/engine/qemu")  # fmt: skip
def test_same_session_on_cortex_m4_and_host(tmp_path):
    """Byte-level protocol behaviour identical on the target CPU; numbers equal to float rounding.

    The ARM build uses the board's own flags (cxxflags.BOARD: -Os, softfp ABI, GCC's default FP
    contraction, which the library's pragmas turn off in its own code). Floats are compared
    with rtol 1e-4 (tests/test_qemu.py checks bit identity of the training core), everything
    else (replies, codes, counts, labels, seqs) must be equal.
    """
    from odlkit import weights

    data, head = _session_input()
    _session_header(tmp_path / "session_data.h", data)
    sketch = ROOT / "arduino_sketches" / "lab1_motion"
    srcs = [str(ROOT / "tests" / "protocol" / "qemu_session.cpp"), *map(str, sorted(LIB.glob("*.cpp")))]
    inc = [f"-I{LIB}", f"-I{sketch}", f"-I{tmp_path}"]
    common = ["-Werror"]
    host = tmp_path / "session_host"
    res = subprocess.run(["g++", *cxxflags.HOST_TEST, *inc, *srcs, "-o", str(host)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    arm_flags = cxxflags.BOARD
    startup = tmp_path / "startup.o"
    res = subprocess.run(["arm-none-eabi-gcc", "-c", "-Os", *cxxflags.CORTEX_M4F_SOFTFP, str(QEMU_SUPPORT / "startup.c"), "-o", str(startup)],
                         capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stderr
    elf = tmp_path / "session.elf"
    res = subprocess.run(["arm-none-eabi-g++", *common, *arm_flags, "--specs=rdimon.specs", *inc, *srcs, str(startup),
                          f"-T{QEMU_SUPPORT / 'link.ld'}", "-Wl,--gc-sections", "-o", str(elf)],
                         capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    out_host = subprocess.run([str(host)], capture_output=True, timeout=120)
    out_arm = subprocess.run(["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-semihosting", "-kernel", str(elf)],
                             capture_output=True, timeout=600)  # fmt: skip
    assert out_host.returncode == 0 and out_arm.returncode == 0, out_arm.stderr[-2000:]
    rows_h, rows_a = _split(out_host.stdout), _split(out_arm.stdout.replace(b"\r\n", b"\n"))
    assert len(rows_h) == len(rows_a) > 40
    errors = 0
    for h, a in zip(rows_h, rows_a, strict=True):
        if isinstance(h, str):  # STREAM sample line
            np.testing.assert_allclose([float(v) for v in a.split(",")], [float(v) for v in h.split(",")], rtol=1e-5)
            continue
        assert (a.seq, a.kind, a.cmd, a.code, a.args) == (h.seq, h.kind, h.cmd, h.code, h.args), (h.raw, a.raw)
        errors += h.kind == "ERR"
        assert a.fields.keys() == h.fields.keys()
        for k, hv in h.fields.items():
            av = a.fields[k]
            if k == "data" and h.cmd == "GETF":
                fh, fa = (np.frombuffer(base64.b64decode(v), "<f4") for v in (hv, av))
                np.testing.assert_allclose(fa, fh, rtol=1e-4, atol=1e-5)
            elif k in ("data", "tx", "engine_ram"):
                # GETW chunks are compared as decoded blobs below; tx counts printed bytes;
                # sizeof(Engine) holds pointers (4 bytes on the target, 8 on the host)
                continue
            elif re.fullmatch(r"-?\d+", hv) or not re.fullmatch(r"[-+0-9.e,]+", hv):
                assert av == hv, (k, h.raw, a.raw)
            else:
                np.testing.assert_allclose([float(v) for v in av.split(",")], [float(v) for v in hv.split(",")],
                                           rtol=1e-4, atol=1e-6, err_msg=f"{k}: {h.raw!r}")  # fmt: skip
    assert errors == 4  # bad CRC, junk, overlong, truncated: nothing else failed

    def blobs(rows):
        chunks = [r for r in rows if not isinstance(r, str) and r.kind == "OK" and r.cmd == "GETW"]
        assert len(chunks) == 6
        return [weights.decode(b"".join(base64.b64decode(c.fields["data"]) for c in part))
                for part in (chunks[:3], chunks[3:])]  # fmt: skip

    (trained_h, set_h), (trained_a, set_a) = blobs(rows_h), blobs(rows_a)
    np.testing.assert_allclose(trained_a.W, trained_h.W, rtol=1e-4, atol=1e-5)
    assert set_h == head and set_a == head  # SETW is bit-exact on both
