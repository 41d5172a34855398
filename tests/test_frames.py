"""The lenient reading of content headers pamqp cannot decode (no broker: frames built here).

The real-broker behaviour is in ``test_poison_amqp.py``; these pin down what is
kept, what is named, and what still fails, value by value.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pamqp.frame
import pytest
from pamqp.exceptions import UnmarshalingException
from pamqp.header import ContentHeader

from tests.raw_amqp import Raw, content_header, raw_table, raw_timestamp
from warren.service import frames
from warren.service.frames import H_UNREADABLE


def header_frame(payload: bytes, channel: int = 3) -> bytes:
    return struct.pack(">BHI", 2, channel, len(payload)) + payload + b"\xce"


def long_string(raw: bytes) -> bytes:
    return b"S" + struct.pack(">I", len(raw)) + raw


def unmarshal(payload: bytes) -> ContentHeader:
    frames.install()
    consumed, channel, header = pamqp.frame.unmarshal(header_frame(payload))
    assert (consumed, channel) == (len(payload) + 8, 3)
    assert isinstance(header, ContentHeader)
    return header


def test_readable_values_are_kept_and_unreadable_ones_named() -> None:
    array = b"T" + raw_timestamp(2**63).encoded + b"T" + raw_timestamp(1000).encoded
    headers = raw_table(
        {
            b"kept": long_string(b"yes"),
            b"nested": b"F" + raw_table({b"n": b"I" + struct.pack(">i", -5)}).encoded,
            b"times": b"A" + struct.pack(">I", len(array)) + array,
            b"bad\xff": long_string(b"dropped"),
            b"raw": long_string(b"\xff"),  # pamqp reads it as bytes: readable
        }
    )
    payload = content_header(
        42,
        {
            "content_type": "application/json",
            "headers": headers,
            "delivery_mode": 2,
            "message_id": "abc",
            "timestamp": raw_timestamp(2**63),
            "app_id": Raw(b"\x02\xff\xfe"),
        },
    )

    header = unmarshal(payload)

    assert header.body_size == 42
    props = header.properties
    assert (props.content_type, props.delivery_mode, props.message_id) == (
        "application/json",
        2,
        "abc",
    )
    assert props.timestamp is None and props.app_id is None
    assert props.headers is not None
    assert props.headers["kept"] == "yes" and props.headers["nested"] == {"n": -5}
    assert props.headers["times"] == [datetime(1970, 1, 1, 0, 16, 40, tzinfo=UTC)]
    assert props.headers["raw"] == b"\xff"
    assert set(props.headers) == {"kept", "nested", "times", "raw", H_UNREADABLE}
    named = str(props.headers[H_UNREADABLE])
    for problem in (
        "headers['times'][0]: timestamp 9223372036854775808 is out of range",
        "headers: a name that is not UTF-8 (b'bad\\xff')",
        "property timestamp: timestamp 9223372036854775808 is out of range",
        "property app_id: not UTF-8",
    ):
        assert problem in named


def test_decodable_headers_are_pamqps_own_and_malformed_ones_still_fail() -> None:
    good = content_header(0, {"message_id": "abc", "timestamp": raw_timestamp(1000)})
    assert H_UNREADABLE not in (unmarshal(good).properties.headers or {})
    truncated = content_header(0, {"headers": Raw(struct.pack(">I", 100) + b"abc")})
    with pytest.raises(UnmarshalingException):
        unmarshal(truncated)


def test_install_wraps_once() -> None:
    frames.install()
    wrapped = pamqp.frame.unmarshal
    frames.install()
    assert pamqp.frame.unmarshal is wrapped
