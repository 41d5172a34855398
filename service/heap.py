"""The garbage collector of a long-running Warren process, settled once it has started.

A request or a delivery allocates a few hundred objects (frames, properties, the
envelope, futures and callbacks), almost all freed by reference counting when it is
done; only the cyclic collector's schedule counts them as "allocations": with
CPython's default threshold (700) it runs a young collection every few tasks, and
every tenth an older one, each walking objects that live for the whole process
(modules, models, the app). Once a gateway or consumer process has started, those are
moved to the permanent generation (``gc.freeze``: never walked again) and the young
generation is collected every ``YOUNG_THRESHOLD`` allocations instead. Cycles are still
collected, later; memory stays bounded (``tests/test_bench_soak.py`` checks the RSS of
gateway and consumers over a run).

Only processes of their own call it (``warren gateway``, ``warren consume``): tests that
build apps and consumers in-process keep Python's defaults.
"""

from __future__ import annotations

import gc
import logging

from aiohttp import web

log = logging.getLogger(__name__)

YOUNG_THRESHOLD = 10_000  # CPython's default is 700
OLDER_THRESHOLDS = (10, 10)  # CPython's defaults


def settle() -> None:
    """What start-up built is frozen; the young generation is collected less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
    log.info(
        "collector settled: %d start-up objects frozen, young collections every %d allocations",
        gc.get_freeze_count(),
        YOUNG_THRESHOLD,
    )


async def settle_on_startup(app: web.Application) -> None:
    """``on_startup`` hook of the gateway's aiohttp app: ``settle``."""
    settle()
