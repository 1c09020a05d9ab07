"""The serial protocol's building blocks, in C++ (host build of the library sources) and Python.

The C++ unit tests (tests/protocol/protocol_unit.cpp) are built with AddressSanitizer and
UBSan, so out-of-bounds accesses in the parser fail the test, not only wrong results.
"""

from __future__ import annotations

import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

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
        "g++", "-std=gnu++14", "-O1", "-g", "-fno-rtti", "-fno-exceptions", "-Wall", "-Wextra", "-Werror",
        "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", f"-I{LIB}",
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
