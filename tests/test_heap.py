"""A process's collector settled at start-up: start-up's objects frozen, the young
generation collected less often; cycles made afterwards are still collected."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import asyncio, gc, weakref
from warren.service.heap import YOUNG_THRESHOLD, settle_on_startup

class Node:
    pass

asyncio.run(settle_on_startup(None))
assert gc.get_threshold()[0] == YOUNG_THRESHOLD, gc.get_threshold()
assert gc.get_freeze_count() > 1000, gc.get_freeze_count()
a, b = Node(), Node()
a.other, b.other = b, a  # a cycle made after start-up
gone = weakref.ref(a)
del a, b
gc.collect()
assert gone() is None
print("ok")
"""


def test_start_up_is_frozen_and_later_cycles_still_collected() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
