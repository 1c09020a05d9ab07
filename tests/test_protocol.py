"""The serial protocol's building blocks, in C++ (host build of the library sources) and Python.

The C++ unit tests (tests/protocol/protocol_unit.cpp) are built with AddressSanitizer and
UBSan, so out-of-bounds accesses in the parser fail the test, not only wrong results.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from odlkit.board import cxxflags
from odlkit.board.protocol import (
    MAX_LINE,
    PROTOCOL_VERSION,
    ErrorCode,
    FrameError,
    encode_frame,
    parse_frame,
    valid_class_name,
)

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "arduino_sketches" / "ODLEngine" / "src"
sys.path.insert(0, str(ROOT / "tests" / "engine"))
from buildcache import compile_cached  # noqa: E402  (each build compiled once per content)

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")


@pytest.fixture(scope="module")
def unit_exe(tmp_path_factory) -> Path:
    exe = tmp_path_factory.mktemp("proto") / "protocol_unit"
    cmd = [
        "g++", *cxxflags.HOST_TEST, "-O1", *cxxflags.SANITIZE, f"-I{LIB}",
        str(ROOT / "tests" / "protocol" / "protocol_unit.cpp"), *map(str, sorted(LIB.glob("*.cpp"))), "-o", str(exe),
    ]  # fmt: skip
    res = compile_cached(cmd)
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
    res = compile_cached(["g++", *cxxflags.HOST_TEST, *inc, *srcs, "-o", str(host)])
    assert res.returncode == 0, res.stderr[-3000:]
    arm_flags = cxxflags.BOARD
    startup = tmp_path / "startup.o"
    res = compile_cached(["arm-none-eabi-gcc", "-c", "-Os", *cxxflags.CORTEX_M4F_SOFTFP, str(QEMU_SUPPORT / "startup.c"), "-o", str(startup)])  # fmt: skip
    assert res.returncode == 0, res.stderr
    elf = tmp_path / "session.elf"
    res = compile_cached(["arm-none-eabi-g++", *common, *arm_flags, "--specs=rdimon.specs", *inc, *srcs, str(startup),
                          f"-T{QEMU_SUPPORT / 'link.ld'}", "-Wl,--gc-sections", "-o", str(elf)])  # fmt: skip
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


# --------------------------------------------------------------------------------------------
# Protocol behaviour with a scripted host (tests/protocol/session_host.cpp)
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def session_exe(tmp_path_factory) -> Path:
    exe = tmp_path_factory.mktemp("session") / "session_host"
    sketch = ROOT / "arduino_sketches" / "lab1_motion"
    cmd = ["g++", *cxxflags.HOST_TEST, "-O1", *cxxflags.SANITIZE, f"-I{LIB}", f"-I{sketch}",
           str(ROOT / "tests" / "protocol" / "session_host.cpp"), *map(str, sorted(LIB.glob("*.cpp"))), "-o", str(exe)]  # fmt: skip
    res = compile_cached(cmd)
    assert res.returncode == 0, res.stderr[-3000:]
    return exe


def _session(exe: Path, *requests) -> list:
    """Run a script; requests are token lists, or ("~", tokens) for one sent without waiting."""
    lines = []
    for i, r in enumerate(requests, start=1):
        early = r[0] == "~"
        tokens = r[1] if early else r
        lines.append((b"~" if early else b"") + encode_frame(i, *tokens))
    res = subprocess.run([str(exe)], input=b"".join(lines), capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr.decode()[-3000:]
    out = []
    for line in res.stdout.splitlines(keepends=True):
        assert len(line) <= MAX_LINE, f"a {len(line)}-byte line: {line[:80]!r}"
        out.append(parse_frame(line))
    return out


def _final(frames, seq):
    return next(f for f in frames if f.seq == seq and f.kind in ("OK", "ERR"))


def test_eval_confusion_matrix_of_many_classes_fits_the_line(session_exe):
    """24 classes: the 576-entry confusion matrix comes as one EV EVAL row per class, each line
    within the 1024-byte limit; the rows add up to the evaluated samples."""
    classes = [f"g{k}" for k in range(21)]  # + the model's 3 = 24 = MaxClasses of the harness
    reqs = [["ADDCLASS", c] for c in classes]
    reqs += [["RECORD", c, "n=2"] for c in ["standing", "walking", "running", *classes]]
    reqs += [["TRAIN", "epochs=2", "lr=0.001"], ["EVAL"]]
    frames = _session(session_exe, *reqs)
    eval_seq = len(reqs)
    final = _final(frames, eval_seq)
    assert final.kind == "OK", final.raw
    k = final.int("classes")
    assert k == 24
    rows = {f.int("row"): [int(v) for v in f.fields["cm"].split(",")] for f in frames
            if f.seq == eval_seq and f.kind == "EV" and f.cmd == "EVAL"}  # fmt: skip
    assert sorted(rows) == list(range(k)) and all(len(r) == k for r in rows.values())
    cm = np.array([rows[i] for i in range(k)])
    assert cm.sum() == final.int("n") == 2 * k
    assert np.trace(cm) == final.int("correct")
    assert all(cm[i].sum() == 2 for i in range(k))  # two windows recorded per class


def test_record_is_aborted_by_the_next_request(session_exe):
    """A request that arrives while RECORD n=1000 runs stops it after the current window; the
    request is then answered as usual (the board is not deaf for 1000 x 2 s)."""
    frames = _session(session_exe, ["RECORD", "walking", "n=1000"], ("~", ["HELLO"]), ["INFO"])
    rec = _final(frames, 1)
    assert rec.kind == "OK" and rec.fields["aborted"] == "1"
    assert 1 <= rec.int("n") < 1000 and rec.int("stored") == rec.int("n")
    assert _final(frames, 2).kind == "OK" and _final(frames, 2).cmd == "HELLO"
    assert _final(frames, 3).int("stored") == rec.int("n")
    # without an interruption all windows are recorded
    whole = _final(_session(session_exe, ["RECORD", "walking", "n=5"], ["INFO"]), 1)
    assert whole.int("n") == 5 and whole.fields["aborted"] == "0"


def test_failed_record_leaves_no_class(session_exe):
    frames = _session(session_exe, ["RECORD", "failwave", "n=3", "add=1"], ["INFO"],
                      ["RECORD", "wave", "n=2", "add=1"], ["INFO"], ["RECORD", "nosuch"])  # fmt: skip
    failed = _final(frames, 1)
    assert failed.kind == "ERR" and failed.code == ErrorCode.SENSOR
    assert _final(frames, 2).fields["names"] == "standing,walking,running"
    ok = _final(frames, 3)
    assert ok.kind == "OK" and ok.int("class") == 3 and ok.int("n") == 2
    assert _final(frames, 4).fields["names"] == "standing,walking,running,wave"
    unknown = _final(frames, 5)  # without add=1 an unknown class is still an error
    assert unknown.kind == "ERR" and unknown.code == ErrorCode.STATE and "add=1" in unknown.message


def test_train_seed_is_accepted_and_restarts_the_shuffle(session_exe):
    record = [["RECORD", c, "n=4"] for c in ("standing", "walking", "running")]
    getw = [["GETW", "off=0"], ["GETW", "off=512"]]
    train = ["TRAIN", "epochs=3", "lr=0.001", "batch=4", "seed=7"]

    def blob(frames, first_seq):
        return b"".join(base64.b64decode(_final(frames, first_seq + i).fields["data"]) for i in range(2))

    initial = blob(_session(session_exe, *getw), 1)
    a = _session(session_exe, *record, train, *getw)
    assert _final(a, 4).kind == "OK", _final(a, 4).raw
    # b: another training first (moves the weights and the shuffle generator), then the initial
    # weights back: with the same seed the same weights come out
    setw = [["SETW", f"total={len(initial)}", f"off={off}", "data=" + base64.b64encode(initial[off : off + 512]).decode()]
            for off in range(0, len(initial), 512)]  # fmt: skip
    b = _session(session_exe, *record, ["TRAIN", "epochs=2", "lr=0.001"], *setw, train, *getw)
    assert blob(a, 5) == blob(b, 5 + len(setw) + 1) != initial
    c = _session(session_exe, *record, ["TRAIN", "epochs=3", "lr=0.001", "batch=4", "seed=8"], *getw)
    assert blob(c, 5) != blob(a, 5)
    bad = _final(_session(session_exe, *record, ["TRAIN", "seed=-1"]), 4)
    assert bad.kind == "ERR" and bad.code == ErrorCode.BAD_ARG and "seed" in bad.message


def test_boot_banner_is_sent_when_a_host_opens_the_port(session_exe):
    res = subprocess.run([str(session_exe), "banner"], capture_output=True, timeout=30, check=True)
    lines = res.stdout.decode().splitlines()
    banners = [i for i, line in enumerate(lines) if line.startswith("$0 EV BOOT")]
    # dtr sequence 0 0 1 1 1 0 0 1: a banner right after each rising edge, and only then
    assert [lines[i - 1] for i in banners] == ["dtr=1", "dtr=1"]
    assert banners == [lines.index("dtr=1") + 1, len(lines) - 1]
    f = parse_frame(lines[banners[0]].encode())
    assert f.int("proto") == PROTOCOL_VERSION and f.fields["fw"] == "session" and f.fields["board"] == "session"


def test_non_finite_weights_are_refused_over_the_protocol(session_exe):
    from odlkit import weights

    head = weights.HeadWeights(np.zeros((64, 3), np.float32), np.zeros(3, np.float32), ["a", "b", "c"])
    head.W[5, 1] = np.nan
    blob = weights.encode(head)
    reqs = [["SETW", f"total={len(blob)}", f"off={off}", "data=" + base64.b64encode(blob[off : off + 512]).decode()]
            for off in range(0, len(blob), 512)]  # fmt: skip
    frames = _session(session_exe, *reqs, ["INFO"])
    last = _final(frames, len(reqs))
    assert last.kind == "ERR" and last.code == ErrorCode.WEIGHTS and "non-finite" in last.message
    assert _final(frames, len(reqs) + 1).fields["names"] == "standing,walking,running"  # unchanged


def test_python_and_cpp_share_the_protocol_constants():
    """board/protocol.py and odl_frame.h (the framing half of the C++ protocol) state the same
    version, limits and error codes."""
    from odlkit.board import protocol

    header = (LIB / "odl_frame.h").read_text()
    consts = dict(re.findall(r"static const (?:uint32_t|size_t) (k\w+) = (\d+)u?;", header))
    assert int(consts["kProtocolVersion"]) == protocol.PROTOCOL_VERSION
    assert int(consts["kMaxLine"]) == protocol.MAX_LINE
    assert int(consts["kChunkBytes"]) == protocol.CHUNK_BYTES
    assert int(consts["kMaxSeq"]) == protocol.MAX_SEQ
    enum = re.search(r"enum ProtoError : int \{(.*?)\};", header, re.S).group(1)
    cpp = {re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper(): int(v) for name, v in re.findall(r"kPe(\w+) = (\d+)", enum)}
    assert cpp == {c.name: c.value for c in ErrorCode}
    assert protocol.FRAMING_ERRORS == {ErrorCode.LINE_TOO_LONG, ErrorCode.BAD_CRC, ErrorCode.MALFORMED}


def test_client_record_with_add_class_on_the_virtual_board():
    """Board.record(add_class=True): the class exists only once a window of it was stored."""
    from odlkit.board import Board, BoardError

    with Board.virtual(dataset="basic_motions", seed=0) as b:
        before = b.class_names()
        with pytest.raises(BoardError) as e:
            b.record("jumping", n=2, add_class=True)  # the replay has no such recording
        assert e.value.code == ErrorCode.SENSOR
        assert b.class_names() == before
        assert "badminton" not in before
        stored = b.record("badminton", n=3, add_class=True)
        assert b.class_names() == [*before, "badminton"] and stored == 3
        assert b.evaluate().confusion.shape == (len(before) + 1, len(before) + 1)
