"""The listing benchmark runs end to end at a tiny size (no timing asserted: the machine is
shared; the figures are in benchmarks/README.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from warren.service.bench.listing import run


async def test_the_listing_benchmark_reports_every_measure(tmp_path: Path) -> None:
    args = argparse.Namespace(
        records=300, dead=120, repeats=1, store_url=f"sqlite:///{tmp_path / 'b.db'}"
    )
    rows = dict(await run(args))
    assert len(rows) == 7 and rows["all 120 dead letters, 500 a page"].endswith(" s")
    assert all(value.endswith(" ms") for name, value in rows.items() if "GET" in name)
