"""Host side of the ODL serial protocol (``arduino_sketches/PROTOCOL.md``), numpy-free.

A frame is one line ``$<seq> <WORD> [<token> ...] *<crc32 hex>\\n`` where the CRC-32
(``zlib.crc32``, the same function as the weights blob) covers the bytes between ``$`` and
`` *``. This module builds request frames and parses reply frames; it knows nothing about
transports.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from enum import IntEnum

PROTOCOL_VERSION = 1
MAX_LINE = 1024  # bytes of one frame including '$' and '\n' (odl::kMaxLine)
CHUNK_BYTES = 512  # weights bytes per GETW / SETW frame (odl::kChunkBytes)
MAX_SEQ = 999_999_999



class ErrorCode(IntEnum):
    """The board's error codes (``odl::ProtoError`` in odl_frame.h; tests/test_protocol.py
    checks that both lists agree)."""

    LINE_TOO_LONG = 1
    BAD_CRC = 2
    MALFORMED = 3
    BAD_SEQ = 4
    UNKNOWN_CMD = 5
    BAD_ARG = 6
    BAD_PAYLOAD = 7
    STATE = 8
    ENGINE = 9
    WEIGHTS = 10
    STORAGE = 11
    SENSOR = 12


ERROR_NAMES = {int(c): c.name for c in ErrorCode}
# A request damaged on the way (the board could not read it): safe to send again.
FRAMING_ERRORS = frozenset({ErrorCode.LINE_TOO_LONG, ErrorCode.BAD_CRC, ErrorCode.MALFORMED})

_TOKEN = re.compile(rb"^[\x21-\x23\x25-\x29\x2b-\x7e]+$")  # printable ASCII except '$' and '*'
_CRC = re.compile(rb"^[0-9a-f]{8}$")
_CLASS_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


class FrameError(ValueError):
    """A line is not a valid frame (syntax or CRC)."""


def crc_hex(body: bytes) -> str:
    return f"{zlib.crc32(body):08x}"


def encode_frame(seq: int, word: str, *tokens: str) -> bytes:
    """The bytes of one request frame; raises ValueError on a token the board would reject."""
    if not 0 <= int(seq) <= MAX_SEQ:
        raise ValueError(f"seq must be 0..{MAX_SEQ}, got {seq}")
    parts = [str(int(seq)), word, *[str(t) for t in tokens]]
    for p in parts:
        if not _TOKEN.match(p.encode("ascii", errors="replace")):
            raise ValueError(f"token {p!r} is not printable ASCII without spaces, '$' or '*'")
    body = " ".join(parts).encode("ascii")
    line = b"$" + body + b" *" + crc_hex(body).encode() + b"\n"
    if len(line) > MAX_LINE:
        raise ValueError(f"frame of {len(line)} bytes exceeds the {MAX_LINE}-byte line limit; send it in chunks")
    return line


def valid_class_name(name: str) -> bool:
    """True for 1..15 characters of [A-Za-z0-9_.-] that are not all digits (the board's rule)."""
    return bool(_CLASS_NAME.match(name)) and not name.isdigit()


@dataclass
class Frame:
    """A parsed frame. ``kind`` is OK / ERR / EV (replies) or the command word (requests)."""

    seq: int
    kind: str
    cmd: str = ""  # OK / EV: the command; ERR: ""
    fields: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)  # tokens without '='
    code: int = 0  # ERR only
    message: str = ""  # ERR only
    raw: bytes = b""

    def int(self, key: str) -> int:
        return int(self.fields[key])

    def float(self, key: str) -> float:
        return float(self.fields[key])

    def floats(self, key: str) -> list[float]:
        v = self.fields.get(key, "")
        return [float(x) for x in v.split(",")] if v and v != "-" else []


def parse_frame(line: bytes) -> Frame:
    """Parse one line (with or without the trailing newline); raises :class:`FrameError`."""
    raw = bytes(line)
    s = raw.rstrip(b"\n")
    if s.endswith(b"\r"):
        s = s[:-1]
    if not s.startswith(b"$"):
        raise FrameError("line does not start with '$'")
    if len(s) < 11 or s[-10:-8] != b" *":
        raise FrameError("no ' *<crc>' field at the end of the frame")
    body, crc_text = s[1:-10], s[-8:]
    if not _CRC.match(crc_text):
        raise FrameError(f"CRC field {crc_text!r} is not 8 lower-case hexadecimal digits")
    want = int(crc_text, 16)
    if zlib.crc32(body) != want:
        raise FrameError("CRC mismatch: the frame was corrupted on the way")
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise FrameError("non-ASCII byte in frame") from None
    tokens = text.split(" ")
    if len(tokens) < 2 or not tokens[0].isdigit():
        raise FrameError(f"frame {text[:40]!r} has no seq and word")
    seq, kind, rest = int(tokens[0]), tokens[1], tokens[2:]
    f = Frame(seq=seq, kind=kind, raw=raw)
    if kind == "ERR":
        if not rest or not rest[0].isdigit():
            raise FrameError("ERR frame without a numeric code")
        f.code = int(rest[0])
        f.message = " ".join(rest[1:])
        return f
    if kind in ("OK", "EV"):
        if not rest:
            raise FrameError(f"{kind} frame without a command")
        f.cmd, rest = rest[0], rest[1:]
    for t in rest:
        if "=" in t:
            k, v = t.split("=", 1)
            f.fields[k] = v
        else:
            f.args.append(t)
    return f
