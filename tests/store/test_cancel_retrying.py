"""A task cancelled while it waits in a retry tier is skipped when it comes back."""

from __future__ import annotations

import pytest

from tests.conftest import StartConsumer, make_settings
from tests.store.support import Client, get_task, status_becomes, submit
from warren.service.settings import Settings


@pytest.fixture
def settings(store_url: str) -> Settings:
    """One retry tier of 1.5 s: long enough to cancel a task while it waits there."""
    return make_settings(
        store_url=store_url,
        retry_tiers_seconds=(1.5,),
        retry_base_seconds=1.5,
        retry_max_seconds=1.5,
    )


@pytest.mark.slow
async def test_a_task_cancelled_while_retrying_is_not_run_again(
    gateway: Client, start_consumer: StartConsumer
) -> None:
    await start_consumer("diag")
    accepted = await submit(gateway, {"type": "diag.flaky", "payload": {"fail_times": 1}})
    retrying = await status_becomes(gateway, accepted["id"], "retrying")
    assert retrying["attempts"][0]["next_delay_seconds"] == 1.5
    assert (await gateway.delete(f"/v1/tasks/{accepted['id']}")).status == 202
    record = await get_task(gateway, accepted["id"], wait=10)
    assert record["status"] == "cancelled"
    assert [(a["attempt"], a["outcome"], a["started_at"]) for a in record["attempts"]] == [
        (1, "retrying", retrying["attempts"][0]["started_at"]),
        (2, "cancelled", None),  # it came back from the tier and was skipped, never run
    ]
