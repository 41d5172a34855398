"""The gateway's garbage collector, settled once the gateway has started.

A request allocates a few hundred objects (the request, its headers, the submission,
the envelope, futures and callbacks), almost all freed by reference counting when it
is answered; only the cyclic collector's schedule sees them as "allocations": with
CPython's default threshold (700) it runs a young collection every two or three
requests, and every tenth an older one, each walking objects that live for the whole
process (modules, models, the app). Once started, the gateway moves those to the
permanent generation (``gc.freeze``: never walked again) and collects the young
generation every ``YOUNG_THRESHOLD`` allocations instead. Cycles are still collected,
later; memory stays bounded (``tests/test_bench_soak.py`` checks the RSS over a run).
"""

from __future__ import annotations

import gc

from aiohttp import web

YOUNG_THRESHOLD = 10_000  # CPython's default is 700
OLDER_THRESHOLDS = (10, 10)  # CPython's defaults


async def settle_heap(app: web.Application) -> None:
    """``on_startup``: what start-up built is frozen, the young generation collected less
    often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
