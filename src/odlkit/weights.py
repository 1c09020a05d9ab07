"""The head weights blob shared with the ODLEngine Arduino library (numpy only).

One format, one implementation per language: this module and
``arduino_sketches/ODLEngine/src/odl_blob.cpp`` produce identical bytes.
Little-endian layout::

    b"ODLW" | u16 version (1) | u16 dtype (0 = float32) | u16 n_classes | u16 feature_dim
    | u32 payload_bytes
    | n_classes x 16-byte class names (UTF-8, NUL padded, at most 15 bytes used)
    | W as float32 [n_classes][feature_dim] (row-major, i.e. the transpose of Keras's kernel)
    | b as float32 [n_classes]
    | u32 CRC32 (zlib polynomial) of every byte before it

In Python, :class:`HeadWeights` keeps Keras's orientation: ``W`` is (feature_dim, n_classes).

Version 2 (Lab 2's two-layer network, :class:`MlpWeights`, :func:`encode_mlp` / :func:`decode_mlp`;
version 1 stays byte-identical) keeps the same 16-byte header (``feature_dim`` = the network's
input size) and then::

    | u16 hidden | u16 reserved (0) | u32 standardizer count n
    | n_classes x 16-byte class names
    | standardizer mean [input_dim] f32 | standardizer M2 [input_dim] f32
    | W1 [input_dim][hidden] f32 | b1 [hidden] f32 | W2 [hidden][n_classes] f32 | b2 [n_classes] f32
    | u32 CRC32 of every byte before it
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from odlkit.validation import check_two_layer_shapes

MAGIC = b"ODLW"
FORMAT_VERSION = 1
MLP_FORMAT_VERSION = 2
DTYPE_FLOAT32 = 0
NAME_BYTES = 16
HEADER = struct.Struct("<4sHHHHI")  # 16 bytes
MLP_EXTRA = struct.Struct("<HHI")  # hidden, reserved, standardizer count

__all__ = [
    "FORMAT_VERSION",
    "MLP_FORMAT_VERSION",
    "HeadWeights",
    "MlpWeights",
    "blob_version",
    "decode_mlp",
    "encode_mlp",
    "mlp_blob_size",
    "WeightsFormatError",
    "blob_size",
    "decode",
    "encode",
]


class WeightsFormatError(ValueError):
    """A weights blob is malformed (magic, version, dtype, size or CRC)."""


@dataclass
class HeadWeights:
    """A softmax head: logits = x @ W + b.

    W: (feature_dim, n_classes) float32, like a Keras Dense kernel; b: (n_classes,);
    class_names: one name per class (at most 15 UTF-8 bytes each).
    """

    W: np.ndarray
    b: np.ndarray
    class_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.W = np.asarray(self.W, dtype=np.float32)
        self.b = np.asarray(self.b, dtype=np.float32).reshape(-1)
        self.class_names = [str(n) for n in self.class_names]
        if self.W.ndim != 2:
            raise ValueError(f"HeadWeights.W must be 2-D (feature_dim, n_classes), got shape {self.W.shape}")
        fd, nc = self.W.shape
        if self.b.shape != (nc,):
            raise ValueError(
                f"HeadWeights.b must have n_classes={nc} entries to match W {self.W.shape}, got {self.b.shape}; "
                "W is (feature_dim, n_classes) like a Keras Dense kernel"
            )
        if len(self.class_names) != nc:
            raise ValueError(f"HeadWeights needs {nc} class names (one per column of W), got {len(self.class_names)}")
        if fd == 0 or fd > 0xFFFF or nc > 0xFFFF:
            raise ValueError(f"HeadWeights shape {self.W.shape} does not fit the blob's u16 sizes (1..65535)")

    @property
    def feature_dim(self) -> int:
        return int(self.W.shape[0])

    @property
    def n_classes(self) -> int:
        return int(self.W.shape[1])

    def logits(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float32) @ self.W + self.b

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.argmax(self.logits(features), axis=-1)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HeadWeights):
            return NotImplemented
        return (
            self.class_names == other.class_names
            and np.array_equal(self.W, other.W)
            and np.array_equal(self.b, other.b)
        )


def _payload_bytes(n_classes: int, feature_dim: int) -> int:
    return n_classes * NAME_BYTES + 4 * n_classes * feature_dim + 4 * n_classes


def blob_size(n_classes: int, feature_dim: int) -> int:
    """Total blob length in bytes for a head of this shape."""
    return HEADER.size + _payload_bytes(n_classes, feature_dim) + 4


def _encode_name(name: str) -> bytes:
    raw = name.encode("utf-8")
    if len(raw) > NAME_BYTES - 1:
        raise ValueError(
            f"class name {name!r} is {len(raw)} UTF-8 bytes; the weights format keeps at most "
            f"{NAME_BYTES - 1}: shorten it"
        )
    if b"\0" in raw:
        raise ValueError(f"class name {name!r} contains a NUL character")
    return raw.ljust(NAME_BYTES, b"\0")


def encode(head: HeadWeights) -> bytes:
    """Serialize a head to the blob the board's ``deserialize`` accepts."""
    nc, fd = head.n_classes, head.feature_dim
    parts = [HEADER.pack(MAGIC, FORMAT_VERSION, DTYPE_FLOAT32, nc, fd, _payload_bytes(nc, fd))]
    parts += [_encode_name(n) for n in head.class_names]
    parts.append(np.ascontiguousarray(head.W.T, dtype="<f4").tobytes())
    parts.append(np.ascontiguousarray(head.b, dtype="<f4").tobytes())
    body = b"".join(parts)
    return body + struct.pack("<I", zlib.crc32(body))


def decode(blob: bytes) -> HeadWeights:
    """Parse and verify a blob; raises :class:`WeightsFormatError` saying what is wrong."""
    blob = bytes(blob)
    if len(blob) < HEADER.size + 4:
        raise WeightsFormatError(
            f"weights blob is {len(blob)} bytes, shorter than the {HEADER.size + 4}-byte header + CRC: "
            "the transfer was cut short"
        )
    magic, version, dtype, nc, fd, payload = HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise WeightsFormatError(f"not a weights blob: magic is {magic!r}, expected {MAGIC!r}")
    if version == MLP_FORMAT_VERSION:
        raise WeightsFormatError("this blob holds a two-layer network (format version 2, Lab 2): "
                                 "read it with odlkit.weights.decode_mlp / Board.get_network()")
    if version != FORMAT_VERSION:
        raise WeightsFormatError(
            f"weights format version {version} is not supported (this odlkit reads version {FORMAT_VERSION}): "
            "update odlkit or the board firmware so both use the same version"
        )
    if dtype != DTYPE_FLOAT32:
        raise WeightsFormatError(f"weights dtype code {dtype} is not supported (only 0 = float32)")
    expected_payload = _payload_bytes(nc, fd)
    if payload != expected_payload:
        raise WeightsFormatError(
            f"header says payload_bytes={payload} but {nc} classes x {fd} features need {expected_payload}"
        )
    expected = blob_size(nc, fd)
    if len(blob) != expected:
        raise WeightsFormatError(
            f"weights blob is {len(blob)} bytes but its header ({nc} classes x {fd} features) "
            f"implies {expected}: truncated or padded"
        )
    (crc,) = struct.unpack_from("<I", blob, expected - 4)
    actual = zlib.crc32(blob[: expected - 4])
    if crc != actual:
        raise WeightsFormatError(
            f"weights blob CRC32 mismatch (stored {crc:#010x}, computed {actual:#010x}): the data is corrupted"
        )
    off = HEADER.size
    names = []
    for _ in range(nc):
        raw = blob[off : off + NAME_BYTES].split(b"\0", 1)[0]
        names.append(raw.decode("utf-8", errors="replace"))
        off += NAME_BYTES
    W = np.frombuffer(blob, dtype="<f4", count=nc * fd, offset=off).reshape(nc, fd).T.astype(np.float32)
    off += 4 * nc * fd
    b = np.frombuffer(blob, dtype="<f4", count=nc, offset=off).astype(np.float32)
    return HeadWeights(W=W, b=b, class_names=names)


@dataclass
class MlpWeights:
    """Lab 2's network: standardizer (Welford count, mean, M2) -> Dense(hidden) + ReLU -> Dense softmax.

    W1 (input_dim, hidden), b1 (hidden,), W2 (hidden, n_classes), b2 (n_classes,), Keras layouts.
    """

    W1: np.ndarray
    b1: np.ndarray
    W2: np.ndarray
    b2: np.ndarray
    class_names: list[str]
    norm_count: int
    norm_mean: np.ndarray
    norm_m2: np.ndarray

    def __post_init__(self) -> None:
        for k in ("W1", "b1", "W2", "b2", "norm_mean", "norm_m2"):
            setattr(self, k, np.asarray(getattr(self, k), dtype=np.float32))
        self.class_names = [str(n) for n in self.class_names]
        self.norm_count = int(self.norm_count)
        if self.norm_mean.shape != self.norm_m2.shape or self.norm_mean.ndim != 1:
            raise ValueError(f"MlpWeights: standardizer mean {self.norm_mean.shape} and M2 {self.norm_m2.shape} "
                             "must be vectors of the same size")
        check_two_layer_shapes("MlpWeights", self.W1, self.b1, self.W2, self.b2, len(self.class_names),
                               self.norm_mean.shape[0])
        d, h = self.W1.shape
        c = len(self.class_names)
        if not 0 < d <= 0xFFFF or not 0 < h <= 0xFFFF or c > 0xFFFF or not 0 <= self.norm_count <= 0xFFFFFFFF:
            raise ValueError("MlpWeights: sizes do not fit the blob's u16/u32 fields")

    @property
    def input_dim(self) -> int:
        return int(self.W1.shape[0])

    @property
    def hidden(self) -> int:
        return int(self.W1.shape[1])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MlpWeights):
            return NotImplemented
        return (self.class_names == other.class_names and self.norm_count == other.norm_count
                and all(np.array_equal(getattr(self, k), getattr(other, k))
                        for k in ("W1", "b1", "W2", "b2", "norm_mean", "norm_m2")))


def _mlp_payload_bytes(n_classes: int, input_dim: int, hidden: int) -> int:
    floats = 2 * input_dim + input_dim * hidden + hidden + hidden * n_classes + n_classes
    return MLP_EXTRA.size + n_classes * NAME_BYTES + 4 * floats


def mlp_blob_size(n_classes: int, input_dim: int, hidden: int) -> int:
    """Total length of a version-2 blob."""
    return HEADER.size + _mlp_payload_bytes(n_classes, input_dim, hidden) + 4


def blob_version(blob: bytes) -> int:
    """The format version of a blob (1: head, 2: two-layer network); checks only the magic."""
    if len(blob) < HEADER.size or blob[:4] != MAGIC:
        raise WeightsFormatError("not a weights blob (too short or magic is not ODLW)")
    return int(struct.unpack_from("<H", blob, 4)[0])


def encode_mlp(net: MlpWeights) -> bytes:
    """Serialize a two-layer network (format version 2)."""
    c, d, h = net.n_classes, net.input_dim, net.hidden
    parts = [HEADER.pack(MAGIC, MLP_FORMAT_VERSION, DTYPE_FLOAT32, c, d, _mlp_payload_bytes(c, d, h)),
             MLP_EXTRA.pack(h, 0, net.norm_count)]
    parts += [_encode_name(n) for n in net.class_names]
    for a in (net.norm_mean, net.norm_m2, net.W1, net.b1, net.W2, net.b2):
        parts.append(np.ascontiguousarray(a, dtype="<f4").tobytes())
    body = b"".join(parts)
    return body + struct.pack("<I", zlib.crc32(body))


def decode_mlp(blob: bytes) -> MlpWeights:
    """Parse and verify a version-2 blob; raises :class:`WeightsFormatError` saying what is wrong."""
    blob = bytes(blob)
    if len(blob) < HEADER.size + MLP_EXTRA.size + 4:
        raise WeightsFormatError(f"network blob is {len(blob)} bytes, shorter than its headers + CRC: cut short")
    magic, version, dtype, c, d, payload = HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise WeightsFormatError(f"not a weights blob: magic is {magic!r}, expected {MAGIC!r}")
    if version != MLP_FORMAT_VERSION:
        raise WeightsFormatError(f"weights format version {version} is not a two-layer network (version "
                                 f"{MLP_FORMAT_VERSION}); a version-1 head is read by odlkit.weights.decode")
    if dtype != DTYPE_FLOAT32:
        raise WeightsFormatError(f"weights dtype code {dtype} is not supported (only 0 = float32)")
    h, _reserved, count = MLP_EXTRA.unpack_from(blob, HEADER.size)
    expected_payload = _mlp_payload_bytes(c, d, h)
    if payload != expected_payload or len(blob) != mlp_blob_size(c, d, h):
        raise WeightsFormatError(
            f"network blob is {len(blob)} bytes (payload_bytes={payload}) but {c} classes, input {d}, hidden {h} "
            f"imply {mlp_blob_size(c, d, h)}: truncated or padded"
        )
    (crc,) = struct.unpack_from("<I", blob, len(blob) - 4)
    actual = zlib.crc32(blob[:-4])
    if crc != actual:
        raise WeightsFormatError(f"weights blob CRC32 mismatch (stored {crc:#010x}, computed {actual:#010x}): corrupted")
    off = HEADER.size + MLP_EXTRA.size
    names = []
    for _ in range(c):
        names.append(blob[off : off + NAME_BYTES].split(b"\0", 1)[0].decode("utf-8", errors="replace"))
        off += NAME_BYTES
    arrays = []
    for shape in ((d,), (d,), (d, h), (h,), (h, c), (c,)):
        count_f = int(np.prod(shape))
        arrays.append(np.frombuffer(blob, dtype="<f4", count=count_f, offset=off).reshape(shape).astype(np.float32))
        off += 4 * count_f
    mean, m2, W1, b1, W2, b2 = arrays
    return MlpWeights(W1, b1, W2, b2, names, count, mean, m2)
