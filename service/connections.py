"""Broker connections: made until the broker answers, refused at once when no retry can help.

A broker that is not there yet (down, restarting, its port still closed) is
waited for: the gateway and consumers serve their probes meanwhile (``/readyz``
503) and are ready as soon as it answers, which is what an orchestrator
expects. A broker that *answers no* (wrong user or password, a vhost the user
may not open, a permission refused) will answer no again: that is a setting to
fix, raised at once as a one-line ``ConfigurationError`` naming it.

Once connected, aio-pika's robust connection reconnects by itself and
restores channels, QoS, declarations and consumers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from aio_pika.exceptions import AMQPError
from aiormq.exceptions import (
    AuthenticationError,
    ChannelAccessRefused,
    InvalidFrameError,
    ProbableAuthenticationError,
)

from warren.service import frames
from warren.service.errors import ConfigurationError
from warren.service.settings import Settings

log = logging.getLogger(__name__)

CONNECT_ERRORS = (AMQPError, ConnectionError, OSError, asyncio.TimeoutError)
FIRST_DELAY, MAX_DELAY = 0.2, 2.0  # seconds between attempts: a closed port costs nothing
WARN_EVERY = 30.0  # seconds between "still no broker" warnings
FIRST_ATTEMPT_SECONDS = 5.0  # how long BrokerLink.start waits for the broker before serving


def _drop_transport_errors(record: logging.LogRecord) -> bool:
    """aiormq logs every failed attempt as an ERROR; this module (or aio-pika's reconnect
    loop) already says it once, as a warning, so the duplicate is dropped."""
    return not record.getMessage().startswith("error when creating transport")


logging.getLogger("aiormq.connection").addFilter(_drop_transport_errors)


def where(settings: Settings) -> str:
    """``host:port/vhost`` of the broker URL, without its user and password (for logs)."""
    url = urlsplit(settings.broker_url)
    port: int | str
    try:
        port = url.port or 5672
    except ValueError:  # not a number: shown as written
        port = url.netloc.rpartition(":")[2]
    return f"{url.hostname}:{port}{url.path or '/'}"


def refusal(exc: BaseException, settings: Settings) -> ConfigurationError | None:
    """The one-line explanation of a broker error no retry can fix, else None."""
    if isinstance(exc, ConfigurationError):
        return exc
    user = urlsplit(settings.broker_url).username or "guest"
    at = f"the broker at {where(settings)}"
    if isinstance(exc, ProbableAuthenticationError | AuthenticationError):
        return ConfigurationError(
            f"{at} refused user {user!r} ({exc.args[0] if exc.args else exc}): "
            "check the user and password in WARREN_BROKER_URL"
        )
    if isinstance(exc, InvalidFrameError) and "Connection.OpenOk" in str(exc):
        return ConfigurationError(
            f"{at} refused to open the vhost for user {user!r}: check the vhost (the URL's "
            "path) in WARREN_BROKER_URL and the user's permissions on it"
        )
    if isinstance(exc, ChannelAccessRefused):
        return ConfigurationError(
            f"{at} refused user {user!r}: {exc.args[-1] if exc.args else exc}; give it what "
            "`warren topology permissions` prints, or set WARREN_DECLARE_TOPOLOGY=false "
            "and apply the topology as the deploy user"
        )
    return None


async def connect(
    settings: Settings,
    name: str,
    within: float | None = None,
    on_retry: Callable[[], None] | None = None,
) -> AbstractRobustConnection:
    """A robust connection, once the broker answers: within ``within`` seconds, or ever.

    An unreachable broker is retried (``on_retry`` is told of each failed attempt);
    a refusal raises ``ConfigurationError`` at once, as does running out of ``within``.
    A message whose properties the client library cannot decode no longer drops the
    connection (``warren.service.frames``).
    """
    frames.install()
    loop = asyncio.get_running_loop()
    started = loop.time()
    warned_at: float | None = None
    delay = FIRST_DELAY
    while True:
        try:
            return await _connect_once(settings, name)
        except CONNECT_ERRORS as exc:
            if (refused := refusal(exc, settings)) is not None:
                raise refused from None
            waited = loop.time() - started
            if within is not None and waited + delay > within:
                raise ConfigurationError(
                    f"no broker at {where(settings)} after {within:g}s ({exc}): start it, "
                    "or check WARREN_BROKER_URL"
                ) from None
            if warned_at is None or waited - warned_at >= WARN_EVERY:
                _still_waiting(settings, name, exc, None if warned_at is None else waited)
                warned_at = waited
            if on_retry is not None:
                on_retry()
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_DELAY)


def _still_waiting(settings: Settings, name: str, exc: BaseException, waited: float | None) -> None:
    """One warning when the wait starts, then one every ``WARN_EVERY`` seconds: not one
    per attempt, which would bury the log of a process left waiting for hours."""
    since = "no broker yet" if waited is None else f"still no broker after {waited:.0f}s"
    log.warning("%s: %s at %s (%s): retrying until it answers", name, since, where(settings), exc)


async def _connect_once(settings: Settings, name: str) -> AbstractRobustConnection:
    """One attempt; a failed or cancelled one is closed, or its reconnect task outlives it
    (a SIGTERM during start-up would then hang the process at exit)."""
    try:
        url = aio_pika.connection.make_url(settings.broker_url)
    except ValueError as exc:
        raise ConfigurationError(f"WARREN_BROKER_URL is not an AMQP URL: {exc}") from None
    connection = aio_pika.RobustConnection(
        url, client_properties={"connection_name": f"warren-{name}"}
    )
    # Shielded: cancelling us must not cancel the attempt's own future inside aio-pika, or
    # its reconnect loop misses the close and sleeps a whole reconnect interval first.
    connecting = asyncio.ensure_future(connection.connect(timeout=settings.connect_timeout_seconds))
    try:
        await asyncio.shield(connecting)
    except BaseException:
        connecting.add_done_callback(_retrieve)  # its outcome no longer matters
        await asyncio.shield(connection.close())
        raise
    return connection


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class BrokerLinks:
    """The background links of one process (the gateway's publisher and recorder): the first
    refusal any of them meets is the process's, raised by ``failed``."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._failed = asyncio.Event()
        self.error: Exception | None = None

    def link(
        self, name: str, on_connected: Callable[[AbstractRobustConnection], Awaitable[None]]
    ) -> BrokerLink:
        return BrokerLink(self._settings, name, on_connected, self._fail)

    def _fail(self, exc: Exception) -> None:
        if self.error is None:
            self.error = exc
            self._failed.set()

    async def failed(self) -> None:
        """Return never, or raise what keeps this process from its broker (a refusal)."""
        await self._failed.wait()
        assert self.error is not None
        raise self.error


class BrokerLink:
    """A robust connection a process serves without: made in the background until the broker
    answers, then set up by ``on_connected`` (open channels, declare, consume).

    ``start`` returns once linked, or once the first attempt failed (at most
    ``FIRST_ATTEMPT_SECONDS``): with the broker up, a process is ready the moment it
    serves; without, it serves its probes at once and links up when the broker answers.
    A refusal found later is handed to ``on_failure`` (``BrokerLinks``).
    """

    def __init__(
        self,
        settings: Settings,
        name: str,
        on_connected: Callable[[AbstractRobustConnection], Awaitable[None]],
        on_failure: Callable[[Exception], None] | None = None,
    ) -> None:
        self._settings = settings
        self.name = name
        self._on_connected = on_connected
        self._on_failure = on_failure
        self.connection: AbstractRobustConnection | None = None
        self.error: Exception | None = None
        self._attempted = asyncio.Event()  # linked, or an attempt failed
        self._task: asyncio.Task[None] | None = None

    async def start(self, within: float = FIRST_ATTEMPT_SECONDS) -> None:
        """Start linking; wait for the first attempt. A refusal by then raises."""
        self._task = asyncio.create_task(self._link(), name=f"broker-link-{self.name}")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._attempted.wait()
        if self.error is not None:
            raise self.error

    async def _link(self) -> None:
        try:
            await self._link_until_set_up()
        except Exception as exc:  # a refusal, or a bug: either way, this process cannot go on
            self._fail(exc)

    async def _link_until_set_up(self) -> None:
        delay = FIRST_DELAY
        while True:
            connection = await connect(self._settings, self.name, on_retry=self._attempted.set)
            try:
                await self._on_connected(connection)
            except Exception as exc:
                await _close_quietly(connection)
                if refusal(exc, self._settings) or not isinstance(exc, CONNECT_ERRORS):
                    raise
                log.warning("%s: setting up failed (%r): retrying", self.name, exc)
                self._attempted.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_DELAY)
                continue
            except BaseException:  # cancelled: never leave a connection reconnecting behind
                await asyncio.shield(_close_quietly(connection))
                raise
            self.connection = connection
            self._attempted.set()
            log.info("%s: connected to the broker at %s", self.name, where(self._settings))
            return

    def _fail(self, exc: Exception) -> None:
        self.error = refusal(exc, self._settings) or exc
        self._attempted.set()
        if self._on_failure is not None:
            self._on_failure(self.error)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.connection is not None:
            await _close_quietly(self.connection)


async def _close_quietly(connection: AbstractRobustConnection) -> None:
    """Close, bounded: a connection lost or blocked must not hold a shutdown."""
    try:
        async with asyncio.timeout(5):
            await connection.close()
    except Exception as exc:  # the broker requeues whatever it left unacked
        log.warning("closing a broker connection failed: %r", exc)
