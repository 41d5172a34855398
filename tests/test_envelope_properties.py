"""Properties of the envelope over the AMQP wire format, for values no one wrote down.

1. Any valid envelope survives ``Envelope`` → ``aio_pika.Message`` → the bytes of an AMQP
   content header (pamqp, the codec the broker connection uses) → a delivery → ``Envelope``
   unchanged: unicode bodies and submitters, every attempt/limit pair, millisecond
   timeouts, any aware creation time, priorities, trace context.
2. Whatever a delivery carries (any properties, any header values of any AMQP type, any
   body), decoding it either succeeds or raises ``DecodeError``, the one error the consumer
   dead-letters on. Anything else would escape the consumer's settle path: the delivery
   would be neither run nor dead-lettered.

No broker here: ``test_envelope`` makes the real trip through RabbitMQ; this checks the
codec with thousands of values in a few seconds.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, cast

import aio_pika
import pamqp.frame
from aio_pika.message import IncomingMessage
from aiormq.abc import DeliveredMessage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pamqp import commands
from pamqp.header import ContentHeader

from tests.conftest import make_settings
from tests.demo import CATALOG, REGISTRY
from warren.consumers.context import Resources
from warren.consumers.delivery import DeliveryProcessor
from warren.service.contracts import QUEUE_NAME, TASK_NAME
from warren.service.errors import DecodeError
from warren.service.http.problems import Problem
from warren.service.http.submission import validate
from warren.service.http.views import build_envelope
from warren.service.store.model import TASK_ID
from warren.service.wire.envelope import (
    CONTENT_TYPE,
    H_ATTEMPT,
    H_CREATED_AT,
    H_MAX_ATTEMPTS,
    H_QUEUE,
    H_SUBMITTER,
    H_TIMEOUT_MS,
    H_TRACEPARENT,
    H_TRACESTATE,
    H_TYPE,
    H_VERSION,
    MAX_TRACESTATE,
    TRACEPARENT,
    Envelope,
)

PROPERTIES = settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# --- the wire ------------------------------------------------------------------------------


def over_the_wire(message: aio_pika.Message, redelivered: bool = False) -> IncomingMessage:
    """The delivery a consumer would get: properties and headers encoded and decoded by pamqp.

    A top-level ``bytes`` header value stands for a long string that is not UTF-8 (pamqp
    decodes those to ``bytes`` but cannot encode one): it is set after decoding.
    """
    headers = message.headers or {}
    raw = {name: value for name, value in headers.items() if isinstance(value, bytes)}
    message.headers = {name: value for name, value in headers.items() if name not in raw}
    header = ContentHeader(0, len(message.body), message.properties)
    _, _, decoded = pamqp.frame.unmarshal(pamqp.frame.marshal(header, 1))
    assert isinstance(decoded, ContentHeader)
    decoded.properties.headers = {**(decoded.properties.headers or {}), **raw}
    deliver = commands.Basic.Deliver(
        consumer_tag="c", delivery_tag=1, redelivered=redelivered, exchange="", routing_key="q"
    )
    delivered = DeliveredMessage(deliver, decoded, message.body, cast(Any, None))
    return IncomingMessage(delivered, no_ack=True)


# --- 1. valid envelopes round-trip ---------------------------------------------------------
no_surrogates = st.characters(exclude_categories=["Cs"])  # not encodable as UTF-8
printable_ascii = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


@st.composite
def envelopes(draw: st.DrawFn) -> Envelope:
    max_attempts = draw(st.integers(1, 10_000))
    offset = draw(st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m))))
    created = draw(
        st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31))
    ).replace(tzinfo=offset)
    return Envelope(
        id=draw(st.from_regex(TASK_ID, fullmatch=True)),
        type=draw(st.from_regex(TASK_NAME, fullmatch=True)),
        queue=draw(st.from_regex(QUEUE_NAME, fullmatch=True)),
        body=draw(st.binary(max_size=500) | st.text(no_surrogates, max_size=200).map(str.encode)),
        attempt=draw(st.integers(1, max_attempts)),
        max_attempts=max_attempts,
        timeout_seconds=draw(st.integers(1, 10**9)) / 1000,  # the header holds milliseconds
        created_at=created,
        priority=draw(st.integers(0, 9)),
        traceparent=draw(st.none() | st.from_regex(TRACEPARENT, fullmatch=True)),
        tracestate=draw(st.none() | st.text(printable_ascii, min_size=1, max_size=MAX_TRACESTATE)),
        submitter=draw(st.none() | st.text(no_surrogates, min_size=1, max_size=200)),
    )


@PROPERTIES
@given(envelope=envelopes(), redelivered=st.booleans())
def test_every_valid_envelope_survives_the_wire(envelope: Envelope, redelivered: bool) -> None:
    decoded = Envelope.from_delivery(over_the_wire(envelope.to_message(), redelivered))
    assert decoded.redelivered is redelivered
    assert decoded == Envelope(**{**_fields(envelope), "redelivered": redelivered})


def _fields(envelope: Envelope) -> dict[str, Any]:
    return {name: getattr(envelope, name) for name in Envelope.__slots__}


# --- 2. anything else is a DecodeError ---------------------------------------------------------
short_text = st.text(no_surrogates, max_size=60)
amqp_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(width=32),  # AMQP field tables carry 32-bit floats
    st.decimals(places=2, min_value=Decimal(-(10**6)), max_value=Decimal(10**6)),
    short_text,
    st.binary(max_size=60).map(bytearray),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1)),
)
amqp_values = st.recursive(
    amqp_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(short_text, inner, max_size=3),
    max_leaves=6,
)
VALID_HEADERS: dict[str, Any] = {
    H_VERSION: 1,
    H_TYPE: "diag.echo",
    H_QUEUE: "diag",
    H_ATTEMPT: 1,
    H_MAX_ATTEMPTS: 3,
    H_TIMEOUT_MS: 1000,
    H_CREATED_AT: datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
    H_TRACEPARENT: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    H_TRACESTATE: "v=1",
    H_SUBMITTER: "me",
}


@st.composite
def garbled_headers(draw: st.DrawFn) -> dict[str, Any]:
    """Each known header valid, missing or any AMQP value; plus unknown headers."""
    headers: dict[str, Any] = draw(st.dictionaries(short_text, amqp_values, max_size=3))
    for name, valid in VALID_HEADERS.items():
        choice = draw(st.sampled_from(["valid"] * 9 + ["missing", "garbled", "text"]))
        if choice == "valid":
            headers[name] = valid
        elif choice == "garbled":
            headers[name] = draw(amqp_values)
        elif choice == "text":
            headers[name] = draw(short_text | st.binary(max_size=40))  # bytes: not UTF-8
    return headers


payload_bodies = st.one_of(
    st.binary(max_size=300),
    st.just(b'{"message":"hi"}'),
    st.just(b'{"message":"hi","extra":1}'),
    st.recursive(
        st.none() | st.booleans() | st.integers() | short_text,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(short_text, inner, max_size=3),
        max_leaves=8,
    ).map(lambda v: repr(v).encode()),
)


def processor() -> DeliveryProcessor:
    """The consumer's decoder for the diag queue; what it would settle with is not needed."""
    return DeliveryProcessor(
        "diag",
        REGISTRY.for_queue(CATALOG, "diag"),
        settler=cast(Any, None),
        settings=make_settings(),
        executor=cast(Any, None),
        resources=Resources(),
        worker="property-test",
    )


DIAG = processor()


def mostly(valid: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` three times in four: so that many deliveries get past the first check."""
    return st.sampled_from([True, True, True, False]).flatmap(lambda v: valid if v else other)


def test_any_delivery_decodes_or_raises_decode_error() -> None:
    outcomes: Counter[str] = Counter()

    @PROPERTIES
    @given(
        headers=garbled_headers(),
        content_type=mostly(st.just(CONTENT_TYPE), st.none() | short_text),
        message_id=mostly(st.from_regex(TASK_ID, fullmatch=True), st.none() | short_text),
        type_=mostly(st.none() | st.just("diag.echo"), short_text),
        body=payload_bodies,
        priority=st.none() | st.integers(0, 255),
    )
    def decode(
        headers: dict[str, Any],
        content_type: str | None,
        message_id: str | None,
        type_: str | None,
        body: bytes,
        priority: int | None,
    ) -> None:
        message = aio_pika.Message(
            body,
            headers=headers,
            content_type=content_type,
            message_id=message_id,
            type=type_,
            priority=priority,
        )
        delivery = over_the_wire(message)
        try:
            envelope = Envelope.from_delivery(delivery)
            DIAG.decode(envelope, delivery.body)
            outcomes["decoded"] += 1
        except DecodeError as exc:
            assert exc.reason and str(exc)  # the dead letter's reason and error headers
            outcomes[exc.reason] += 1

    decode()
    # The generator reached every stage: refused early, late, and not at all.
    assert {"decoded", "wrong-content-type", "bad-header", "not-json"} <= set(outcomes), outcomes


# --- 4. what the gateway accepts, the envelope carries faithfully ----------------------------
@PROPERTIES
@given(
    timeout=st.none() | st.floats(min_value=0, max_value=300, exclude_min=True),
    attempts=st.none() | st.integers(1, 25),
    priority=st.integers(0, 9),
)
def test_every_accepted_submission_makes_an_envelope_that_decodes(
    timeout: float | None, attempts: int | None, priority: int
) -> None:
    """A submission answered ``202`` must decode at the consumer: else it is dead-lettered
    undecodable and its record stays ``queued`` for good (a timeout under half a millisecond
    once rounded to a zero ``warren-timeout-ms``)."""
    body: dict[str, Any] = {"type": "diag.echo", "payload": {"message": "m"}, "priority": priority}
    body |= {"timeout_seconds": timeout} if timeout is not None else {}
    body |= {"max_attempts": attempts} if attempts is not None else {}
    try:
        valid = validate(body, CATALOG)
    except Problem as refused:
        assert refused.status == 422
        return
    envelope = build_envelope(valid, "client")
    decoded = Envelope.from_delivery(over_the_wire(envelope.to_message()))
    assert decoded.timeout_seconds > 0 and decoded.max_attempts == valid.max_attempts
