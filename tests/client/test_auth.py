"""The client's token against a gateway with API keys on: 401 and 403 arrive typed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aio_pika.abc import AbstractChannel
from aiohttp.test_utils import TestServer

from tests.test_auth import TOKENS, keyed_settings
from warren.client import AsyncClient, Forbidden, NotFound, Unauthorized
from warren.service.http.app import create_app
from warren.service.settings import Settings

ECHO = {"message": "hi"}


@pytest.fixture
async def keyed_url(settings: Settings, channel: AbstractChannel) -> AsyncIterator[str]:
    async with TestServer(create_app(keyed_settings(settings))) as server:
        yield str(server.make_url("")).rstrip("/")


async def test_the_token_is_the_clients_identity(keyed_url: str) -> None:
    async with AsyncClient(keyed_url) as anonymous:
        with pytest.raises(Unauthorized) as missing:
            await anonymous.submit("diag.echo", ECHO)
    assert (missing.value.status, missing.value.code) == (401, "missing-credentials")
    async with AsyncClient(keyed_url, token="wrn_shop_" + "0" * 43) as wrong:
        with pytest.raises(Unauthorized) as invalid:
            await wrong.list_page()
    assert invalid.value.code == "invalid-token"

    async with AsyncClient(keyed_url, token=TOKENS["shop"]) as shop:
        accepted = await shop.submit("diag.echo", ECHO)
        assert (await shop.get(accepted.id)).submitter == "shop"
    async with AsyncClient(keyed_url, token=TOKENS["reader"]) as reader:
        with pytest.raises(Forbidden) as forbidden:
            await reader.submit("diag.echo", ECHO)
        assert forbidden.value.code == "forbidden"
        with pytest.raises(NotFound):  # another client's task
            await reader.get(accepted.id)
