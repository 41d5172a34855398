"""Structured logs: one JSON object per line, carrying the trace and task ids of the moment.

Task fields are bound for the duration of a delivery with ``bound_task`` (a
context variable, so concurrent deliveries never mix their ids); trace and
span ids come from the current OpenTelemetry span. ``WARREN_LOG_FORMAT=text``
gives the same fields in a line a person can read.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp.http_exceptions import HttpProcessingError
from opentelemetry import trace

from warren.service.settings import Settings

_task_fields: ContextVar[dict[str, Any] | None] = ContextVar("warren_task_fields", default=None)


class bound_task:
    """Every log line inside carries these fields (task_id, task_type, attempt, queue …)."""

    __slots__ = ("_fields", "_token")

    def __init__(self, **fields: Any) -> None:
        self._fields = {k: v for k, v in fields.items() if v is not None}

    def __enter__(self) -> None:
        self._token = _task_fields.set(self._fields)

    def __exit__(self, *_: object) -> None:
        _task_fields.reset(self._token)


def context_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {}
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        fields["trace_id"] = format(span_context.trace_id, "032x")
        fields["span_id"] = format(span_context.span_id, "016x")
    fields.update(_task_fields.get() or {})
    return fields


class JsonFormatter(logging.Formatter):
    def __init__(self, static: dict[str, Any]) -> None:
        super().__init__()
        self._static = static

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **self._static,
            **context_fields(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = context_fields()
        fields.pop("span_id", None)
        return line + "".join(f" {k}={v}" for k, v in fields.items())


def setup_logging(settings: Settings, component: str) -> None:
    """Configure the root logger once for this process (stderr, level and format from settings)."""
    handler = logging.StreamHandler(sys.stderr)
    static = {"component": component, "worker": settings.worker_name}
    handler.setFormatter(
        JsonFormatter(static) if settings.log_format == "json" else TextFormatter()
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    logging.getLogger("aiohttp.server").addFilter(quiet_client_errors)
    logging.getLogger("aiormq").setLevel(logging.WARNING)
    logging.getLogger("aio_pika").setLevel(logging.WARNING)


def quiet_client_errors(record: logging.LogRecord) -> bool:
    """aiohttp logs every request its parser refuses (a 400: oversized or broken headers) at
    ERROR with a traceback, so any client could flood the logs with false alarms: such a
    record becomes one INFO line. Everything else passes unchanged."""
    error = record.exc_info[1] if record.exc_info else None
    if isinstance(error, HttpProcessingError) and 400 <= (error.code or 0) < 500:
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.msg, record.args = "refused a malformed request (%d): %s", (error.code, error)
        record.exc_info = record.exc_text = None
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)
    return True
