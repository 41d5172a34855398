"""HTTP load from a separate process: closed loop with wrk (a Lua script) when installed,
else aiohttp; open loop with raw HTTP/1.1 connections (``paced``).

Closed loop (``connections`` clients, each sending its next request when the
last one answered) measures the maximum; open loop (``--rate``) sends on a
fixed schedule and times each request from when it was *due*, so a stalled
server shows up as latency instead of silently lowering the rate
(no coordinated omission). Every mode prints one JSON object.

``python -m warren.service.bench.load --url URL --body JSON --duration 5 --connections 32``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from warren.service import loops
from warren.service.bench.paced import paced
from warren.service.bench.report import percentile

HEADERS = {"Content-Type": "application/json"}
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{{"requests":%d,"seconds":%.6f,"errors":%d,"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f}}\\n',
    summary.requests, summary.duration / 1e6,
    e.status + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def summary(latencies: list[float], statuses: Counter[int], seconds: float) -> dict[str, Any]:
    """Counts and latency percentiles (ms) of one measured window."""
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    return {
        "requests": ok,
        "errors": sum(statuses.values()) - ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "seconds": seconds,
        "rps": ok / seconds if seconds > 0 else 0.0,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies, default=float("nan")) * 1000,
    }


async def closed_loop(
    url: str, body: bytes, duration: float, connections: int, warmup: float
) -> dict[str, Any]:
    """``connections`` clients back to back; only the window after ``warmup`` counts."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    loop = asyncio.get_running_loop()
    begin = loop.time() + warmup
    end = begin + duration

    async def client(http: aiohttp.ClientSession) -> None:
        while (started := loop.time()) < end:
            try:
                async with http.post(url, data=body, headers=HEADERS) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            if started >= begin:
                latencies.append(loop.time() - started)
                statuses[status] += 1

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as http:
        await asyncio.gather(*(client(http) for _ in range(connections)))
    return summary(latencies, statuses, duration)


async def open_loop(
    url: str, body: bytes, duration: float, connections: int, rate: float, ids_out: Path | None
) -> dict[str, Any]:
    """Send ``rate`` requests a second on schedule (``paced``); latency counts from the due
    time. With ``ids_out``, writes ``<task id> <due wall-clock time>`` per accepted task,
    for the end-to-end latency join. ``cpu_seconds``: this process's CPU while sending."""
    cpu = time.process_time()
    results, wall0 = await paced(url, body, duration, connections, rate, ids_out is not None)
    cpu = time.process_time() - cpu
    if ids_out is not None:  # after the timed part: blocking is harmless here
        text = "".join(f"{task_id} {wall0 + due:.6f}\n" for task_id, due in results.accepted)
        await asyncio.to_thread(ids_out.write_text, text)
    return summary(results.latencies, results.statuses, duration) | {"cpu_seconds": cpu}


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    url: str, body: bytes, duration: float, connections: int, warmup: float
) -> dict[str, Any]:
    """The same closed loop with wrk (one thread: it needs a fraction of the CPU aiohttp does)."""
    with tempfile.TemporaryDirectory(prefix="warren-bench-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(WRK_SCRIPT.format(body=body.decode()))

        def wrk(seconds: float) -> str:
            argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
            argv += ["--timeout", "10s", "-s", str(script), url]
            done = subprocess.run(
                argv, check=False, capture_output=True, text=True, timeout=seconds + 30
            )
            if done.returncode != 0:
                raise RuntimeError(f"wrk failed: {done.stderr[-2000:]}")
            return done.stdout

        if warmup > 0:
            wrk(warmup)
        out = wrk(duration)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["rps"] = result["requests"] / result["seconds"] if result["seconds"] else 0.0
    result["requests"] -= result["errors"]
    return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m warren.service.bench.load", description=__doc__)
    p.add_argument("--url", required=True)
    p.add_argument("--body", required=True)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--rate", type=float, help="open loop: requests per second")
    p.add_argument("--ids-out", type=Path, help="open loop: write accepted task ids here")
    args = p.parse_args(argv)
    body = args.body.encode()
    if args.rate:
        coro = open_loop(args.url, body, args.duration, args.connections, args.rate, args.ids_out)
    else:
        coro = closed_loop(args.url, body, args.duration, args.connections, args.warmup)
    result = loops.run(coro)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
