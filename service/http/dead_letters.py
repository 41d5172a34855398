"""The dead-letters API: browse (``read``: one's own; ``admin``: all), replay and discard
(``admin``).

``dead_letters`` is a ``cleanup_ctx`` resource added after the task store: it
runs the keeper (``warren.service.dead_keeper``) on a broker connection of its
own, whose connection the queues API also uses for its passive declares.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import orjson
from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from warren.service.dead_keeper import DeadLetterKeeper
from warren.service.dead_replay import Selection, discard, replay
from warren.service.http.auth import CLIENT
from warren.service.http.keys import BROKER, CATALOG, PUBLISHER, SETTINGS
from warren.service.http.problems import Problem
from warren.service.http.task_reads import _name, _since, bad_param, float_param
from warren.service.http.task_records import json_response
from warren.service.http.task_store import STORE, store_problem
from warren.service.store.db import StoreUnavailable
from warren.service.store.dead import DeadLetterStore, DeadQuery, decode_dead_cursor

KEEPER = web.AppKey("dead_letter_keeper", DeadLetterKeeper)
DEAD_STORE = web.AppKey("dead_letter_store", DeadLetterStore)
MAX_PAGE = 500
MAX_IDS = 10_000
NAME = r"^[A-Za-z0-9_.:-]{1,200}$"
_NAME_RE = re.compile(NAME)
LetterId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


async def dead_letters(app: web.Application) -> AsyncIterator[None]:
    """The keeper for the app's life, on its own broker connection."""
    store = DeadLetterStore(app[STORE].db)
    keeper = DeadLetterKeeper(store, app[SETTINGS], app[CATALOG].queues)
    link = app[BROKER].link("gateway-dead-letters", keeper.start)
    try:
        await link.start()
        app[DEAD_STORE], app[KEEPER] = store, keeper
        yield
    finally:
        await keeper.close()
        await link.close()


def add_dead_letter_routes(app: web.Application) -> None:
    app.cleanup_ctx.append(dead_letters)
    app.router.add_get("/v1/dead-letters", list_dead_letters)
    app.router.add_post("/v1/dead-letters/replay", replay_dead_letters)
    app.router.add_post("/v1/dead-letters/discard", discard_dead_letters)
    app.router.add_get("/v1/dead-letters/{id}", get_dead_letter)


class DeadFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue: str | None = Field(None, pattern=NAME)
    type: str | None = Field(None, pattern=NAME)
    reason: str | None = Field(None, pattern=NAME)
    since: AwareDatetime | None = None


class SelectionBody(BaseModel):
    """``{"ids": [...]}`` or ``{"filter": {...}}`` (an empty filter: every dead letter)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    ids: list[LetterId] | None = Field(None, max_length=MAX_IDS)
    filter_: DeadFilter | None = Field(None, alias="filter")


async def list_dead_letters(request: web.Request) -> web.Response:
    """``GET /v1/dead-letters?queue=&type=&reason=&since=&limit=&cursor=``: newest first."""
    query = _query(request)
    try:
        items, cursor = await request.app[DEAD_STORE].page(query)
    except StoreUnavailable as exc:
        raise store_problem(exc) from None
    return json_response({"items": [x.to_json() for x in items], "next_cursor": cursor})


async def get_dead_letter(request: web.Request) -> web.Response:
    """``GET /v1/dead-letters/{id}``: one dead letter with its payload and headers."""
    letter_id = request.match_info["id"]
    try:
        letter = await request.app[DEAD_STORE].get(letter_id)
    except StoreUnavailable as exc:
        raise store_problem(exc) from None
    if letter is None or not request[CLIENT].may_see(letter.submitter):
        raise Problem(404, "not-found", "Not Found", f"no dead letter {letter_id[:64]!r}")
    return json_response(letter.to_json(payload=True))


async def replay_dead_letters(request: web.Request) -> web.Response:
    """``POST /v1/dead-letters/replay``: each selected letter re-published (confirmed) under
    its task id as attempt n+1, then removed; ``{"replayed": n}``."""
    selection = await _selection(request)
    app = request.app
    try:
        n = await replay(app[DEAD_STORE], app[STORE], app[PUBLISHER], selection)
    except StoreUnavailable as exc:
        raise store_problem(exc) from None
    return json_response({"replayed": n})


async def discard_dead_letters(request: web.Request) -> web.Response:
    """``POST /v1/dead-letters/discard``: the selected letters deleted; ``{"discarded": n}``."""
    selection = await _selection(request)
    try:
        n = await discard(request.app[DEAD_STORE], selection)
    except StoreUnavailable as exc:
        raise store_problem(exc) from None
    return json_response({"discarded": n})


def _query(request: web.Request) -> DeadQuery:
    params = request.query
    cursor = _cursor(params.get("cursor") or None)
    return DeadQuery(
        queue=_name(params.get("queue"), "queue", _NAME_RE, "a queue name"),
        type=_name(params.get("type"), "type", _NAME_RE, "a task type name"),
        reason=_name(params.get("reason"), "reason", _NAME_RE, "a dead-letter reason"),
        since=_since(params.get("since")),
        submitter=None if request[CLIENT].sees_all else request[CLIENT].id,
        limit=int(float_param(request, "limit", 50, 1, MAX_PAGE)),
        cursor=cursor,
    )


async def _selection(request: web.Request) -> Selection:
    try:
        raw: Any = orjson.loads(await request.read())
        body = SelectionBody.model_validate(raw)
    except orjson.JSONDecodeError:
        raise Problem(400, "malformed-json", "Bad Request", "the body is not JSON") from None
    except ValidationError as exc:
        errors = [
            {"loc": ["body", *map(str, e["loc"])], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        raise Problem(422, "invalid-selection", "Unprocessable Content", errors=errors) from None
    if (body.ids is None) == (body.filter_ is None):
        raise Problem(422, "invalid-selection", "Unprocessable Content", "give ids or filter")
    if body.ids is not None:
        return Selection(ids=tuple(body.ids))
    f = body.filter_ or DeadFilter()
    return Selection(query=DeadQuery(queue=f.queue, type=f.type, reason=f.reason, since=f.since))


def _cursor(raw: str | None) -> tuple[datetime, str] | None:
    if raw is None:
        return None
    try:
        return decode_dead_cursor(raw)
    except ValueError:
        raise bad_param("cursor", "a next_cursor of an earlier page") from None
