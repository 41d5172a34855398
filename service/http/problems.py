"""RFC 9457 problem responses: every gateway error is ``application/problem+json``.

Domain code raises ``Problem``; the gateway's middleware turns it (and aiohttp's own
HTTP errors, and anything unexpected) into a response (``answered``), so views stay linear.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Problem(Exception):
    """An HTTP error with a stable machine-readable ``code`` (also the end of ``type``).

    ``close_connection`` answers with ``Connection: close``: for an error raised before
    the body was read to its end, so the client does not reuse a connection whose
    request stream is out of step (aiohttp drains or drops it after the response).
    """

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str | None = None,
        headers: dict[str, str] | None = None,
        *,
        close_connection: bool = False,
        **extensions: Any,
    ) -> None:
        super().__init__(title)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.close_connection = close_connection
        self.extensions = extensions

    def body(self, instance: str | None = None) -> dict[str, Any]:
        """The problem+json document (also a batch item's ``problem``)."""
        body: dict[str, Any] = {
            "type": f"/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        body.update(self.extensions)
        return body

    def response(self, instance: str | None = None) -> web.Response:
        response = web.Response(
            status=self.status,
            body=orjson.dumps(self.body(instance)),
            content_type=PROBLEM_JSON,
            headers=self.headers,
        )
        if self.close_connection:  # the request body was not read to its end
            response.force_close()
        return response


def _from_http_exception(exc: web.HTTPException) -> Problem:
    headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
    code = exc.reason.lower().replace(" ", "-")
    detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else None
    return Problem(exc.status, code, exc.reason, detail, headers)


async def answered(request: web.Request, call: Awaitable[web.StreamResponse]) -> web.StreamResponse:
    """``call``'s response, or the problem+json of what it raised (a redirect still raises)."""
    try:
        return await call
    except Problem as problem:
        return problem.response(request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_exception(exc).response(request.path)
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return Problem(500, "internal-error", "Internal Server Error").response(request.path)
