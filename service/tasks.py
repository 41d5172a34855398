"""The task types built into every app: ``diag.*``, to smoke-test a deployment and to benchmark.

Only payload models and contracts live here, never handler code: the gateway
imports this module to validate submissions. Real task types live in apps
(``warren.service.apps``); the repository's example app is ``examples.demo``.
"""

from __future__ import annotations

from pydantic import Field

from warren.service.contracts import Catalog, Payload, TaskContract


# --- diag: smoke tests -------------------------------------------------------
class EchoPayload(Payload):
    message: str = Field(max_length=10_000)


class SleepPayload(Payload):
    ms: int = Field(ge=0, le=3_600_000)


class FlakyPayload(Payload):
    fail_times: int = Field(ge=0, le=100, description="Attempts that fail before one succeeds.")


class FailPayload(Payload):
    permanent: bool = Field(False, description="Fail without retries.")


diag_echo = TaskContract("diag.echo", "diag", EchoPayload, "Returns its message.")
diag_sleep = TaskContract(
    "diag.sleep", "diag", SleepPayload, "Sleeps ms milliseconds.", timeout_cap_seconds=1200
)
diag_flaky = TaskContract(
    "diag.flaky", "diag", FlakyPayload, "Fails its first fail_times attempts, then succeeds."
)
diag_fail = TaskContract(
    "diag.fail",
    "diag",
    FailPayload,
    "Always fails; permanent=true skips the retries.",
    max_attempts=3,
)
BUILTIN_CATALOG = Catalog((diag_echo, diag_sleep, diag_flaky, diag_fail))
