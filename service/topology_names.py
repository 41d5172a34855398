"""Broker object names, made from a namespace in one place (``Names``), and the constants of
the delay ladder that those names and routing keys spell (see ``warren.service.topology``)."""

from __future__ import annotations

from dataclasses import dataclass

DELAY_LEVELS = 22
"""Levels of the delay ladder: delays up to 2^22 - 1 s (48.5 days) in whole seconds."""
MAX_DELAY_SECONDS = 2**DELAY_LEVELS - 1
CONTROL_DELAY_TAIL = "_control"  # no queue name starts with "_": delayed control messages


def tier_label(seconds: float) -> str:
    """A tier's name part: ``5s``, ``250ms``; stable for a given delay."""
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


@dataclass(frozen=True)
class Names:
    """The one place names are made from a namespace."""

    namespace: str

    @property
    def work_exchange(self) -> str:
        return f"{self.namespace}.tasks"

    @property
    def retry_exchange(self) -> str:
        return f"{self.namespace}.retry"

    @property
    def dead_exchange(self) -> str:
        return f"{self.namespace}.dead"

    @property
    def events_exchange(self) -> str:
        return f"{self.namespace}.events"

    @property
    def recorder_queue(self) -> str:
        """Every event, for the task store; durable, so events wait while no gateway runs."""
        return f"{self.namespace}.events.recorder"

    @property
    def control_exchange(self) -> str:
        return f"{self.namespace}.control"

    @property
    def control_stream(self) -> str:
        """A stream (non-destructive log) of control messages such as cancellations."""
        return f"{self.namespace}.control.log"

    def delay_exchange(self, level: int) -> str:
        """Level ``level`` of the delay ladder; the top one is where delayed tasks enter."""
        return f"{self.namespace}.delay.{level}"

    def delay_queue(self, level: int) -> str:
        """The TTL queue of a ladder level, named by its TTL: every message in it waits
        2^level seconds (``<ns>.delay.1s`` … ``<ns>.delay.2097152s``)."""
        return f"{self.namespace}.delay.{2**level}s"

    @property
    def delay_entry(self) -> str:
        return self.delay_exchange(DELAY_LEVELS - 1)

    @property
    def scheduler_leader(self) -> str:
        """Single-active-consumer queue: its one active consumer is the scheduler leader."""
        return f"{self.namespace}.scheduler.leader"

    @property
    def control_relay(self) -> str:
        """Delayed control messages, due: gateways relay them into the control stream (a
        broker dead-letters into no stream, so the ladder cannot reach it directly)."""
        return f"{self.namespace}.control.due"

    @property
    def delay_due(self) -> str:
        """Below level 0: routes a message whose delay is over to its work queue."""
        return f"{self.namespace}.delay.due"

    @staticmethod
    def delay_key(queue: str, seconds: int) -> str:
        """The routing key of a delay: its binary digits, most significant first, then the
        work queue (or ``CONTROL_DELAY_TAIL``); ``seconds`` within ``MAX_DELAY_SECONDS``."""
        if not 0 <= seconds <= MAX_DELAY_SECONDS:
            raise ValueError(f"a delay is 0 to {MAX_DELAY_SECONDS} s, not {seconds}")
        return ".".join([*format(seconds, f"0{DELAY_LEVELS}b"), queue])

    def work_queue(self, queue: str) -> str:
        return f"{self.namespace}.{queue}"

    def dead_queue(self, queue: str) -> str:
        return f"{self.namespace}.{queue}.dead"

    def retry_queue(self, queue: str, tier: float) -> str:
        return f"{self.namespace}.{queue}.retry.{tier_label(tier)}"

    @staticmethod
    def retry_key(queue: str, tier: float) -> str:
        return f"{queue}.{tier_label(tier)}"

    @staticmethod
    def event_key(queue: str, status: str) -> str:
        return f"{queue}.{status}"
