"""Group commit: readings from all connections share a few batched commits in threads."""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Hashable, Sequence

log = logging.getLogger(__name__)

Batch = list[tuple[Hashable, Sequence]]  # [(key, rows), ...] handed to the write function
# The write function returns one outcome per batch item: a result for its submitter, or an
# exception raised to that submitter alone, so one device's failure stays its own.
Outcomes = list[object]


class GroupCommitter:
    """Queue rows from many coroutines and commit them together off the event loop.

    While one commit runs, new submissions pile up and go into the next one, so
    the number of commits follows the database's speed, not the message rate.
    """

    def __init__(self, write: Callable[[Batch], Outcomes], *, max_rows: int = 5000,
                 writers: int = 2) -> None:
        self._write = write
        self._max_rows = max_rows
        self._writers = writers
        self._queue: deque[tuple[Hashable, Sequence, asyncio.Future]] = deque()
        self._ready = asyncio.Event()
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task] = []
        self._executor: ThreadPoolExecutor | None = None

    def start(self) -> None:
        """Start the writer tasks on the running loop."""
        self._executor = ThreadPoolExecutor(self._writers, thread_name_prefix="commit")
        self._tasks = [asyncio.create_task(self._run(), name=f"committer-{i}")
                       for i in range(self._writers)]

    async def submit(self, key: Hashable, rows: Sequence) -> object:
        """Return this submission's outcome once its batch is written; raise its exception."""
        if not self._tasks:
            raise RuntimeError("committer is not running")
        future = asyncio.get_running_loop().create_future()
        self._queue.append((key, rows, future))
        self._idle.clear()
        self._ready.set()
        return await future

    async def drain(self) -> None:
        """Wait until everything submitted so far is committed or failed."""
        await self._idle.wait()

    async def close(self) -> None:
        """Commit what is queued, then stop the writers."""
        await self.drain()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._executor:
            self._executor.shutdown(wait=True)

    def _take(self) -> list[tuple[Hashable, Sequence, asyncio.Future]]:
        """Pop queued submissions up to max_rows (always at least one)."""
        taken, rows = [], 0
        while self._queue and (not taken or rows + len(self._queue[0][1]) <= self._max_rows):
            item = self._queue.popleft()
            taken.append(item)
            rows += len(item[1])
        if not self._queue:
            self._ready.clear()
        return taken

    async def _run(self) -> None:
        """Writer loop: take a batch, commit it in a thread, resolve its futures."""
        loop = asyncio.get_running_loop()
        while True:
            await self._ready.wait()
            taken = self._take()
            if not taken:
                continue
            self._busy += 1
            try:
                outcomes = await loop.run_in_executor(self._executor, self._write,
                                                      [(key, rows) for key, rows, _ in taken])
            except Exception as exc:  # a bug in the write function: every submitter hears of it
                log.warning("commit of %d rows failed: %s", sum(len(r) for _, r, _ in taken),
                            str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__)
                outcomes = [exc] * len(taken)
            try:
                _settle(taken, outcomes)
            finally:
                self._busy -= 1
                if not self._busy and not self._queue:
                    self._idle.set()


def _settle(taken, outcomes: Outcomes) -> None:
    """Resolve each future with its own outcome, skipping those whose waiter has gone."""
    for (_, _, future), outcome in zip(taken, outcomes, strict=True):
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
