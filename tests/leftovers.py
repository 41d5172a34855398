"""What tests left on the shared broker: found by namespace at the end of the run, then removed.

Every test makes its own namespace (``make_settings``) and most delete their topology at
teardown (the ``channel`` fixture). A test that declares through another path (a child
process, a CLI command, a gateway it starts itself) can leave its queues behind on the
machine's broker, run after run. The namespaces a run made are known, so at the end of the
run each is probed (a passive declare of its work exchange: one round trip) and what exists
is deleted, and the tests that made them are named so the leak can be fixed where it starts.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterable

import aio_pika
from aiormq.exceptions import ChannelNotFoundEntity

from warren.service import topology
from warren.service.settings import Settings

MADE: dict[str, tuple[Settings, str]] = {}  # namespace -> its settings, the test that made it


def remember(settings: Settings) -> Settings:
    """Note a namespace the run made (its settings give its retry tiers), with the test now."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "(outside a test)").rsplit(" ", 1)[0]
    MADE[settings.namespace] = (settings, test)
    return settings


def sweep(broker_url: str, queues: Iterable[str]) -> None:
    """Delete every remembered namespace still on the broker; name the tests that left them."""
    if not MADE:
        return
    left = asyncio.run(_sweep(broker_url, tuple(queues)))
    if left:
        print(f"\ntests left {len(left)} namespaces on the broker (removed):", file=sys.stderr)
        for namespace in left:
            print(f"  {namespace}: {MADE[namespace][1]}", file=sys.stderr)


async def _sweep(broker_url: str, queues: tuple[str, ...]) -> list[str]:
    left = []
    connection = await aio_pika.connect(broker_url)
    async with connection:
        channel = await connection.channel()
        for namespace, (settings, _) in MADE.items():
            names = topology.Names(namespace)
            try:
                await channel.declare_exchange(names.work_exchange, passive=True)
            except ChannelNotFoundEntity:
                channel = await connection.channel()  # a failed passive declare closes it
                continue
            left.append(namespace)
            await topology.delete(channel, topology.build(settings, queues))
    return left
