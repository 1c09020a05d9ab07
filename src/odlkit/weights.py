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
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

MAGIC = b"ODLW"
FORMAT_VERSION = 1
DTYPE_FLOAT32 = 0
NAME_BYTES = 16
HEADER = struct.Struct("<4sHHHHI")  # 16 bytes

__all__ = [
    "FORMAT_VERSION",
    "HeadWeights",
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
