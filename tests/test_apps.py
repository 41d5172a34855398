"""A user's own app, outside the repository, run by ``warren gateway --app`` and ``consume --app``.

The app is written to a temporary directory as a user would write it: a contract
module that imports only ``warren`` and pydantic, and a handler module with a
plain handler. The gateway and the consumer are real processes on the real
broker; the task is submitted over HTTP and read back from the task API.
"""

from __future__ import annotations

import asyncio
import signal
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aio_pika.abc import AbstractRobustConnection

import warren
import warren.client
from tests.conftest import Spawn
from tests.demo import CATALOG
from tests.processes import REPO, Child, free_port, ready
from warren.service import topology
from warren.service.apps import App, load_app
from warren.service.errors import ConfigurationError
from warren.service.settings import Settings

pytestmark = pytest.mark.slow

CONTRACTS = """
import warren
from pydantic import Field

from shopapp.settings import ShopSettings


class Receipt(warren.Payload):
    order_id: int = Field(ge=1)
    email: str


send_receipt = warren.TaskContract("shop.send_receipt", "receipts", Receipt, max_attempts=3)
app = warren.App(contracts=[send_receipt], handlers=[{handlers}], settings=ShopSettings)
"""
SETTINGS = """
from pydantic_settings import BaseSettings, SettingsConfigDict


class ShopSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOP_")
    greeting: str = "thanks"
"""
HANDLERS = """
import warren

from shopapp.settings import ShopSettings
from shopapp.tasks import Receipt, send_receipt


@warren.handles(send_receipt)
async def send(payload: Receipt, ctx: warren.TaskContext) -> dict[str, object]:
    settings: ShopSettings = ctx.settings
    return {"order_id": payload.order_id, "said": f"{settings.greeting} {payload.email}"}
"""


def write_app(root: Path, *, with_handlers: bool = True) -> Path:
    """``shopapp`` under ``root``: contracts, settings and (unless told not) handlers."""
    package = root / "shopapp"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    listed = '"shopapp.handlers"' if with_handlers else ""
    (package / "tasks.py").write_text(textwrap.dedent(CONTRACTS.format(handlers=listed)))
    (package / "settings.py").write_text(textwrap.dedent(SETTINGS))
    (package / "handlers.py").write_text(textwrap.dedent(HANDLERS))
    return root


def start_app(spawn: Spawn, root: Path, *args: str, **overrides: object) -> Child:
    """``warren <args> --app shopapp.tasks`` with the app's directory importable."""
    return spawn(*args, "--app", "shopapp.tasks", PYTHONPATH=str(root), **overrides)


@pytest.fixture
async def receipts_queue(
    connection: AbstractRobustConnection, settings: Settings
) -> AsyncIterator[None]:
    """The app's own queue is not in the fixtures' topology: delete it afterwards too."""
    yield
    channel = await connection.channel()
    await topology.delete(channel, topology.build(settings, ["receipts"]))
    await channel.close()


@pytest.mark.usefixtures("receipts_queue")
async def test_an_app_outside_the_repository_runs_end_to_end(spawn: Spawn, tmp_path: Path) -> None:
    # Given a user's app package, run by a real gateway and a real consumer of its queue
    root = write_app(tmp_path / "project")
    port = free_port()
    gateway = start_app(spawn, root, "gateway", "--port", str(port))
    consumer = start_app(spawn, root, "consume", "--queue", "receipts", SHOP_GREETING="merci")
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        await ready(http, f"{base}/readyz", gateway, within=20)
    await consumer.wait_log("consuming")

    # When a task is submitted with the async client and another with the sync client
    async with warren.AsyncClient(base) as client:
        first = await client.submit("shop.send_receipt", {"order_id": 7, "email": "a@b.c"})
        done = await client.wait(first.id, timeout=20)

    def submit_and_wait() -> warren.client.TaskRecord:
        with warren.Client(base) as client:
            second = client.submit("shop.send_receipt", {"order_id": 8, "email": "d@e.f"})
            return client.wait(second.id, timeout=20)

    also_done = await asyncio.to_thread(submit_and_wait)

    # Then both succeeded with the handler's result, which used the app's own settings
    assert done.status == "succeeded", done
    assert done.result == {"order_id": 7, "said": "merci a@b.c"}
    assert also_done.status == "succeeded", also_done
    assert also_done.result == {"order_id": 8, "said": "merci d@e.f"}


async def test_a_contract_without_a_handler_stops_the_consumer_with_one_line(
    spawn: Spawn, tmp_path: Path
) -> None:
    root = write_app(tmp_path / "project", with_handlers=False)
    consumer = start_app(spawn, root, "consume", "--queue", "receipts")
    assert await consumer.exit_code(within=20) == 2
    lines = [line for line in consumer.log().splitlines() if line.strip()]
    assert lines == ["warren consume: queue 'receipts': no handler for shop.send_receipt"], (
        consumer.log()
    )


def test_the_gateway_side_imports_no_handler_module(tmp_path: Path) -> None:
    import sys

    root = write_app(tmp_path / "project")
    sys.path.insert(0, str(root))
    try:
        app = load_app("shopapp.tasks")
        assert set(app.catalog) >= {"shop.send_receipt", "diag.echo"}
        assert "shopapp.handlers" not in sys.modules
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m.startswith("shopapp")]:
            del sys.modules[name]


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("no_such_module.tasks", "cannot import 'no_such_module.tasks'"),
        ("warren.service.tasks", "has no warren.App named 'app'"),
        ("warren.service.tasks:BUILTIN_CATALOG", "has no warren.App named 'BUILTIN_CATALOG'"),
    ],
)
def test_an_app_that_cannot_be_loaded_is_one_clear_error(spec: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        load_app(spec)


def test_an_app_may_not_redefine_a_built_in_task_type() -> None:
    from warren.service.tasks import diag_echo

    with pytest.raises(ConfigurationError, match="defined twice"):
        App(contracts=[diag_echo])


@pytest.mark.usefixtures("receipts_queue")
async def test_two_apps_in_two_namespaces_run_side_by_side(
    spawn: Spawn, settings: Settings, connection: AbstractRobustConnection, tmp_path: Path
) -> None:
    # Given the user's app in the test's namespace and the example app in another, one broker
    root = write_app(tmp_path / "project")
    other = settings.model_copy(
        update={"namespace": f"{settings.namespace}-b", "store_url": f"sqlite:///{tmp_path}/b.db"}
    )
    ports = free_port(), free_port()
    mine = start_app(spawn, root, "gateway", "--port", str(ports[0]))
    start_app(spawn, root, "consume", "--queue", "diag")
    theirs = spawn(
        "gateway", "--port", str(ports[1]), namespace=other.namespace, store_url=other.store_url
    )
    their_consumer = spawn("consume", "--queue", "diag", namespace=other.namespace)
    try:
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        async with aiohttp.ClientSession() as http:
            await ready(http, f"{bases[0]}/readyz", mine, within=20)
            await ready(http, f"{bases[1]}/readyz", theirs, within=20)
        # When each is asked for what only it knows, and both for diag.echo
        async with warren.AsyncClient(bases[0]) as shop, warren.AsyncClient(bases[1]) as demo:
            with pytest.raises(warren.ValidationFailed):
                await shop.submit("email.send", {"to": ["a@b.c"], "subject": "s", "text": "t"})
            with pytest.raises(warren.ValidationFailed):
                await demo.submit("shop.send_receipt", {"order_id": 1, "email": "a@b.c"})
            echoes = [await c.submit("diag.echo", {"message": "ns"}) for c in (shop, demo)]
            # Then each namespace ran its own task, and neither sees the other's
            assert (await shop.wait(echoes[0].id, timeout=20)).status == "succeeded"
            assert (await demo.wait(echoes[1].id, timeout=20)).status == "succeeded"
            with pytest.raises(warren.NotFound):
                await shop.get(echoes[1].id)
    finally:  # stopped first: a live consumer declares its queue again once it is deleted
        for child in (theirs, their_consumer):
            child.send(signal.SIGTERM)
        for child in (theirs, their_consumer):  # awaited: the loop is not blocked meanwhile
            assert await child.exit_code(within=15) == 0, child.log()
        channel = await connection.channel()
        await topology.delete(channel, topology.build(other, [*CATALOG.queues, "receipts"]))
        await channel.close()


def test_no_core_module_imports_the_example_app() -> None:
    core = [*Path(REPO, "service").rglob("*.py"), *Path(REPO, "consumers").rglob("*.py")]
    core += Path(REPO, "warren").glob("*.py")
    importing = [
        p for p in core if "import examples" in p.read_text() or "from examples" in p.read_text()
    ]
    assert not importing
