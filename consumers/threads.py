"""A small thread pool for synchronous handlers whose threads never hold the process's exit."""

from __future__ import annotations

import contextlib
import functools
import queue as queue_module
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

_P = ParamSpec("_P")
_T = TypeVar("_T")


class HandlerThreads(Executor):
    """Up to ``size`` daemon threads for synchronous handlers, started as work arrives.

    Not a ``ThreadPoolExecutor``: Python joins its threads at interpreter exit,
    so one sync handler still running after the grace (its delivery already
    requeued, its asyncio side cancelled) would hold the process past SIGTERM
    for as long as it blocks. Daemon threads do not hold the exit.
    """

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._work: queue_module.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = (
            queue_module.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._running = 0
        self._shutdown = False

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new work after shutdown")
            future: Future[_T] = Future()
            self._work.put((future, functools.partial(fn, *args, **kwargs)))
            if len(self._threads) < self._size:
                thread = threading.Thread(
                    target=self._worker, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
            return future

    def _worker(self) -> None:
        while (item := self._work.get()) is not None:
            future, call = item
            if not future.set_running_or_notify_cancel():
                continue
            with self._lock:
                self._running += 1
            try:
                result = call()
            except BaseException as exc:  # handed to the awaiting coroutine, as a pool does
                future.set_exception(exc)
            else:
                future.set_result(result)
            finally:
                with self._lock:
                    self._running -= 1

    @property
    def running(self) -> int:
        """Handlers running now (after ``shutdown``: the ones cut off, left to finish alone)."""
        return self._running

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if not self._shutdown:
                self._shutdown = True
                if cancel_futures:
                    with contextlib.suppress(queue_module.Empty):
                        while (item := self._work.get_nowait()) is not None:
                            item[0].cancel()
                for _ in self._threads:
                    self._work.put(None)
        if wait:
            for thread in self._threads:
                thread.join()
