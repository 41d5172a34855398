"""What the wire reads of a delivery: its body and properties, whoever decoded the frame.

The consumer reads its deliveries straight from aiormq's frames
(``warren.consumers.inbound.Delivery``); the recorder, the dead-letter keeper
and the scheduler take aio-pika's ``IncomingMessage``. Both carry these
attributes under these names, so decoding an envelope, copying a delivery into
a dead letter or a counted copy is written once, for either.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol


class Delivered(Protocol):
    """A delivered message's body and the properties the wire reads (all read-only)."""

    @property
    def body(self) -> bytes: ...
    @property
    def headers(self) -> Mapping[str, Any]: ...
    @property
    def content_type(self) -> str | None: ...
    @property
    def content_encoding(self) -> str | None: ...
    @property
    def delivery_mode(self) -> int | None: ...
    @property
    def priority(self) -> int | None: ...
    @property
    def correlation_id(self) -> str | None: ...
    @property
    def reply_to(self) -> str | None: ...
    @property
    def message_id(self) -> str | None: ...
    @property
    def timestamp(self) -> datetime | None: ...
    @property
    def type(self) -> str | None: ...
    @property
    def app_id(self) -> str | None: ...
    @property
    def redelivered(self) -> bool | None: ...
