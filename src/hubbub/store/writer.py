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
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from hubbub.store import ChatDraft, Store, StoredChat, StoreError

log = logging.getLogger("hubbub.store")

T = TypeVar("T")


class _Batch(Generic[T]):
    """Appends for one transaction; open until the store takes them (from its thread)."""

    __slots__ = (
        "_lock",
        "_on_written",
        "_wall_clock",
        "drafts",
        "outcome",
        "taken",
        "taken_at",
        "task",
        "tokens",
        "written_at",
    )

    def __init__(
        self,
        wall_clock: Callable[[], float],
        on_written: Callable[[_Batch[T], list[StoredChat]], None],
    ) -> None:
        self._lock = threading.Lock()
        self._wall_clock = wall_clock
        self._on_written = on_written
        self.tokens: list[T] = []
        self.drafts: list[ChatDraft] = []
        self.taken = False
        self.taken_at = 0.0
        """``time.perf_counter()`` when the store took the batch (its write began)."""
        self.written_at = 0.0
        """... and when it said the batch was committed (0.0: it did not say)."""
        self.task: asyncio.Task[None] | None = None
        """Writing the batch, once it is handed to the store."""
        self.outcome: list[StoredChat] | StoreError | None = None
        """Once known (on the event loop): the results, or why nothing was stored."""

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

    def written(self, results: list[StoredChat]) -> None:
        """From the store (any thread): the batch is committed with ``results``."""
        self.written_at = time.perf_counter()
        self._on_written(self, results)


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
        self._idle = asyncio.Event()
        self._idle.set()
        self._loop: asyncio.AbstractEventLoop | None = None
        """Set by :meth:`start`: batches are written from then on."""
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
        batch = self._open = _Batch(self._wall_clock, self._written)
        batch.add(token, draft, self._max_batch)
        if self._handed or self._loop is None or self._delay <= 0:
            self._hand_over(batch)
        else:  # the first after a quiet spell: let a few more join it
            self._delayed = asyncio.get_running_loop().call_later(
                self._delay, self._hand_over_delayed
            )
        return True

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for batch in self._handed:  # gathered before the start
            self._write(batch)

    async def drain(self) -> None:
        """Wait until everything queued so far is committed or has failed."""
        await self._idle.wait()

    async def close(self) -> None:
        await self.drain()

    def _hand_over_delayed(self) -> None:
        self._delayed = None
        if self._open is not None:
            self._hand_over(self._open)

    def _hand_over(self, batch: _Batch[T]) -> None:
        self._handed.append(batch)
        if self._loop is not None:
            self._write(batch)

    def _write(self, batch: _Batch[T]) -> None:
        # Handed to the store now, in order (the SQLite store queues it for its
        # thread at once); a store whose append starts only when awaited gets
        # it when the task first runs, and tasks start in the order they are
        # created.
        assert self._loop is not None
        appending = self._store.append_gathered(batch)
        batch.task = self._loop.create_task(self._commit(batch, appending))

    async def _commit(self, batch: _Batch[T], appending: Awaitable[list[StoredChat]]) -> None:
        try:
            results = await appending
        except StoreError as exc:
            log.error("event=store-failed messages=%d error=%s", len(batch.tokens), exc)
            self._complete(batch, exc)
        except Exception as exc:
            log.exception("event=store-failed messages=%d", len(batch.tokens))
            self._complete(batch, StoreError(type(exc).__name__))
        else:
            self._complete(batch, results)  # unless the store said so already

    def _written(self, batch: _Batch[T], results: list[StoredChat]) -> None:
        """The store committed ``batch`` (told from its own thread, perhaps): the loop
        reports it at its next turn, without waiting to resume the append's task,
        which takes a few turns more (10 ms and more in a storm)."""
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            self._loop.call_soon_threadsafe(self._complete, batch, results)

    def _complete(self, batch: _Batch[T], outcome: list[StoredChat] | StoreError) -> None:
        if batch.outcome is not None:  # both the store and the append's return told
            return
        batch.outcome = outcome
        if isinstance(outcome, StoreError):
            batch.take()  # nothing more joins a batch that failed
        else:
            self.batches += 1
            if self.on_commit is not None:  # the write itself, not the wait behind others
                done_at = batch.written_at or time.perf_counter()
                self.on_commit(done_at - batch.taken_at)
        self._report_ready()

    def _report_ready(self) -> None:
        """Report every batch whose outcome is known, oldest first, up to the first
        still being written: results come back in the order the messages arrived.
        The loop relays and acknowledges a batch while the store writes the next."""
        handed = self._handed
        while handed and handed[0].outcome is not None:
            batch = handed.popleft()  # taken: by the store, or by _complete on a failure
            if batch is self._open:
                self._open = None
            self._pending -= len(batch.tokens)
            outcome = batch.outcome
            try:
                if isinstance(outcome, StoreError):
                    self._failed(batch.tokens, outcome)
                elif outcome is not None:
                    self._stored(batch.tokens, outcome)
            except Exception:
                log.exception("event=store-callback-failed")
        if not handed and not self._pending:
            self._idle.set()
