"""Everything Warren puts on the broker is built here, and read back here.

* ``envelope``: a task as a message (work queues and retry tiers): ``Envelope``,
  ``to_message`` / ``from_delivery``;
* ``dead``: a dead letter, the delivery as it came plus why it is dead;
* ``events``: a lifecycle event, the store's ``Change`` encoded
  (``task_change`` builds one from an envelope, ``encode_event`` encodes it,
  ``event_of`` writes the same bytes straight from an envelope, as consumers do,
  ``decode_event`` reads one back);
* ``batches``: many events of one routing key in one message, as consumers
  publish them (``event_batch``; ``decode_events`` and ``event_objects`` read
  batches and single events alike);
* ``control``: commands from the gateway to every consumer (cancellations), and the
  scheduler leader's token.

Other modules build no message body, header or property of their own, and
decode none: the consumer's delivery path reads a delivery's ids only to label
its span and log lines (with the header names defined here), before it is
decoded. aio-pika appears here only as the message type a publish takes; a
delivery is read through ``delivered.Delivered``, which the consumer's own
deliveries and aio-pika's alike satisfy; publishing itself is
``warren.service.amqp``'s business.
"""

from warren.service.wire.batches import (
    DecodedEvents,
    decode_events,
    event_batch,
    event_objects,
    events_in,
)
from warren.service.wire.control import (
    ControlMessage,
    cancel_message,
    leader_token,
    parse_control,
    parse_leader_token,
    sync_message,
)
from warren.service.wire.dead import dead_letter_message
from warren.service.wire.envelope import (
    CONTENT_TYPE,
    Envelope,
    bounded,
    clean_traceparent,
    clean_tracestate,
)
from warren.service.wire.events import (
    EventMessage,
    decode_event,
    encode_event,
    event_message,
    event_of,
    task_change,
)

__all__ = [
    "CONTENT_TYPE",
    "ControlMessage",
    "DecodedEvents",
    "Envelope",
    "EventMessage",
    "bounded",
    "cancel_message",
    "clean_traceparent",
    "clean_tracestate",
    "dead_letter_message",
    "decode_event",
    "decode_events",
    "encode_event",
    "event_batch",
    "event_message",
    "event_objects",
    "event_of",
    "events_in",
    "leader_token",
    "parse_control",
    "parse_leader_token",
    "sync_message",
    "task_change",
]
