"""Content headers the client library cannot decode are decoded leniently, not fatally.

A message's properties travel in one content header frame. aiormq reads every
frame with ``pamqp.frame.unmarshal``, and when pamqp cannot decode a content
header — a ``timestamp`` (property or header value) past the year 9999, a short
string or a header name that is not UTF-8; RabbitMQ passes all of them on as
published — aiormq drops the whole connection, before any callback sees the
delivery. The broker requeues the message and hands it to the next connection,
which drops too: the queue is left without a consumer, and every delivery in
flight on that connection is redelivered and run again, on every reconnect.

``install`` wraps ``pamqp.frame.unmarshal`` once per process: a frame pamqp
decodes is returned as it is (the cost is one extra call per frame); a content
header it cannot decode is decoded again here, value by value. What can be read
is kept; what cannot is left out and named, with its raw bytes bounded, in the
header ``warren-unreadable``. The delivery then reaches its consumer like any
other, which moves it aside (dead-letters it) with everything that was readable.
A frame that is not even well formed (no flags, a truncated field) still raises:
RabbitMQ never sends one, and guessing at it would be worse than reconnecting.
"""

from __future__ import annotations

import datetime
import logging
import struct
from collections.abc import Callable
from typing import Any

import pamqp.frame
from pamqp import commands, constants, decode, header

log = logging.getLogger(__name__)

H_UNREADABLE = "warren-unreadable"
MAX_PROBLEM_CHARS = 1000
Properties = commands.Basic.Properties
Unmarshal = Callable[[bytes], tuple[int, int, Any]]
FIXED_FIELDS = {  # field table types of a fixed size pamqp reads without fail
    b"t": 1, b"b": 1, b"B": 1, b"s": 2, b"u": 2, b"I": 4, b"i": 4, b"l": 8, b"L": 8,
    b"f": 4, b"d": 8, b"D": 5, b"V": 0, b"\x00": 0,
}  # fmt: skip


def install() -> None:
    """Decode unreadable content headers leniently in this process (idempotent)."""
    current = pamqp.frame.unmarshal
    if getattr(current, "warren_lenient", False):
        return
    pamqp.frame.unmarshal = _tolerant(current)  # type: ignore[assignment]


def _tolerant(original: Unmarshal) -> Unmarshal:
    def unmarshal(data_in: bytes) -> tuple[int, int, Any]:
        try:
            return original(data_in)
        except Exception as error:
            lenient = lenient_frame(data_in, error)
            if lenient is None:
                raise
            log.warning("a content header pamqp cannot decode (%s), read leniently", error)
            return lenient

    unmarshal.warren_lenient = True  # type: ignore[attr-defined]
    return unmarshal


def lenient_frame(data_in: bytes, error: Exception) -> tuple[int, int, header.ContentHeader] | None:
    """The frame as a content header with what could be read; None if it is not one or
    is not well formed. ``error`` is pamqp's, said if nothing more precise is found."""
    try:
        frame_type, channel, size = struct.unpack(">BHI", data_in[:7])
        if frame_type != constants.FRAME_HEADER or data_in[7 + size : 8 + size] != b"\xce":
            return None
        return 8 + size, channel, lenient_header(data_in[7 : 7 + size], error)
    except (struct.error, IndexError, ValueError):
        return None


def lenient_header(payload: bytes, error: Exception) -> header.ContentHeader:
    """A content header whose unreadable values are left out and named in ``warren-unreadable``."""
    class_id, weight, body_size = struct.unpack(">HHQ", payload[:12])
    flags, offset = _flags(payload, 12)
    problems: list[str] = []
    values: dict[str, Any] = {}
    for name in Properties.__slots__:
        if flags & Properties.flags[name]:
            kind = Properties.amqp_type(name)
            offset, values[name] = _property(kind, payload, offset, f"property {name}", problems)
    properties = Properties()
    for name, value in values.items():
        setattr(properties, name, value)
    headers = properties.headers if isinstance(properties.headers, dict) else {}
    headers[H_UNREADABLE] = "; ".join(problems or [str(error)])[:MAX_PROBLEM_CHARS]
    properties.headers = headers
    content = header.ContentHeader(weight, body_size, properties)
    content.class_id = class_id
    return content


def _flags(data: bytes, offset: int) -> tuple[int, int]:
    flags, word = 0, 0
    while True:
        (partial,) = struct.unpack_from(">H", data, offset)
        offset += 2
        flags |= partial << (word * 16)
        if not partial & 1:
            return flags, offset
        word += 1


def _property(
    kind: str, data: bytes, offset: int, where: str, problems: list[str]
) -> tuple[int, Any]:
    """Read one property at ``offset``: (the offset after it, its value or None)."""
    match kind:
        case "shortstr":
            (length,) = struct.unpack_from(">B", data, offset)
            end = offset + 1 + length
            raw = _bytes(data, offset + 1, end)
            return end, _text(raw, where, problems)
        case "octet":
            return offset + 1, struct.unpack_from(">B", data, offset)[0]
        case "timestamp":
            return offset + 8, _timestamp(_bytes(data, offset, offset + 8), where, problems)
        case "table":
            return _table(data, offset, "headers", problems)
    raise ValueError(f"{where} of unknown type {kind}")


def _table(data: bytes, offset: int, where: str, problems: list[str]) -> tuple[int, dict[str, Any]]:
    (length,) = struct.unpack_from(">I", data, offset)
    position, end = offset + 4, offset + 4 + length
    _bytes(data, position, end)
    table: dict[str, Any] = {}
    while position < end:
        (key_length,) = struct.unpack_from(">B", data, position)
        raw_key = _bytes(data, position + 1, position + 1 + key_length)
        position += 1 + key_length
        key = raw_key.decode("utf-8", "backslashreplace")
        try:
            raw_key.decode()
        except UnicodeDecodeError:
            problems.append(f"{where}: a name that is not UTF-8 ({_shown(raw_key)})")
            key = ""
        position, value = _field(data, position, f"{where}[{key!r}]", problems)
        if key and value is not _LEFT_OUT:
            table[key] = value
    return end, table


def _array(data: bytes, offset: int, where: str, problems: list[str]) -> tuple[int, list[Any]]:
    (length,) = struct.unpack_from(">I", data, offset)
    position, end = offset + 4, offset + 4 + length
    _bytes(data, position, end)
    items: list[Any] = []
    while position < end:
        position, value = _field(data, position, f"{where}[{len(items)}]", problems)
        if value is not _LEFT_OUT:
            items.append(value)
    return end, items


_LEFT_OUT = object()


def _field(data: bytes, offset: int, where: str, problems: list[str]) -> tuple[int, Any]:
    """One typed value of a table or array: (the offset after it, the value or ``_LEFT_OUT``)."""
    kind = _bytes(data, offset, offset + 1)
    offset += 1
    if kind == b"F":
        return _table(data, offset, where, problems)
    if kind == b"A":
        return _array(data, offset, where, problems)
    if kind == b"T":
        value = _timestamp(_bytes(data, offset, offset + 8), where, problems)
        return offset + 8, _LEFT_OUT if value is None else value
    if kind in (b"S", b"x"):
        (length,) = struct.unpack_from(">I", data, offset)
        end = offset + 4 + length
        _bytes(data, offset, end)
        return end, decode.TABLE_MAPPING[kind](data[offset:end])[1]
    if (size := FIXED_FIELDS.get(kind)) is None:
        raise ValueError(f"{where}: unknown field type {kind!r}")
    end = offset + size
    return end, decode.TABLE_MAPPING[kind](_bytes(data, offset, end))[1]


def _timestamp(raw: bytes, where: str, problems: list[str]) -> datetime.datetime | None:
    try:
        return decode.timestamp(raw)[1]
    except (ValueError, OverflowError, OSError):
        seconds = struct.unpack(">Q", raw)[0]
        problems.append(f"{where}: timestamp {seconds} is out of range")
        return None


def _text(raw: bytes, where: str, problems: list[str]) -> str | None:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        problems.append(f"{where}: not UTF-8 ({_shown(raw)})")
        return None


def _bytes(data: bytes, start: int, end: int) -> bytes:
    """``data[start:end]``, which must all be there (a truncated frame is not guessed at)."""
    if end > len(data):
        raise ValueError("a field runs past the end of the frame")
    return data[start:end]


def _shown(raw: bytes) -> str:
    return repr(raw[:32]) + ("…" if len(raw) > 32 else "")
