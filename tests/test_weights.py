"""odlkit.weights (Python) and odl_blob.cpp (C++) write and read the same bytes."""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "engine"))
from enginebuild import HERE, gxx, library_sources, run  # noqa: E402

from odlkit.weights import HeadWeights, WeightsFormatError, blob_size, decode, encode  # noqa: E402

FD, MC = 64, 8

# one worker builds this module's programs once (pytest -n with --dist loadgroup)
pytestmark = pytest.mark.xdist_group("weights")


def _xorshift32(x):
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    return x


def _expected_head(nc, seed):
    """What blob_cli make NC SEED writes, recomputed independently in Python."""
    state, vals = seed | 1, []
    for _ in range(nc * FD + nc):
        state = _xorshift32(state)
        vals.append((state % 20001 - 10000) / 4096.0)
    W = np.array(vals[: nc * FD], np.float32).reshape(nc, FD).T
    return HeadWeights(W=W, b=np.array(vals[nc * FD :], np.float32), class_names=[f"class_{c}" for c in range(nc)])


@pytest.fixture(scope="module")
def blob_cli(tmp_path_factory):
    d = tmp_path_factory.mktemp("blob")
    return gxx([HERE / "blob_cli.cpp", *library_sources()], d / "blob_cli", flags=[f"-DFD={FD}", f"-DMC={MC}"])


def _head(nc=4, seed=0):
    rng = np.random.default_rng(seed)
    return HeadWeights(W=rng.normal(size=(FD, nc)), b=rng.normal(size=nc), class_names=[f"c{i}" for i in range(nc)])


def test_python_roundtrip_and_layout():
    h = _head(5)
    blob = encode(h)
    assert len(blob) == blob_size(5, FD) == 16 + 5 * 16 + 5 * FD * 4 + 5 * 4 + 4
    assert blob[:4] == b"ODLW" and struct.unpack_from("<HHHHI", blob, 4) == (1, 0, 5, FD, len(blob) - 20)
    assert struct.unpack_from("<I", blob, len(blob) - 4)[0] == zlib.crc32(blob[:-4])
    # W is stored row-major [class][feature]: the first float is W[feature 0, class 0], the second W[1, 0]
    first = np.frombuffer(blob, "<f4", count=2, offset=16 + 5 * 16)
    assert first[0] == h.W[0, 0] and first[1] == h.W[1, 0]
    assert decode(blob) == h


def test_cpp_blob_decodes_in_python(blob_cli, tmp_path):
    for nc, seed in [(1, 3), (4, 11), (MC, 12345)]:
        run([blob_cli, "make", nc, seed, tmp_path / "c.blob"])
        assert decode((tmp_path / "c.blob").read_bytes()) == _expected_head(nc, seed)
        # and Python re-encodes it to the identical bytes
        assert encode(_expected_head(nc, seed)) == (tmp_path / "c.blob").read_bytes()


def test_python_blob_roundtrips_through_cpp_byte_identical(blob_cli, tmp_path):
    for nc in (1, 3, MC):
        blob = encode(_head(nc, seed=nc))
        (tmp_path / "p.blob").write_bytes(blob)
        run([blob_cli, "roundtrip", tmp_path / "p.blob", tmp_path / "back.blob"])
        assert (tmp_path / "back.blob").read_bytes() == blob


def test_every_single_byte_corruption_is_rejected(blob_cli, tmp_path):
    blob = bytearray(encode(_head(4, seed=1)))
    # Python: every position x every non-zero xor mask
    rejected = 0
    for pos in range(len(blob)):
        for m in range(1, 256):
            blob[pos] ^= m
            try:
                decode(bytes(blob))
            except WeightsFormatError:
                rejected += 1
            blob[pos] ^= m
    assert rejected == len(blob) * 255
    # C++: every position with three masks (a low bit, a high bit, all bits)
    # (the C++ unit test tries all 255 masks on a smaller blob)
    bad = []
    for pos in range(0, len(blob)):
        for m in (0x01, 0x80, 0xFF):
            blob[pos] ^= m
            (tmp_path / "x.blob").write_bytes(bytes(blob))
            blob[pos] ^= m
            if pos % 7 and m != 0xFF:  # keep the process count modest: sample 1/7 of positions for 2 masks
                continue
            res = run([blob_cli, "roundtrip", tmp_path / "x.blob", tmp_path / "y.blob"], check=False)
            if res.returncode != 3:
                bad.append((pos, m))
    assert not bad


def test_format_errors_say_what_is_wrong():
    blob = encode(_head(2))
    with pytest.raises(WeightsFormatError, match="magic"):
        decode(b"XXXX" + blob[4:])
    v2 = bytearray(blob)
    v2[4] = 2
    with pytest.raises(WeightsFormatError, match="version 2"):
        decode(bytes(v2))
    with pytest.raises(WeightsFormatError, match="truncated"):
        decode(blob[:-1])
    with pytest.raises(WeightsFormatError, match="truncated or padded"):
        decode(blob + b"\0")
    with pytest.raises(WeightsFormatError, match="shorter"):
        decode(blob[:10])
    with pytest.raises(WeightsFormatError, match="CRC32"):
        decode(blob[:-5] + bytes([blob[-5] ^ 1]) + blob[-4:])
    with pytest.raises(ValueError, match="15"):
        encode(HeadWeights(W=np.zeros((FD, 1)), b=np.zeros(1), class_names=["sixteen-chars-xx"]))
    with pytest.raises(ValueError, match="n_classes"):
        HeadWeights(W=np.zeros((FD, 2)), b=np.zeros(3), class_names=["a", "b"])


def test_cpp_rejects_wrong_version_and_size(blob_cli, tmp_path):
    blob = encode(_head(3))
    cases = {"version": blob[:4] + b"\x02" + blob[5:], "truncated": blob[:-1], "padded": blob + b"\0\0\0\0",
             "too many classes": encode(_head(MC + 1))}
    for name, data in cases.items():
        (tmp_path / "x.blob").write_bytes(data)
        res = run([blob_cli, "roundtrip", tmp_path / "x.blob", tmp_path / "y.blob"], check=False)
        assert res.returncode == 3, name
    (tmp_path / "x.blob").write_bytes(cases["version"])
    assert "version" in run([blob_cli, "roundtrip", tmp_path / "x.blob", tmp_path / "y.blob"], check=False).stdout
