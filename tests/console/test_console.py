"""The web console in a real browser: Debian's headless Chromium driven by Playwright.

Why: the console is JavaScript over the API; only a browser proves that a user can sign
in, watch tasks appear live (Server-Sent Events), open a dead task and replay it. With
``WARREN_CONSOLE_SCREENSHOTS=docs`` the run also saves the README's screenshots there.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aio_pika.abc import AbstractChannel
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import BrowserContext, Page, async_playwright, expect

from tests.conftest import StartConsumer
from tests.dead_letters.test_dead_letters import FLAKY_ONCE
from tests.test_auth import TOKENS, bearer, keyed_settings
from warren.service.http.app import create_app
from warren.service.settings import Settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
Gateway = TestClient[Any, Any]


@pytest.fixture
async def gateway(settings: Settings, channel: AbstractChannel) -> AsyncIterator[Gateway]:
    """A gateway with API keys on (the console signs in with one), on a real port."""
    async with TestClient(TestServer(create_app(keyed_settings(settings)))) as client:
        yield client


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """Headless Chromium with a new, empty profile."""
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 720},
        )
        yield context
        await context.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return Path(os.environ.get("WARREN_CONSOLE_SCREENSHOTS") or tmp_path)


async def submit(gateway: Gateway, body: dict[str, Any]) -> str:
    response = await gateway.post("/v1/tasks", json=body, headers=bearer("shop"))
    assert response.status == 202, await response.text()
    task_id: str = (await response.json())["id"]
    return task_id


async def sign_in(page: Page, gateway: Gateway, token: str) -> None:
    await page.goto(str(gateway.make_url("/console")))
    await page.fill("#token", token)
    await page.click("#sign-in button[type=submit]")


async def test_sign_in_watch_tasks_live_and_replay_a_dead_one(
    gateway: Gateway, browser: BrowserContext, start_consumer: StartConsumer, shots: Path
) -> None:
    page = await browser.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # "replay 1 dead letter?"
    await start_consumer("diag")

    # Signed in, the queues page shows each queue, live
    await sign_in(page, gateway, TOKENS["ops"])
    await expect(page.locator('#queues tr[data-queue="diag"]')).to_be_visible()
    await expect(page.locator("#live")).to_have_text("live")
    await page.screenshot(path=shots / "console-queues.png")

    # Tasks submitted through the API appear on the open tasks page without a reload
    await page.click("nav a[data-page=tasks]")
    await expect(page.locator("#tasks")).to_be_visible()
    ids = [
        await submit(gateway, {"type": "diag.echo", "payload": {"message": f"{i}"}})
        for i in range(3)
    ]
    for task_id in ids:
        row = page.locator(f'#tasks tr[data-id="{task_id}"]')
        await expect(row.locator(".status-succeeded")).to_be_visible(timeout=15_000)
    dead = await submit(gateway, FLAKY_ONCE)
    await expect(page.locator(f'#tasks tr[data-id="{dead}"] .status-dead')).to_be_visible(
        timeout=15_000
    )
    await page.screenshot(path=shots / "console-tasks.png")

    # The dead task is among the dead letters; opened, it shows its payload; replayed, it runs
    await page.click("nav a[data-page=dead]")
    await expect(page.locator(f'#dead tr[data-id="{dead}"]')).to_be_visible()
    await page.screenshot(path=shots / "console-dead-letters.png")
    await page.click(f'#dead tr[data-id="{dead}"] a')
    await expect(page.locator("#payload")).to_contain_text('"fail_times": 1')
    await page.screenshot(path=shots / "console-dead-letter.png")
    await page.click("#replay-one")
    await expect(page.locator("#outcome")).to_have_text("replayed 1")
    await page.goto(str(gateway.make_url(f"/console#/tasks/{dead}")))
    await expect(page.locator("#status")).to_have_text("succeeded", timeout=15_000)
    await expect(page.locator("#attempts tbody tr")).to_have_count(2)
    await page.screenshot(path=shots / "console-task.png")
    await page.click("nav a[data-page=dead]")
    await expect(page.locator("#dead tbody tr")).to_have_count(0)  # replayed: none left


async def test_a_refused_key_stays_signed_out_and_a_reader_cannot_replay(
    gateway: Gateway, browser: BrowserContext, start_consumer: StartConsumer
) -> None:
    page = await browser.new_page()
    await sign_in(page, gateway, "wrn_nobody_" + "x" * 43)
    await expect(page.locator("#sign-in-error")).to_have_text("this API key was refused")

    await start_consumer("diag")
    dead = await submit(gateway, FLAKY_ONCE)
    page.on("dialog", lambda dialog: dialog.accept())
    await sign_in(page, gateway, TOKENS["reader"])
    await page.goto(str(gateway.make_url(f"/console#/dead/{dead}")))
    await page.reload()  # a hash change alone can race the sign-in's own first render
    # A reader sees only its own tasks' dead letters: this one (the shop's) is not found
    await expect(page.locator("#page .error")).to_be_visible(timeout=15_000)
