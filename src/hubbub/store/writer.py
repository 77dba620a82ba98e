"""Group commit: chat appends gathered into batches, one transaction each.

A chat storm must not wait on one fsync per message. Appends queue up here; one
task at a time takes up to ``max_batch`` of them (after ``delay`` seconds, to let a
batch fill) and stores them in one transaction. While a batch is being committed,
the next one gathers, and the previous one is reported (relayed and acknowledged by
the caller). Batches are committed one after the other, so results come back in
the order the messages arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from hubbub.store import ChatDraft, Store, StoredChat, StoreError

log = logging.getLogger("hubbub.store")

T = TypeVar("T")
T2 = TypeVar("T2")


class ChatWriter(Generic[T]):
    """Batches ``(token, draft)`` appends; reports each batch with its tokens.

    ``stored(tokens, results)`` is called once a batch is committed,
    ``failed(tokens, error)`` when it could not be (nothing of it was stored).
    """

    def __init__(
        self,
        store: Store,
        stored: Callable[[list[T], list[StoredChat]], None],
        failed: Callable[[list[T], StoreError], None],
        *,
        max_batch: int,
        max_pending: int,
        delay: float,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._stored = stored
        self._failed = failed
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._delay = delay
        self._wall_clock = wall_clock
        self._queue: deque[tuple[T, ChatDraft]] = deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        """Batches committed so far (for tests and metrics)."""
        self.on_commit: Callable[[float], None] | None = None
        """Told each committed batch's duration in seconds (the write-latency metric)."""

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, token: T, draft: ChatDraft) -> bool:
        """Queue an append; ``False`` (and nothing queued) when ``max_pending`` wait already."""
        if len(self._queue) >= self._max_pending:
            return False
        self._queue.append((token, draft))
        self._idle.clear()
        self._wakeup.set()
        return True

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def drain(self) -> None:
        """Wait until everything queued so far is committed or has failed."""
        await self._idle.wait()

    async def close(self) -> None:
        await self.drain()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        queue = self._queue
        loop = asyncio.get_running_loop()
        just_committed = False
        while True:
            if not queue:
                just_committed = False
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            # After a commit the queue has had that commit's time to fill; only a
            # writer woken from idle waits for a batch to gather.
            if not just_committed and self._delay > 0 and len(queue) < self._max_batch:
                await asyncio.sleep(self._delay)
            size = min(len(queue), self._max_batch)
            batch = [queue.popleft() for _ in range(size)]
            tokens = [token for token, _ in batch]
            drafts = [draft for _, draft in batch]
            started = time.perf_counter()
            just_committed = True
            # A batch is reported from a callback of its own, so that the next
            # batch goes to the store first: the relay and acks of one batch run on
            # the loop while the store commits the next. Callbacks run in the order
            # they are scheduled, so batches are still reported in order, and
            # before anything that waits for drain() resumes.
            try:
                results = await self._store.append_chats(drafts, int(self._wall_clock() * 1000))
            except StoreError as exc:
                log.error("event=store-failed messages=%d error=%s", len(batch), exc)
                loop.call_soon(self._report, self._failed, tokens, exc)
                continue
            except Exception as exc:
                log.exception("event=store-failed messages=%d", len(batch))
                loop.call_soon(self._report, self._failed, tokens, StoreError(type(exc).__name__))
                continue
            self.batches += 1
            if self.on_commit is not None:
                self.on_commit(time.perf_counter() - started)
            loop.call_soon(self._report, self._stored, tokens, results)

    @staticmethod
    def _report(callback: Callable[[list[T], T2], None], tokens: list[T], value: T2) -> None:
        try:
            callback(tokens, value)
        except Exception:
            log.exception("event=store-callback-failed")
