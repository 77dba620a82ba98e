"""Group commit: chat appends gathered into batches, one transaction each.

A chat storm must not wait on one fsync per message. Appends go into an open
batch, which is handed to the store at once; the store takes the batch (closing
it to further appends) only when the batches ahead of it are written, so a batch
gathers for as long as the one before it takes. Whatever arrives after that opens
the next batch, which is handed over behind it: the store goes from one batch to
the next without waiting for the event loop (the SQLite store takes a batch on
its own thread), while the loop relays and acknowledges the batch just written.
A batch that fills up (``max_batch``) is closed by the writer and the next opened.

After a quiet spell the first batch waits ``delay`` seconds before it is handed
over, to let a few more appends join it. Batches are written one after the other
and reported in the order they were opened, so results come back in the order
the messages arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from hubbub.store import ChatDraft, Store, StoredChat, StoreError

log = logging.getLogger("hubbub.store")

T = TypeVar("T")
T2 = TypeVar("T2")


class _Batch(Generic[T]):
    """Appends for one transaction; open until the store takes them (from its thread)."""

    __slots__ = ("_lock", "_wall_clock", "drafts", "taken", "taken_at", "task", "tokens")

    def __init__(self, wall_clock: Callable[[], float]) -> None:
        self._lock = threading.Lock()
        self._wall_clock = wall_clock
        self.tokens: list[T] = []
        self.drafts: list[ChatDraft] = []
        self.taken = False
        self.taken_at = 0.0
        """``time.perf_counter()`` when the store took the batch (its write began)."""
        self.task: asyncio.Task[list[StoredChat]] | None = None
        """Writing the batch, once it is handed to the store."""

    def add(self, token: T, draft: ChatDraft, max_size: int) -> bool:
        """Join the batch, unless it was taken, is being taken, or is full.

        Never waits for the lock: the store's thread holds it only while taking
        the batch, and the event loop would otherwise wait for that thread to get
        the GIL back. The append then opens the next batch instead."""
        lock = self._lock
        if not lock.acquire(blocking=False):
            return False
        try:
            if self.taken or len(self.drafts) >= max_size:
                return False
            self.tokens.append(token)
            self.drafts.append(draft)
            return True
        finally:
            lock.release()

    def take(self) -> tuple[list[ChatDraft], int]:
        with self._lock:
            if not self.taken:
                self.taken = True
                self.taken_at = time.perf_counter()
        return self.drafts, int(self._wall_clock() * 1000)


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
        self._open: _Batch[T] | None = None
        """The batch new appends join."""
        self._delayed: asyncio.TimerHandle | None = None
        """Set while the open batch waits out ``delay`` before it is handed over."""
        self._handed: deque[_Batch[T]] = deque()
        """Batches handed to the store (or to be, at start), oldest first."""
        self._pending = 0
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        """Batches committed so far (for tests and metrics)."""
        self.on_commit: Callable[[float], None] | None = None
        """Told each committed batch's duration in seconds (the write-latency metric)."""

    def __len__(self) -> int:
        """Appends not yet reported (gathering, or being written)."""
        return self._pending

    def add(self, token: T, draft: ChatDraft) -> bool:
        """Queue an append; ``False`` (and nothing queued) when ``max_pending`` wait already."""
        if self._pending >= self._max_pending:
            return False
        self._pending += 1
        self._idle.clear()
        batch = self._open
        if batch is not None and batch.add(token, draft, self._max_batch):
            return True
        if self._delayed is not None:  # the open batch filled up before its delay ran out
            self._delayed.cancel()
            self._delayed = None
            if batch is not None:
                self._hand_over(batch)
        batch = self._open = _Batch(self._wall_clock)
        batch.add(token, draft, self._max_batch)
        if self._handed or self._task is None or self._delay <= 0:
            self._hand_over(batch)
        else:  # the first after a quiet spell: let a few more join it
            self._delayed = asyncio.get_running_loop().call_later(
                self._delay, self._hand_over_delayed
            )
        return True

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        for batch in self._handed:  # gathered before the start
            self._write(batch)

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

    def _hand_over_delayed(self) -> None:
        self._delayed = None
        if self._open is not None:
            self._hand_over(self._open)

    def _hand_over(self, batch: _Batch[T]) -> None:
        self._handed.append(batch)
        if self._task is not None:
            self._write(batch)
            self._wakeup.set()

    def _write(self, batch: _Batch[T]) -> None:
        # Tasks start in the order they are created, and each reaches the store
        # before its first suspension: batches are handed over in order.
        batch.task = asyncio.get_running_loop().create_task(self._commit(batch))

    async def _commit(self, batch: _Batch[T]) -> list[StoredChat]:
        results = await self._store.append_gathered(batch)
        self.batches += 1
        if self.on_commit is not None:  # the write itself, not the wait behind others
            self.on_commit(time.perf_counter() - batch.taken_at)
        return results

    async def _run(self) -> None:
        """Report the batches handed over, in order, as each is written."""
        handed = self._handed
        loop = asyncio.get_running_loop()
        while True:
            if not handed:
                if not self._pending:
                    self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = handed[0]
            task = batch.task
            if task is None:  # pragma: no cover - every batch handed after start has one
                raise RuntimeError("a batch was handed over without being written")
            try:
                results = await task
            except StoreError as exc:
                log.error("event=store-failed messages=%d error=%s", len(batch.tokens), exc)
                self._finish(loop, batch, self._failed, exc)
                continue
            except Exception as exc:
                log.exception("event=store-failed messages=%d", len(batch.tokens))
                self._finish(loop, batch, self._failed, StoreError(type(exc).__name__))
                continue
            self._finish(loop, batch, self._stored, results)

    def _finish(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: _Batch[T],
        callback: Callable[[list[T], T2], None],
        value: T2,
    ) -> None:
        self._handed.popleft()
        batch.take()  # a batch that failed before the store took it joins nothing more
        if batch is self._open:
            self._open = None
        self._pending -= len(batch.tokens)
        # Reported from a callback of its own: the loop relays and acknowledges
        # this batch while the store writes the next. Callbacks run in the order
        # they are scheduled, so batches are reported in order, and before
        # anything that waits for drain() resumes.
        loop.call_soon(self._report, callback, batch.tokens, value)

    @staticmethod
    def _report(callback: Callable[[list[T], T2], None], tokens: list[T], value: T2) -> None:
        try:
            callback(tokens, value)
        except Exception:
            log.exception("event=store-callback-failed")
