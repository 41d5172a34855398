"""From an HTTP request to a validated submission, or a precise 4xx problem.

Order of checks: content type and charset (415) → size (413: the declared
Content-Length, else while reading, counted after any Content-Encoding is
inflated) → a readable body (400) → JSON (400) → submission shape (422) →
known task type (422) → payload against the contract (422) → options within
the contract's caps (422). The options are strict (no ``"3"`` for ``3``).

"JSON" is stricter than what orjson alone accepts: a body nested deeper than
``MAX_JSON_DEPTH`` or with a repeated key in any object is a 400 too. Deep
nesting would otherwise pass the parser and fail later (pydantic refuses to
serialize past ~255 levels: a 500); a repeated key is a parser differential
(orjson keeps the last, other parsers the first) that lets a body mean one
thing to a proxy or WAF and another to Warren.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
)

from warren.service.contracts import TASK_NAME, Catalog, TaskContract
from warren.service.delays import MAX_DELAY_SECONDS, delay_until
from warren.service.http.keys import SETTINGS
from warren.service.http.problems import Problem

MAX_JSON_DEPTH = 64
"""Deepest accepted nesting of arrays and objects (``{}`` is 1), far below parser and
serializer limits so that the depth of a body never surfaces as a 500."""


class Submission(BaseModel):
    """The body of ``POST /v1/tasks``.

    Strict: ``"3"``, ``3.0`` or ``true`` are not a ``max_attempts`` or a ``priority`` and
    ``"30"`` is not a ``timeout_seconds`` (an int is, though); a client sending those has a
    bug better reported than guessed at. Payloads follow their own model's config.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    type: str = Field(max_length=81, pattern=TASK_NAME.pattern, description="Task type name.")
    payload: dict[str, Any] = Field(description="Checked against the task type's payload model.")
    max_attempts: int | None = Field(None, ge=1, description="Up to the type's cap.")
    # At least the envelope's resolution (warren-timeout-ms): a smaller timeout would round to
    # 0 ms, be accepted here and then be dead-lettered undecodable at the consumer.
    timeout_seconds: float | None = Field(
        None, ge=0.001, description="Seconds, from 0.001 up to the type's cap."
    )
    priority: int = Field(0, ge=0, le=9, description="AMQP priority (used by priority queues).")
    delay_seconds: float | None = Field(
        None,
        ge=0,
        description=f"Run no sooner than this (whole seconds, rounded up; "
        f"at most {MAX_DELAY_SECONDS}).",
    )
    run_at: AwareDatetime | None = Field(
        None, description="Run at this RFC 3339 time (with its offset), to the second."
    )

    @field_validator("run_at", mode="before")
    @classmethod
    def _rfc3339(cls, value: Any) -> Any:
        """Strict mode takes no text for a time: this field is text on the wire."""
        if not isinstance(value, str):
            return value if value is None else "not text"  # refused as not a datetime
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("run_at is not an RFC 3339 time") from None


@dataclass(frozen=True)
class ValidSubmission:
    contract: TaskContract[Any]
    payload_json: bytes
    max_attempts: int
    timeout_seconds: float
    priority: int
    delay_seconds: int = 0  # whole seconds on the delay ladder; 0: straight to the queue
    due_at: datetime | None = None  # a delayed task's due time
    when: str | None = None  # the delay as asked for, normalised: part of a key's fingerprint


def _invalid(errors: list[dict[str, Any]], detail: str) -> Problem:
    return Problem(422, "validation-failed", "Unprocessable Content", detail, errors=errors)


def _pydantic_errors(
    exc: ValidationError, prefix: tuple[str | int, ...] = ()
) -> list[dict[str, Any]]:
    """Field-level errors, without echoing input (it may hold secrets)."""
    return [
        {"loc": [*prefix, *e["loc"]], "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def _too_large(max_bytes: int) -> Problem:
    return Problem(
        413,
        "body-too-large",
        "Content Too Large",
        f"limit is {max_bytes} bytes",
        close_connection=True,
    )


def _bad_request(code: str, detail: str) -> Problem:
    return Problem(400, code, "Bad Request", detail)


async def read_json(request: web.Request, max_bytes: int) -> Any:
    if request.content_type != "application/json":
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported Media Type",
            "send the task as application/json",
        )
    charset = request.charset
    if charset and charset.lower() not in ("utf-8", "utf8"):
        raise Problem(415, "unsupported-charset", "Unsupported Media Type", "JSON must be UTF-8")
    if request.content_length is not None and request.content_length > max_bytes:
        raise _too_large(max_bytes)
    timeout = request.app[SETTINGS].http_body_timeout_seconds
    try:
        body = await _read_body(request, timeout)
    except TimeoutError:
        raise Problem(
            408,
            "body-timeout",
            "Request Timeout",
            f"the body did not arrive within {timeout:g} s",
            close_connection=True,
        ) from None
    except web.HTTPRequestEntityTooLarge:  # chunked, or a compressed body that inflates
        raise _too_large(max_bytes) from None
    except web.RequestPayloadError:  # broken chunked framing, gzip that is not gzip, …
        raise Problem(
            400,
            "unreadable-body",
            "Bad Request",
            "the body could not be read: is its Content-Encoding right?",
            close_connection=True,
        ) from None
    if len(body) > max_bytes:  # in case the app's client_max_size is larger
        raise _too_large(max_bytes)
    return parse_json(body)


async def _read_body(request: web.Request, timeout: float) -> bytes:
    """The body; aiohttp enforces ``client_max_size`` while reading. Bounded by ``timeout``
    (a client trickling its body holds a handler) unless it all arrived already, as a small
    body does with its headers: then there is nothing to wait for, and no timer to arm."""
    if request.content.is_eof():
        return await request.read()
    async with asyncio.timeout(timeout):
        return await request.read()


class _DuplicateKey(Exception):
    pass


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _DuplicateKey
    return obj


def _key_count(node: Any, depth: int = 1) -> int:
    """Keys of every object in a parsed array or object; a 400 past ``MAX_JSON_DEPTH``.

    Recursive (4x faster than an explicit stack here): the depth check bounds it at
    ``MAX_JSON_DEPTH`` frames, whatever depth orjson accepted (up to 1024).
    """
    if depth > MAX_JSON_DEPTH:
        raise _bad_request("json-too-deep", f"JSON nests deeper than {MAX_JSON_DEPTH} levels")
    keys = 0
    children: Any = node
    if type(node) is dict:
        keys = len(node)
        children = node.values()
    for child in children:
        kind = type(child)
        if kind is dict or kind is list:
            keys += _key_count(child, depth + 1)
    return keys


def _has_nul(node: Any) -> bool:
    """Any ``U+0000`` in a string or key (bounded: ``_key_count`` checked the depth first)."""
    if type(node) is str:
        return "\x00" in node
    if type(node) is dict:
        return any("\x00" in k or _has_nul(v) for k, v in node.items())
    if type(node) is list:
        return any(_has_nul(v) for v in node)
    return False


def parse_json(body: bytes) -> Any:
    """Strict JSON: orjson (UTF-8, no NaN/Infinity, no lone surrogates), bounded depth, unique
    keys, and no NUL character: ``"\\u0000"`` is valid JSON, but a NUL reaching a file path, an
    SMTP line or PostgreSQL text fails there, after the task was accepted.

    orjson silently keeps the last of repeated keys, so a second parse with the
    stdlib's ``object_pairs_hook`` finds them. It is skipped when it cannot find
    any: every key/value pair has one ``:`` outside strings, so when the body has
    no more ``:`` bytes than the parsed objects have keys, no key was repeated.
    Typical submissions without a ``:`` in a string value take the fast path.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _bad_request("malformed-json", f"body is not valid JSON: {exc}") from None
    keys = _key_count(data) if type(data) in (dict, list) else 0
    if b"\\u0000" in body and _has_nul(data):
        raise _bad_request("nul-character", "a string or key in the body contains U+0000")
    if keys != body.count(b":"):
        try:
            json.loads(body.decode("utf-8"), object_pairs_hook=_refuse_duplicates)
        except _DuplicateKey:
            raise _bad_request("duplicate-key", "an object in the body repeats a key") from None
        except (ValueError, RecursionError) as exc:  # unreachable after orjson: belt and braces
            raise _bad_request("malformed-json", f"body is not valid JSON: {exc}") from None
    return data


def validate(data: Any, catalog: Catalog) -> ValidSubmission:
    """The submission, checked against its task type's contract; a 422 naming what is wrong.

    A submission that names a known type and sends an object as its payload is validated
    in one call (``_typed``); if that fails, or for anything else, the submission and then
    its payload are validated apart, which words every refusal."""
    if (valid := _at_once(data, catalog)) is not None:
        return valid
    try:
        submission = Submission.model_validate(data)
    except ValidationError as exc:
        raise _invalid(_pydantic_errors(exc), "the submission is not valid") from None
    contract = catalog.get(submission.type)
    if contract is None:
        raise _invalid(
            [
                {
                    "loc": ["type"],
                    "msg": f"unknown task type {submission.type!r}",
                    "type": "unknown_type",
                }
            ],
            "see GET /v1/task-types",
        )
    try:
        payload = contract.adapter.validate_python(submission.payload)
    except ValidationError as exc:
        raise _invalid(_pydantic_errors(exc, ("payload",)), f"payload of {contract.name}") from None
    return _valid(submission, contract, payload)


def _at_once(data: Any, catalog: Catalog) -> ValidSubmission | None:
    """The submission validated in one call with its payload, or None: not that simple."""
    typed = _typed(data, catalog)
    if typed is None:
        return None
    contract, model = typed
    try:
        submission = model.model_validate(data)
    except ValidationError:
        return None  # worded by the two steps, as always
    return _valid(submission, contract, submission.payload)


_TYPED: dict[str, tuple[TaskContract[Any], type[Submission] | None]] = {}


def _typed(data: Any, catalog: Catalog) -> tuple[TaskContract[Any], type[Submission]] | None:
    """The contract of a submission naming a known type with an object as its payload, and
    ``Submission`` with that payload's model in place of the object, built once per type.

    It accepts exactly what the two steps accept: the payload is an object here as there
    (the model alone might take a list, or anything its own validators turn into one),
    and a nested model keeps its own config (the strict submission does not make it
    strict). None: validate in two steps."""
    if type(data) is not dict:
        return None
    name = data.get("type")
    if type(name) is not str or type(data.get("payload")) is not dict:
        return None
    contract = catalog.get(name)
    if contract is None:
        return None
    known = _TYPED.get(name)
    if known is None or known[0] is not contract:
        known = _TYPED[name] = (contract, _typed_model(contract))
    model = known[1]
    return None if model is None else (contract, model)


def _typed_model(contract: TaskContract[Any]) -> type[Submission] | None:
    try:
        return create_model(
            f"Submission_{contract.name.replace('.', '_')}",
            __base__=Submission,
            payload=(contract.payload, ...),
        )
    except Exception:  # a payload type pydantic cannot nest: the two steps still work
        return None


def _valid(submission: Submission, contract: TaskContract[Any], payload: Any) -> ValidSubmission:
    """The valid submission, once within its type's caps and the delay ladder's reach."""
    errors = []
    if (submission.max_attempts or 0) > contract.max_attempts_cap:
        errors.append(
            {
                "loc": ["max_attempts"],
                "type": "less_than_equal",
                "msg": f"at most {contract.max_attempts_cap} for {contract.name}",
            }
        )
    if (submission.timeout_seconds or 0) > contract.timeout_cap_seconds:
        errors.append(
            {
                "loc": ["timeout_seconds"],
                "type": "less_than_equal",
                "msg": f"at most {contract.timeout_cap_seconds} for {contract.name}",
            }
        )
    if errors:
        raise _invalid(errors, "options beyond the task type's caps")
    delay, due_at = _delay(submission)
    return ValidSubmission(
        delay_seconds=delay,
        due_at=due_at,
        when=asked_delay(submission),
        contract=contract,
        payload_json=contract.adapter.dump_json(payload),
        max_attempts=submission.max_attempts or contract.max_attempts,
        timeout_seconds=submission.timeout_seconds or contract.timeout_seconds,
        priority=submission.priority,
    )


def asked_delay(submission: Submission) -> str | None:
    """The delay as the client said it, normalised (``delay_seconds=N`` in whole seconds
    rounded up, or ``run_at=`` in UTC); None for "now". Two submissions under one
    ``Idempotency-Key`` are the same only if they say the same here: a fixed delay is the
    same delay later too, a due time the same instant."""
    if submission.run_at is not None:
        return f"run_at={submission.run_at.astimezone(UTC).isoformat()}"
    if submission.delay_seconds:
        return f"delay_seconds={math.ceil(submission.delay_seconds)}"
    return None


def _delay(submission: Submission) -> tuple[int, datetime | None]:
    """The delay in whole seconds and the due time; a 422 beyond the ladder's reach."""
    if submission.delay_seconds is not None and submission.run_at is not None:
        raise _invalid(
            [
                {
                    "loc": ["run_at"],
                    "msg": "give delay_seconds or run_at, not both",
                    "type": "conflict",
                }
            ],
            "one way to say when",
        )
    if submission.delay_seconds is None and submission.run_at is None:
        return 0, None  # now: the common case, no clock read
    now = datetime.now(UTC)
    due = submission.run_at
    if submission.delay_seconds is not None:
        due = now + timedelta(seconds=min(submission.delay_seconds, 2.0 * MAX_DELAY_SECONDS))
    if due is None:
        return 0, None
    seconds = delay_until(due, now)
    if seconds > MAX_DELAY_SECONDS:
        where = "run_at" if submission.run_at is not None else "delay_seconds"
        msg = f"at most {MAX_DELAY_SECONDS} s ahead"
        raise _invalid([{"loc": [where], "msg": msg, "type": "less_than_equal"}], msg)
    return seconds, (due if seconds else None)
