"""Handlers of the ``diag.*`` task types: smoke tests for any deployment."""

from __future__ import annotations

import asyncio

from warren.consumers.context import TaskContext
from warren.consumers.registry import handles
from warren.service.errors import Permanent
from warren.service.tasks import (
    EchoPayload,
    FailPayload,
    FlakyPayload,
    SleepPayload,
    diag_echo,
    diag_fail,
    diag_flaky,
    diag_sleep,
)


@handles(diag_echo)
async def echo(payload: EchoPayload, ctx: TaskContext) -> dict[str, str]:
    return {"message": payload.message}


@handles(diag_sleep)
async def sleep(payload: SleepPayload, ctx: TaskContext) -> dict[str, int]:
    await asyncio.sleep(payload.ms / 1000)
    return {"slept_ms": payload.ms}


class FlakyError(RuntimeError):
    """The planned failure of ``diag.flaky``."""


@handles(diag_flaky)
async def flaky(payload: FlakyPayload, ctx: TaskContext) -> dict[str, int]:
    if ctx.attempt <= payload.fail_times:
        raise FlakyError(f"planned failure {ctx.attempt} of {payload.fail_times}")
    return {"succeeded_on_attempt": ctx.attempt}


class PlannedFailure(RuntimeError):
    """The planned, retryable failure of ``diag.fail``."""


@handles(diag_fail)
async def fail(payload: FailPayload, ctx: TaskContext) -> None:
    if payload.permanent:
        raise Permanent("diag.fail asked for a permanent failure")
    raise PlannedFailure("diag.fail always fails")
