"""Update compression with an exact byte count.

A *codec* turns a float32 update vector into the bytes a client would radio to the server and
back. ``encode(x) -> bytes`` and ``decode(payload, d) -> x_hat`` are real serialisations, and
``nbytes(d)`` is the size of the payload for a vector of length ``d`` -- tests check that
``len(encode(x)) == nbytes(len(x))``, so the "megabytes sent" in the plots are exact.

* :class:`Float32Codec` -- no compression: ``4 d`` bytes.
* :class:`Int8Codec` -- symmetric per-vector int8 quantization: one float32 scale + ``d`` int8.
* :class:`TopKCodec` -- keep the ``k`` largest-magnitude entries: ``k`` uint32 indices + ``k``
  float32 values (+ a uint32 count).
* :class:`ErrorFeedback` -- per-client memory of what compression threw away, added back to
  the next update (Seide et al. 2014; Karimireddy et al. 2019), so nothing is lost for good.
"""

from __future__ import annotations

import math

import numpy as np


class Float32Codec:
    name = "float32"

    def nbytes(self, d: int) -> int:
        return 4 * int(d)

    def encode(self, x) -> bytes:
        return np.ascontiguousarray(x, dtype="<f4").tobytes()

    def decode(self, payload: bytes, d: int) -> np.ndarray:
        return np.frombuffer(payload, dtype="<f4", count=d).copy()

    def roundtrip(self, X: np.ndarray) -> np.ndarray:
        """What the server receives for each row of X (K, D), without building the bytes."""
        return np.asarray(X, dtype=np.float32).copy()


class Int8Codec:
    """``q = round(x / s)``, ``s = max|x| / 127``; the server gets ``q * s``."""

    name = "int8"

    def nbytes(self, d: int) -> int:
        return 4 + int(d)

    @staticmethod
    def _scale(x: np.ndarray) -> np.ndarray:
        amax = np.abs(x).max(axis=-1, keepdims=True) if x.shape[-1] else np.zeros(x.shape[:-1] + (1,))
        return np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)

    def quantize(self, x) -> tuple[np.ndarray, np.ndarray]:
        """int8 codes and float32 scale (per row)."""
        x = np.asarray(x, dtype=np.float32)
        s = self._scale(x)
        q = np.clip(np.rint(x / s), -127, 127).astype(np.int8)
        return q, s

    def encode(self, x) -> bytes:
        q, s = self.quantize(np.asarray(x, dtype=np.float32).ravel())
        return s.astype("<f4").tobytes() + q.tobytes()

    def decode(self, payload: bytes, d: int) -> np.ndarray:
        s = np.frombuffer(payload, dtype="<f4", count=1)[0]
        q = np.frombuffer(payload, dtype=np.int8, count=d, offset=4)
        return q.astype(np.float32) * s

    def roundtrip(self, X):
        q, s = self.quantize(X)
        return q.astype(np.float32) * s


class TopKCodec:
    """Keep the ``k = ceil(fraction * d)`` entries of largest magnitude (ties: lowest index first)."""

    name = "topk"

    def __init__(self, fraction: float = 0.1):
        if not 0 < fraction <= 1:
            raise ValueError(f"top-k fraction must be in (0, 1], got {fraction}")
        self.fraction = float(fraction)
        self.name = f"top{fraction:g}"

    def k(self, d: int) -> int:
        return max(1, math.ceil(self.fraction * d))

    def nbytes(self, d: int) -> int:
        return 4 + 8 * self.k(d)

    def select(self, X) -> np.ndarray:
        """Indices (K, k) of the kept entries of each row of X (K, D)."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float32))
        k = self.k(X.shape[1])
        # stable sort on -|x| keeps the lowest index among ties: deterministic, same as encode
        return np.sort(np.argsort(-np.abs(X), axis=1, kind="stable")[:, :k], axis=1)

    def encode(self, x) -> bytes:
        x = np.asarray(x, dtype=np.float32).ravel()
        idx = self.select(x)[0]
        return (np.array([len(idx)], dtype="<u4").tobytes() + idx.astype("<u4").tobytes()
                + x[idx].astype("<f4").tobytes())

    def decode(self, payload: bytes, d: int) -> np.ndarray:
        k = int(np.frombuffer(payload, dtype="<u4", count=1)[0])
        idx = np.frombuffer(payload, dtype="<u4", count=k, offset=4)
        val = np.frombuffer(payload, dtype="<f4", count=k, offset=4 + 4 * k)
        out = np.zeros(d, dtype=np.float32)
        out[idx] = val
        return out

    def roundtrip(self, X):
        X = np.atleast_2d(np.asarray(X, dtype=np.float32))
        idx = self.select(X)
        out = np.zeros_like(X)
        np.put_along_axis(out, idx, np.take_along_axis(X, idx, axis=1), axis=1)
        return out


class ChainCodec:
    """Top-k, then int8 on the kept values: ``4 + 4 k`` (indices) ``+ 4 + k`` bytes."""

    def __init__(self, fraction: float = 0.1):
        self.topk, self.int8 = TopKCodec(fraction), Int8Codec()
        self.name = f"top{fraction:g}+int8"

    def nbytes(self, d: int) -> int:
        k = self.topk.k(d)
        return 4 + 4 * k + self.int8.nbytes(k)

    def encode(self, x) -> bytes:
        x = np.asarray(x, dtype=np.float32).ravel()
        idx = self.topk.select(x)[0]
        return np.array([len(idx)], dtype="<u4").tobytes() + idx.astype("<u4").tobytes() + self.int8.encode(x[idx])

    def decode(self, payload: bytes, d: int) -> np.ndarray:
        k = int(np.frombuffer(payload, dtype="<u4", count=1)[0])
        idx = np.frombuffer(payload, dtype="<u4", count=k, offset=4)
        out = np.zeros(d, dtype=np.float32)
        out[idx] = self.int8.decode(payload[4 + 4 * k:], k)
        return out

    def roundtrip(self, X):
        X = np.atleast_2d(np.asarray(X, dtype=np.float32))
        idx = self.topk.select(X)
        out = np.zeros_like(X)
        np.put_along_axis(out, idx, self.int8.roundtrip(np.take_along_axis(X, idx, axis=1)), axis=1)
        return out


CODECS = {"float32": Float32Codec, "int8": Int8Codec, "topk": TopKCodec, "topk+int8": ChainCodec}


def get_codec(codec) -> object:
    """A codec object from a name (``"float32"``, ``"int8"``, ``"topk"``, ``"topk+int8"``) or an instance."""
    if codec is None:
        return Float32Codec()
    if isinstance(codec, str):
        if codec not in CODECS:
            raise ValueError(f"unknown codec {codec!r}; choose one of {sorted(CODECS)} or pass a codec object")
        return CODECS[codec]()
    for attr in ("nbytes", "roundtrip"):
        if not hasattr(codec, attr):
            raise TypeError(f"a codec needs .nbytes(d) and .roundtrip(X); {codec!r} has no .{attr}")
    return codec


class ErrorFeedback:
    """Error feedback for K clients: send ``C(u + e)``, keep ``e <- (u + e) - C(u + e)``.

    ``memory`` is a (n_clients, D) array; ``compress(ids, U)`` handles the rows of the clients
    ``ids`` that take part in this round.
    """

    def __init__(self, codec, n_clients: int, d: int):
        self.codec = get_codec(codec)
        self.memory = np.zeros((n_clients, d), dtype=np.float32)

    def compress(self, ids, U) -> np.ndarray:
        ids = np.asarray(ids)
        corrected = np.asarray(U, dtype=np.float32) + self.memory[ids]
        sent = self.codec.roundtrip(corrected)
        self.memory[ids] = corrected - sent
        return sent
