"""API keys: who a request comes from, and what it may do.

A client sends ``Authorization: Bearer wrn_<id>_<secret>``. The gateway keeps
only each key's SHA-256 (``WARREN_API_KEYS``, ``WARREN_API_KEYS_FILE``), finds
the key by the id inside the token and compares hashes in constant time. The
key's id is the client identity: it becomes the task's ``submitter``, scopes
idempotency keys and decides which tasks the client sees.

Scopes: ``submit`` (``POST /v1/tasks``, cancel own tasks), ``read`` (the
``GET`` task routes, own tasks), ``admin`` (read and cancel every client's
tasks). Probes, the scrape and the API description stay open (``OPEN_PATHS``):
orchestrators and Prometheus have no key, and they reveal no task.

With ``WARREN_AUTH_DISABLED`` every caller is trusted as before keys existed:
it names itself in ``X-Warren-Client`` and sees every task.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from warren.service.contracts import Catalog
from warren.service.errors import ConfigurationError
from warren.service.http.problems import Problem
from warren.service.metrics import REQUESTS_REFUSED
from warren.service.settings import Settings

log = logging.getLogger(__name__)

Scope = Literal["submit", "read", "admin"]
SCOPES: tuple[Scope, ...] = ("submit", "read", "admin")
KEY_ID = r"[A-Za-z0-9][A-Za-z0-9.-]{0,62}"  # no "_": it ends the id inside a token
TOKEN = re.compile(rf"^wrn_({KEY_ID})_([A-Za-z0-9_-]{{20,200}})$")
ANONYMOUS = "anonymous"
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})

# What `warren dev` configures when no key is set: published in the README, so local only.
DEV_TOKEN = "wrn_dev_local-only-not-a-secret-0000000000"


class ApiKey(BaseModel):
    """One configured key: an identity, the hash of its token, and what it may do."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=f"^{KEY_ID}$")
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: frozenset[Scope] = Field(min_length=1)
    types: frozenset[str] | None = None  # task types it may submit; None = every type
    rate_limit_per_second: float | None = Field(None, ge=0)
    rate_limit_burst: int | None = Field(None, ge=1)


API_KEYS = TypeAdapter(list[ApiKey])


def hash_token(token: str) -> str:
    """SHA-256, not a slow KDF: a token carries 256 random bits, so no dictionary or
    brute-force attack on its hash is feasible, and a per-request hash must be cheap.
    (Slow KDFs exist for low-entropy passwords.)"""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(key_id: str) -> str:
    return f"wrn_{key_id}_{secrets.token_urlsafe(32)}"


DEV_KEY = ApiKey(id="dev", token_sha256=hash_token(DEV_TOKEN), scopes=frozenset(SCOPES), types=None)


@dataclass(frozen=True)
class Client:
    """Who a request comes from. ``sees_all``: admin, or anybody with authentication off."""

    id: str
    scopes: frozenset[Scope]
    types: frozenset[str] | None
    sees_all: bool
    limit_key: str  # whose rate-limit budget the request spends
    key: ApiKey | None = None

    def may_see(self, submitter: str | None) -> bool:
        return self.sees_all or submitter == self.id


CLIENT = web.RequestKey("client", Client)


# --- configuration ------------------------------------------------------------


def load_keys(settings: Settings, catalog: Catalog) -> dict[str, ApiKey]:
    """Every configured key by id; a loud ``ConfigurationError`` for anything wrong."""
    sources = [("WARREN_API_KEYS", settings.api_keys)]
    if settings.api_keys_file is not None:
        try:
            sources.append((str(settings.api_keys_file), settings.api_keys_file.read_text()))
        except OSError as exc:
            raise ConfigurationError(f"WARREN_API_KEYS_FILE cannot be read: {exc}") from None
    keys: dict[str, ApiKey] = {}
    for source, text in sources:
        for key in _parse(source, text):
            if key.id in keys:
                raise ConfigurationError(f"{source}: API key id {key.id!r} is configured twice")
            if key.types is not None and (unknown := key.types - set(catalog)):
                raise ConfigurationError(
                    f"{source}: API key {key.id!r} names unknown task types {sorted(unknown)}"
                )
            keys[key.id] = key
    return keys


def _parse(source: str, text: str) -> list[ApiKey]:
    """Errors name the field, never the value: a token pasted by mistake stays out of logs."""
    try:
        return API_KEYS.validate_json(text or "[]")
    except ValidationError as exc:
        where = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False)
        )
        raise ConfigurationError(f"{source} is not a valid list of API keys: {where}") from None


@dataclass(frozen=True)
class Authenticator:
    """The configured keys (empty with authentication off); built once per gateway."""

    enabled: bool
    keys: dict[str, ApiKey]

    @classmethod
    def from_settings(cls, settings: Settings, catalog: Catalog) -> Authenticator:
        if settings.auth_disabled:
            log.warning(
                "authentication is disabled (WARREN_AUTH_DISABLED): every caller is trusted, "
                "sees every task and names itself in X-Warren-Client; use on a trusted "
                "network only"
            )
            return cls(False, {})
        keys = load_keys(settings, catalog)
        if not keys:
            raise ConfigurationError(
                "authentication is on but no API key is configured: set WARREN_API_KEYS or "
                "WARREN_API_KEYS_FILE (make a key with `warren keys new`), or set "
                "WARREN_AUTH_DISABLED=true on a trusted network"
            )
        if keys.get(DEV_KEY.id) == DEV_KEY:
            log.warning("the dev-only API key is configured: its token is public (README)")
        log.info("authentication on: %d API keys (%s)", len(keys), ", ".join(sorted(keys)))
        return cls(True, keys)

    def verify(self, token: str) -> ApiKey | None:
        """The key this token belongs to, else None.

        Found by the id inside the token, so the time taken depends on no other key;
        an unknown id is compared against a dummy hash, so it costs what a wrong
        secret costs.
        """
        match = TOKEN.match(token)
        key = self.keys.get(match.group(1)) if match else None
        expected = key.token_sha256 if key is not None else _DUMMY_HASH
        if hmac.compare_digest(hash_token(token), expected) and key is not None:
            return key
        return None

    def client(self, request: web.Request) -> Client:
        """The request's client, or a 401."""
        if not self.enabled:
            return _trusted_client(request)
        header = request.headers.get("Authorization")
        if header is None:
            raise _unauthenticated("missing-credentials", "send Authorization: Bearer <API key>")
        scheme, _, token = header.strip().partition(" ")
        key = self.verify(token.strip()) if scheme.lower() == "bearer" else None
        if key is None:
            raise _unauthenticated("invalid-token", "the API key is not valid", invalid=True)
        return Client(
            id=key.id,
            scopes=key.scopes,
            types=key.types,
            sees_all="admin" in key.scopes,
            limit_key=key.id,
            key=key,
        )


_DUMMY_HASH = hash_token(secrets.token_urlsafe(32))


def _trusted_client(request: web.Request) -> Client:
    """Authentication off: the identity a client claims, its budget that or its address."""
    value = request.headers.get("X-Warren-Client", "").strip()
    named = value[:200] if value and value.isprintable() else None
    return Client(
        id=named or ANONYMOUS,
        scopes=frozenset(SCOPES),
        types=None,
        sees_all=True,
        limit_key=f"client:{named}" if named else f"peer:{request.remote}",
    )


# --- what each route needs ------------------------------------------------------

# Any one of the scopes will do; routes not listed need a valid key, no particular scope.
ROUTE_SCOPES: dict[tuple[str, str], frozenset[Scope]] = {
    ("POST", "/v1/tasks"): frozenset({"submit"}),
    ("POST", "/v1/tasks/batch"): frozenset({"submit"}),
    ("GET", "/v1/tasks"): frozenset({"read", "admin"}),
    ("GET", "/v1/tasks/{id}"): frozenset({"read", "admin"}),
    ("GET", "/v1/tasks/{id}/events"): frozenset({"read", "admin"}),
    ("DELETE", "/v1/tasks/{id}"): frozenset({"submit", "admin"}),
    ("GET", "/v1/queues"): frozenset({"read", "admin"}),
    ("GET", "/v1/console/events"): frozenset({"read", "admin"}),
    ("GET", "/v1/dead-letters"): frozenset({"read", "admin"}),
    ("GET", "/v1/dead-letters/{id}"): frozenset({"read", "admin"}),
    ("POST", "/v1/dead-letters/replay"): frozenset({"admin"}),
    ("POST", "/v1/dead-letters/discard"): frozenset({"admin"}),
}


def required_scopes(request: web.Request) -> frozenset[Scope]:
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else request.path
    method = "GET" if request.method == "HEAD" else request.method
    return ROUTE_SCOPES.get((method, path), frozenset())


def authorize_type(request: web.Request, task_type: str) -> None:
    """403 unless this client may submit ``task_type``: before any claim or publish."""
    client = request[CLIENT]
    if client.types is not None and task_type not in client.types:
        REQUESTS_REFUSED.add(1, {"reason": "forbidden-type"})
        raise Problem(
            403,
            "forbidden-type",
            "Forbidden",
            f"this API key may not submit {task_type!r}",
        )


def is_console_asset(path: str) -> bool:
    """The web console's page and assets: open, as they hold no data (its API calls are not)."""
    return path == "/console" or path.startswith("/console/")


def admit(authenticator: Authenticator, request: web.Request) -> Client | None:
    """The request's client, kept as ``request[CLIENT]``; a 401 or 403 for a caller without
    the scope its route needs; None for the open paths, which need no key."""
    if request.path in OPEN_PATHS or is_console_asset(request.path):
        return None
    client = authenticator.client(request)
    needed = required_scopes(request)
    if needed and not needed & client.scopes:
        REQUESTS_REFUSED.add(1, {"reason": "forbidden"})
        wanted = " or ".join(sorted(needed))
        raise Problem(
            403,
            "forbidden",
            "Forbidden",
            f"this API key lacks the scope {wanted}",
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{wanted}"'},
        )
    request[CLIENT] = client
    return client


def _unauthenticated(code: str, detail: str, *, invalid: bool = False) -> Problem:
    REQUESTS_REFUSED.add(1, {"reason": code})
    challenge = 'Bearer realm="warren"' + (', error="invalid_token"' if invalid else "")
    return Problem(401, code, "Unauthorized", detail, headers={"WWW-Authenticate": challenge})
