"""Warren's one error hierarchy.

Two kinds live here: failures of the pipeline itself (``WarrenError`` and its
children), and the control signals a handler raises to steer its own task
(``Retry``, ``Permanent``). Any other exception from a handler counts as a
transient failure and is retried while attempts remain.
"""

from __future__ import annotations


class WarrenError(Exception):
    """Base of every error Warren raises on purpose."""


class ConfigurationError(WarrenError):
    """Start-up refused: the settings, catalog and handlers do not fit together."""


class PublishError(WarrenError):
    """The broker did not confirm a publish (down, nacked, unroutable or timed out).

    A publish that timed out may still have been enqueued; callers treat it as
    "unknown", never as "not sent".
    """


class QueueFull(PublishError):
    """The broker refused the message (a nack): the queue is at its ``x-max-length``.

    In Warren's topology a nack comes from a bounded work queue
    (``x-overflow=reject-publish``): unlike a timeout, the message was certainly
    not enqueued, so the caller may say "try again later" with confidence.
    """


class DecodeError(WarrenError):
    """A delivery is not a Warren envelope we can run; it goes to the dead letters.

    ``reason`` is a short machine-readable code stored in the dead letter's
    headers (``not-json``, ``unknown-type`` …); the message is for humans.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Retry(Exception):
    """Raised by a handler to be run again after ``after`` seconds (rounded to a tier).

    Still bounded by the task's max attempts; ``after=None`` uses the backoff policy.
    """

    def __init__(self, after: float | None = None, reason: str = "retry requested") -> None:
        super().__init__(reason)
        self.after = after


class Permanent(Exception):
    """Raised by a handler when trying again cannot help; the task is dead-lettered now."""
