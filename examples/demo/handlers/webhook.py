"""Handler of ``webhook.deliver``: POST a signed JSON event to a receiver's URL.

Receivers must be able to trust a request and to tell a retry from a new
event, so every request carries the task id and a timestamp, and an
HMAC-SHA256 over ``f"{timestamp}.".encode() + body``. ``sign`` and ``verify``
are small pure functions a receiver can copy verbatim; the body is serialized
once and exactly those bytes are signed and sent.

The receiver's answer decides the outcome: 2xx succeeds; 408, 425, 429 and 5xx
(and connection failures, timeouts) are temporary and retried — after the
receiver's ``Retry-After`` when a 429/503 gives one; a 3xx is refused because
redirects are not followed (a signed request must not wander to another host);
any other 4xx means the request itself is wrong and retrying cannot help.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp
import orjson

from examples.demo.settings import DemoSettings
from examples.demo.tasks import WebhookPayload, webhook_deliver
from warren import Permanent, Retry, TaskContext, handles

SIGNATURE_PREFIX = "sha256="
MAX_RESPONSE_BYTES = 64 * 1024  # read (and drop) at most this much of an answer
RETRYABLE_STATUSES = frozenset({408, 425, 429})
RETRY_AFTER_STATUSES = frozenset({429, 503})
USER_AGENT = "Warren-Webhook/1"


class WebhookError(Exception):
    """A delivery failed in a way the next attempt may not: retried by the consumer."""


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Warren-Signature`` header value of ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify(
    secret: bytes,
    timestamp: int,
    body: bytes,
    signature: str,
    *,
    max_age_seconds: float | None = 300.0,
    now: float | None = None,
) -> bool:
    """True if ``signature`` is ours for this body and timestamp (receiver side).

    ``max_age_seconds`` refuses old (replayed) requests; ``None`` skips that check.
    """
    if max_age_seconds is not None:
        age = (time.time() if now is None else now) - timestamp
        if abs(age) > max_age_seconds:
            return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


@handles(webhook_deliver)
async def deliver(payload: WebhookPayload, ctx: TaskContext) -> dict[str, int]:
    """POST the event once; return the receiver's status, or raise to retry or give up."""
    settings: DemoSettings = ctx.settings
    body = _body(payload, ctx.task_id)
    timestamp = int(time.time())
    secret = settings.webhook_signing_secret.get_secret_value().encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Warren-Task-Id": ctx.task_id,
        "X-Warren-Timestamp": str(timestamp),
        "X-Warren-Signature": sign(secret, timestamp, body),
    }
    timeout = aiohttp.ClientTimeout(total=settings.webhook_timeout_seconds)
    await ctx.resources.check_destination(str(payload.url))
    try:
        async with ctx.resources.http.post(
            str(payload.url), data=body, headers=headers, timeout=timeout, allow_redirects=False
        ) as response:
            await _discard_body(response)
            return classify(response.status, response.reason, response.headers.get("Retry-After"))
    except aiohttp.InvalidURL as exc:
        raise Permanent(f"invalid webhook URL: {exc}") from exc
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise WebhookError(f"webhook request failed: {type(exc).__name__}: {exc}") from exc


def _body(payload: WebhookPayload, task_id: str) -> bytes:
    document = {"event": payload.event, "task_id": task_id, "data": payload.data}
    try:
        return orjson.dumps(document)
    except orjson.JSONEncodeError as exc:  # e.g. an integer beyond 64 bits: never encodable
        raise Permanent(f"webhook data cannot be encoded as JSON: {exc}") from exc


async def _discard_body(response: aiohttp.ClientResponse) -> None:
    """Read a bounded part of the answer so a short one frees the connection for reuse.

    The status already decided the outcome: a body that breaks off or stalls
    must not turn a delivered event into a retry.
    """
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        await response.content.read(MAX_RESPONSE_BYTES)


def classify(status: int, reason: str | None, retry_after: str | None) -> dict[str, int]:
    """The outcome of an answer: a result for 2xx, else ``Retry``/``WebhookError``/``Permanent``."""
    described = f"webhook answered {status} {reason or ''}".rstrip()
    if 200 <= status < 300:
        return {"status": status}
    if status in RETRY_AFTER_STATUSES and (after := parse_retry_after(retry_after)) is not None:
        raise Retry(after=after, reason=f"{described}; Retry-After {after:g}s")
    if status in RETRYABLE_STATUSES or status >= 500:
        raise WebhookError(described)
    if 300 <= status < 400:
        raise Permanent(f"{described}: redirects are not followed")
    raise Permanent(described)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date), or None."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": RFC 5322 for "UTC, source unknown"
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
