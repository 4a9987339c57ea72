"""The worker protocol's framing: each message is a 4-byte big-endian length, then that many bytes of JSON.

Requests are ``{"id": int, "op": str, "args": {...}}``; replies are ``{"id": int, "ok": true, "result": ...}``
or ``{"id": int, "ok": false, "error": {"kind": str, "message": str}}``. A worker announces itself with an
unsolicited ``{"id": 0, "ok": true, "result": {"ready": ...}}`` once its family is loaded.
Standard library only: this module runs inside every family's interpreter.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

try:  # orjson where the family's interpreter has it (3-5x faster); the standard library otherwise
    import orjson
except ImportError:  # pragma: no cover - depends on the interpreter
    orjson = None  # type: ignore[assignment]

HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024  # a frame past this is a protocol error, not a reason to allocate


class FrameError(Exception):
    """The peer sent something that is not a frame (or closed the pipe mid-frame)."""


def dumps(message: Any) -> bytes:
    if orjson is not None:
        try:
            return orjson.dumps(message, default=str, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            pass  # e.g. an int too large for orjson: the standard library handles it
    return json.dumps(message, separators=(",", ":"), default=str).encode()


def loads(body: bytes) -> Any:
    return orjson.loads(body) if orjson is not None else json.loads(body)


def frame(body: bytes) -> bytes:
    """``body`` behind its length header; FrameError when it is over the frame limit (every encoder's check)."""
    if len(body) > MAX_FRAME:
        raise FrameError(f"frame of {len(body)} bytes exceeds the {MAX_FRAME}-byte limit")
    return HEADER.pack(len(body)) + body


def encode(message: Any) -> bytes:
    return frame(dumps(message))


def decode_length(header: bytes) -> int:
    (length,) = HEADER.unpack(header)
    if length > MAX_FRAME:
        raise FrameError(f"frame of {length} bytes exceeds the {MAX_FRAME}-byte limit")
    return length


def _read_exactly(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> Any:
    """Blocking read of one frame from a file descriptor (worker side); EOFError when the peer is gone."""
    length = decode_length(_read_exactly(fd, HEADER.size))
    return loads(_read_exactly(fd, length))


def write_frame(fd: int, message: Any) -> None:
    """Blocking write of one frame (worker side)."""
    data = memoryview(encode(message))
    while data:
        written = os.write(fd, data)
        data = data[written:]
