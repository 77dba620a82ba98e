"""Group commit on a real SQLite store: order, completeness, batches gathering while
the one ahead is written, and the store going on while the event loop is busy."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from hubbub.store import ChatDraft, OpenBatch, StoredChat, StoreError
from hubbub.store.sqlite import DATABASE_FILE, SqliteStore
from hubbub.store.writer import ChatWriter


class _Taking:
    """A batch as the store sees it, telling when the store takes it (and holding
    the store's thread there while ``hold`` is clear)."""

    def __init__(self, batch: OpenBatch, store: RecordingStore) -> None:
        self.batch = batch
        self.store = store

    def take(self) -> tuple[list[ChatDraft], int]:
        drafts, now_ms = self.batch.take()
        self.store.taken.append(len(drafts))
        self.store.took.set()
        if not self.store.hold.wait(10):
            raise RuntimeError("held too long")
        if self.store.fail_next_take:
            self.store.fail_next_take = False
            raise sqlite3.OperationalError("disk I/O error")
        return drafts, now_ms

    def written(self, results: list[StoredChat]) -> None:
        self.batch.written(results)


class RecordingStore(SqliteStore):
    """The real store, noting the size of each batch it takes."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.taken: list[int] = []
        self.took = threading.Event()
        self.hold = threading.Event()
        self.hold.set()
        self.fail_next_take = False
        self.returning = asyncio.Event()
        """Cleared: an append that is written does not return (yet)."""
        self.returning.set()

    async def append_gathered(self, batch: OpenBatch) -> list[StoredChat]:
        results = await super().append_gathered(_Taking(batch, self))
        await self.returning.wait()
        return results


class Reports:
    def __init__(self) -> None:
        self.tokens: list[list[int]] = []
        self.order: list[str] = []
        """``stored`` or ``failed``, a batch at a time."""
        self.seqs: list[int] = []
        self.failures: list[tuple[list[int], str]] = []
        self.during_first: Any = None
        """Run inside the first report (on the event loop's thread)."""
        self.second_taken_meanwhile = False

    def stored(self, tokens: list[int], results: list[StoredChat]) -> None:
        self.tokens.append(tokens)
        self.order.append("stored")
        self.seqs.extend(result.seq for result in results)
        if len(self.tokens) == 1 and self.during_first is not None:
            self.during_first()

    def failed(self, tokens: list[int], error: StoreError) -> None:
        self.failures.append((tokens, str(error)))
        self.order.append("failed")


def chat(number: int) -> ChatDraft:
    return ChatDraft(room="r", user_id="u", text=str(number), client_id=str(number))


async def until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def opened(tmp_path: Path) -> RecordingStore:
    store = RecordingStore(tmp_path / DATABASE_FILE)
    await store.open()
    return store


@asynccontextmanager
async def writing(
    store: RecordingStore, *, max_batch: int, max_pending: int, delay: float
) -> AsyncIterator[tuple[Reports, ChatWriter[int]]]:
    """A started writer on the open ``store``; both closed after (the store's thread
    let go first, should a test still hold it)."""
    reports = Reports()
    writer: ChatWriter[int] = ChatWriter(
        store,
        reports.stored,
        reports.failed,
        max_batch=max_batch,
        max_pending=max_pending,
        delay=delay,
    )
    writer.start()
    try:
        yield reports, writer
    finally:
        store.hold.set()
        store.returning.set()
        await writer.close()
        await store.close()


async def gather_behind_a_held_batch(
    store: RecordingStore, writer: ChatWriter[int], numbers: range
) -> None:
    """Append 0 and hold the store's thread on that batch; then append ``numbers``,
    which gather in the next batch meanwhile."""
    store.hold.clear()
    assert writer.add(0, chat(0))
    await until(lambda: store.taken == [1])
    store.took.clear()
    for number in numbers:
        assert writer.add(number, chat(number))


async def test_the_next_batch_gathers_and_is_written_while_the_loop_is_busy(
    tmp_path: Path,
) -> None:
    store = await opened(tmp_path)
    async with writing(store, max_batch=100, max_pending=1000, delay=0.0) as (reports, writer):
        await gather_behind_a_held_batch(store, writer, range(1, 21))
        assert len(writer) == 21

        # The first report blocks the event loop's thread until the store took
        # the second batch: it can do so only on its own, with no help from the loop.
        def wait_for_the_second_batch() -> None:
            reports.second_taken_meanwhile = store.took.wait(10)

        reports.during_first = wait_for_the_second_batch
        store.hold.set()
        await writer.drain()
        assert reports.second_taken_meanwhile
        assert store.taken == [1, 20]
        assert reports.tokens == [[0], list(range(1, 21))]
        assert reports.seqs == list(range(1, 22))
        assert writer.batches == 2
        assert len(writer) == 0


async def test_full_batches_are_written_in_order_and_a_delay_gathers_the_first(
    tmp_path: Path,
) -> None:
    store = await opened(tmp_path)
    async with writing(store, max_batch=10, max_pending=1000, delay=0.2) as (reports, writer):
        for number in range(3):  # a quiet start: the first batch waits the delay
            writer.add(number, chat(number))
            await asyncio.sleep(0.02)
        await writer.drain()
        assert store.taken == [3]
        # 35 at once: full batches go at once, behind one another, in order.
        for number in range(3, 38):
            writer.add(number, chat(number))
        await writer.drain()
        assert store.taken == [3, 10, 10, 10, 5]
        assert [t for batch in reports.tokens for t in batch] == list(range(38))
        assert reports.seqs == list(range(1, 39))
        assert [m.text for m in await store.history("r", None, 100)] == [str(n) for n in range(38)]


async def test_appends_over_the_bound_are_refused(tmp_path: Path) -> None:
    store = await opened(tmp_path)
    async with writing(store, max_batch=2, max_pending=3, delay=0.0) as (reports, writer):
        assert [writer.add(n, chat(n)) for n in range(4)] == [True, True, True, False]
        await writer.drain()
        assert reports.tokens == [[0, 1], [2]]
        assert writer.add(4, chat(4))  # room again once written
        await writer.drain()
        assert reports.seqs == [1, 2, 3, 4]


class RefusingOnce(RecordingStore):
    """The real store, but the first batch is refused before it is taken (as when
    the database cannot be written to)."""

    refused = False

    async def append_gathered(self, batch: OpenBatch) -> list[StoredChat]:
        if not self.refused:
            self.refused = True
            await asyncio.sleep(0.05)  # more appends arrive meanwhile
            raise StoreError("SQLite: database is locked")
        return await super().append_gathered(batch)


@pytest.mark.logs_errors("event=store-failed messages=5 ")
async def test_a_failed_batch_is_reported_whole_and_the_writer_goes_on(tmp_path: Path) -> None:
    store = RefusingOnce(tmp_path / DATABASE_FILE)
    await store.open()
    async with writing(store, max_batch=10, max_pending=100, delay=0.0) as (reports, writer):
        writer.add(0, chat(0))
        await asyncio.sleep(0)
        for number in range(1, 5):  # join the open batch, which is refused whole
            writer.add(number, chat(number))
        await asyncio.sleep(0.1)
        writer.add(5, chat(5))  # a batch of its own after the failure
        await writer.drain()
        assert reports.failures == [([0, 1, 2, 3, 4], "SQLite: database is locked")]
        assert reports.tokens == [[5]]
        assert reports.seqs == [1]  # the failed batch used no sequence numbers
        assert len(writer) == 0


async def test_a_closed_store_refuses_at_once(tmp_path: Path) -> None:
    store = await opened(tmp_path)
    await store.close()
    with pytest.raises(StoreError, match="the store is closed"):
        await asyncio.wait_for(store.append_chats([chat(0)], 0), 5)


async def test_a_batch_is_reported_once_committed_before_its_append_returns(
    tmp_path: Path,
) -> None:
    """The store tells the writer from its own thread: the report does not wait for
    the event loop to resume the append (several turns of a busy loop)."""
    store = await opened(tmp_path)
    async with writing(store, max_batch=10, max_pending=100, delay=0.0) as (reports, writer):
        store.returning.clear()
        for number in range(3):
            writer.add(number, chat(number))
        await until(lambda: reports.tokens == [[0, 1, 2]])
        assert len(writer) == 0
        assert writer.batches == 1
        store.returning.set()
        writer.add(3, chat(3))
        await writer.drain()
        assert reports.tokens == [[0, 1, 2], [3]]
        assert reports.seqs == [1, 2, 3, 4]


@pytest.mark.logs_errors("event=store-failed messages=1 ")
async def test_a_batch_written_behind_a_failed_one_is_reported_after_it(
    tmp_path: Path,
) -> None:
    store = await opened(tmp_path)
    async with writing(store, max_batch=10, max_pending=100, delay=0.0) as (reports, writer):
        store.fail_next_take = True  # the first batch fails once let go
        await gather_behind_a_held_batch(store, writer, range(1, 4))
        store.hold.set()
        await writer.drain()
        assert reports.order == ["failed", "stored"]
        assert reports.failures == [([0], "SQLite: disk I/O error")]
        assert reports.tokens == [[1, 2, 3]]
        assert reports.seqs == [1, 2, 3]
