"""Group commit on a real SQLite store: order, completeness, and the overlap of one
batch's report with the next batch's commit."""

from __future__ import annotations

from pathlib import Path

from hubbub.store import ChatDraft, StoredChat, StoreError
from hubbub.store.sqlite import DATABASE_FILE, SqliteStore
from hubbub.store.writer import ChatWriter


class RecordingStore(SqliteStore):
    """The real store, noting when each batch goes in and comes back."""

    def __init__(self, path: Path, events: list[str]) -> None:
        super().__init__(path)
        self.events = events

    async def append_chats(self, drafts: list[ChatDraft], now_ms: int) -> list[StoredChat]:
        self.events.append(f"append {drafts[0].text}")
        return await super().append_chats(drafts, now_ms)


async def test_batches_are_reported_in_order_while_the_next_is_committed(tmp_path: Path) -> None:
    events: list[str] = []
    store = RecordingStore(tmp_path / DATABASE_FILE, events)
    await store.open()
    reported: list[int] = []
    seqs: list[int] = []

    def stored(tokens: list[int], results: list[StoredChat]) -> None:
        events.append(f"report {tokens[0]}")
        reported.extend(tokens)
        seqs.extend(result.seq for result in results)

    def failed(tokens: list[int], error: StoreError) -> None:  # pragma: no cover
        raise AssertionError(f"batch {tokens} failed: {error}")

    writer: ChatWriter[int] = ChatWriter(
        store, stored, failed, max_batch=10, max_pending=1000, delay=0.0
    )
    writer.start()
    try:
        for number in range(35):
            assert writer.add(number, ChatDraft(room="r", user_id="u", text=str(number)))
        await writer.drain()
        assert reported == list(range(35))
        assert seqs == list(range(1, 36))
        assert writer.batches == 4
        # Each batch after the first went to the store before the one ahead of it
        # was reported: relaying and acknowledging a batch overlaps the next commit.
        assert events == [
            "append 0",
            "append 10",
            "report 0",
            "append 20",
            "report 10",
            "append 30",
            "report 20",
            "report 30",
        ]
        # Queued while idle: taken on its own, reported before drain() returns.
        writer.add(35, ChatDraft(room="r", user_id="u", text="35"))
        await writer.drain()
        assert reported[-1] == 35
        assert seqs[-1] == 36
    finally:
        await writer.close()
        await store.close()


async def test_a_full_queue_refuses_more(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / DATABASE_FILE)
    await store.open()
    reported: list[str] = []
    writer: ChatWriter[str] = ChatWriter(
        store,
        lambda tokens, _: reported.extend(tokens),
        lambda tokens, _: None,
        max_batch=10,
        max_pending=3,
        delay=0.0,
    )
    try:
        # Not started: nothing is taken from the queue yet.
        assert [writer.add(t, ChatDraft(room="r", user_id="u", text=t)) for t in "abcd"] == [
            True,
            True,
            True,
            False,
        ]
        writer.start()
        await writer.drain()
        assert reported == ["a", "b", "c"]
    finally:
        await writer.close()
        await store.close()
