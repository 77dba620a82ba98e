"""One contract, every store backend: SQLite (a file) and PostgreSQL (a real server)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest

from hubbub.store import ChatDraft, Retention, SchemaTooNew, Store
from hubbub.store.migrations import migrations
from hubbub.store.postgres import PostgresStore
from hubbub.store.sqlite import DATABASE_FILE, SqliteStore

Opener = Callable[[], Store]


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Makes a store on the same fresh database each time it is called."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        return lambda: PostgresStore(url)
    return lambda: SqliteStore(tmp_path / DATABASE_FILE)


@pytest.fixture
async def store(open_store: Opener) -> AsyncIterator[Store]:
    opened = open_store()
    await opened.open()
    yield opened
    await opened.close()


def draft(text: str, room: str = "r", user: str = "alice", client_id: str | None = None):
    return ChatDraft(room=room, user_id=user, text=text, client_id=client_id)


async def test_sequence_numbers_are_per_room_and_gapless(store: Store) -> None:
    first = await store.append_chats([draft("a"), draft("b", room="s"), draft("c")], 1000)
    assert [(m.room, m.seq) for m in first] == [("r", 1), ("s", 1), ("r", 2)]
    assert all(m.ts == 1000 and not m.duplicate for m in first)
    assert len({m.id for m in first}) == 3
    second = await store.append_chats([draft("d"), draft("e")], 2000)
    assert [m.seq for m in second] == [3, 4]
    state = await store.room_state("r", 10)
    assert state.last_seq == 4
    assert [(m.seq, m.text, m.user_id) for m in state.recent] == [
        (1, "a", "alice"),
        (2, "c", "alice"),
        (3, "d", "alice"),
        (4, "e", "alice"),
    ]
    assert (await store.room_state("s", 10)).last_seq == 1
    assert await store.room_state("nobody", 10) == type(state)(last_seq=0, recent=[])


async def test_client_id_is_stored_once_and_answered_with_the_first(store: Store) -> None:
    [first] = await store.append_chats([draft("hi", client_id="c1")], 1000)
    again = await store.append_chats(
        [draft("hi again", client_id="c1"), draft("other", client_id="c2")], 2000
    )
    assert again[0].duplicate
    assert (again[0].id, again[0].seq, again[0].ts, again[0].text) == (
        first.id,
        first.seq,
        1000,
        "hi",
    )
    assert again[1].seq == 2
    assert not again[1].duplicate
    # The same client id twice in one batch, from another sender, in another room.
    batch = await store.append_chats(
        [
            draft("x", client_id="c3"),
            draft("x", client_id="c3"),
            draft("y", user="bob", client_id="c1"),
            draft("z", room="s", client_id="c1"),
        ],
        3000,
    )
    assert [(m.seq, m.duplicate) for m in batch] == [(3, False), (3, True), (4, False), (1, False)]
    assert batch[0].id == batch[1].id
    state = await store.room_state("r", 50)
    assert [m.seq for m in state.recent] == [1, 2, 3, 4]
    assert state.recent[0].client_id == "c1"


async def test_history_pages_back(store: Store) -> None:
    await store.append_chats([draft(str(n)) for n in range(1, 11)], 1000)
    page = await store.history("r", None, 3)
    assert [m.seq for m in page] == [8, 9, 10]
    page = await store.history("r", 8, 3)
    assert [m.seq for m in page] == [5, 6, 7]
    page = await store.history("r", 3, 5)
    assert [m.seq for m in page] == [1, 2]
    assert await store.history("r", 1, 5) == []
    assert await store.history("elsewhere", None, 5) == []
    assert [m.text for m in await store.history("r", 3, 1)] == ["2"]


async def test_rooms_lists_rooms_with_their_last_sequence(store: Store) -> None:
    await store.append_chats([draft("a", room="b-room"), draft("b", room="a-room")], 1)
    await store.append_chats([draft("c", room="b-room")], 2)
    assert await store.rooms(10) == [("a-room", 1), ("b-room", 2)]
    assert await store.rooms(1) == [("a-room", 1)]


async def test_retention_by_count_and_age_never_reuses_numbers(store: Store) -> None:
    for n in range(10):
        await store.append_chats([draft(f"r{n}"), draft(f"s{n}", room="s")], 1000 + n)
    removed = await store.prune(Retention(max_messages=4), 5000)
    assert removed == 12
    assert [m.seq for m in (await store.room_state("r", 50)).recent] == [7, 8, 9, 10]
    removed = await store.prune(Retention(max_age_ms=1000), 2008)
    assert removed == 4  # ts 1007 in both rooms: older than 2008 - 1000
    assert [m.seq for m in (await store.history("s", None, 50))] == [9, 10]
    await store.prune(Retention(max_age_ms=1), 10_000)
    assert (await store.room_state("r", 50)).recent == []
    [after] = await store.append_chats([draft("after")], 20_000)
    assert after.seq == 11
    assert await store.prune(Retention(), 30_000) == 0


async def test_notification_retention_by_read_age_and_per_user_cap(store: Store) -> None:
    bob = [
        await store.add_notification("bob", {"title": f"b{n}"}, 1000 + n, key=f"b{n}")
        for n in range(6)
    ]
    carol = [await store.add_notification("carol", {"body": "c"}, 1000) for _ in range(2)]
    await store.mark_read("bob", [bob[1].id, bob[3].id], 2000)
    await store.mark_read("bob", [bob[4].id], 6000)

    async def unread(user: str) -> list[int]:
        return [n.id for n in await store.unread_notifications(user, 50)]

    # Over the cap: the oldest read ones go first, whoever else is under it.
    cap = Retention(max_notifications_per_user=4)
    assert await store.prune_notifications(cap, 3000) == 2  # b1 and b3
    assert await unread("bob") == [bob[0].id, bob[2].id, bob[5].id]
    assert await unread("carol") == [n.id for n in carol]
    assert await store.prune_notifications(cap, 3000) == 0
    # Still over once every read one is gone: then the oldest unread ones.
    assert await store.prune_notifications(Retention(max_notifications_per_user=2), 3000) == 2
    assert await unread("bob") == [bob[2].id, bob[5].id]  # b4 (read), then b0
    assert await unread("carol") == [n.id for n in carol]

    # By age: a read one goes once read for longer than the retention.
    await store.mark_read("bob", [bob[2].id], 7000)
    read_age = Retention(notification_read_max_age_ms=1000)
    assert await store.prune_notifications(read_age, 8000) == 0
    assert await store.prune_notifications(read_age, 8001) == 1
    # An unread one is never deleted for its age.
    assert await store.prune_notifications(read_age, 10**12) == 0
    assert await unread("bob") == [bob[5].id]
    assert await unread("carol") == [n.id for n in carol]
    assert await store.prune_notifications(Retention(), 10**12) == 0

    # A deleted notification's key is forgotten; a kept one's still stores nothing.
    assert not (await store.add_notification("bob", {}, 20_000, key="b1")).duplicate
    assert (await store.add_notification("bob", {}, 20_000, key="b5")).duplicate


async def test_notifications_stay_unread_until_marked(store: Store) -> None:
    first = await store.add_notification("bob", {"title": "hi", "data": {"n": 1}}, 1000)
    second = await store.add_notification("bob", {"body": "two"}, 2000)
    await store.add_notification("carol", {"title": "not bob's"}, 3000)
    assert second.id > first.id
    unread = await store.unread_notifications("bob", 10)
    assert [(n.id, n.ts, n.payload) for n in unread] == [
        (first.id, 1000, {"title": "hi", "data": {"n": 1}}),
        (second.id, 2000, {"body": "two"}),
    ]
    assert [n.id for n in await store.unread_notifications("bob", 1)] == [first.id]
    # Another user's id and an unknown id are not marked; a read one not twice.
    carol = (await store.unread_notifications("carol", 10))[0].id
    assert await store.mark_read("bob", [first.id, carol, 999_999], 4000) == [first.id]
    assert await store.mark_read("bob", [first.id], 5000) == []
    assert [n.id for n in await store.unread_notifications("bob", 10)] == [second.id]
    assert [n.id for n in await store.unread_notifications("carol", 10)] == [carol]


async def test_last_seen(store: Store) -> None:
    assert await store.last_seen("alice") is None
    await store.set_last_seen("alice", 1000)
    await store.set_last_seen("alice", 2000)
    assert await store.last_seen("alice") == 2000


async def test_room_users_are_those_who_chatted_with_when_last_seen(store: Store) -> None:
    assert await store.room_users("r", 10) == []
    await store.append_chats([draft("a"), draft("b", user="bob"), draft("c", room="s")], 1000)
    await store.append_chats([draft("d", user="bob")], 2000)
    assert await store.room_users("r", 10) == [("bob", 2000), ("alice", 1000)]
    assert await store.room_users("r", 1) == [("bob", 2000)]
    assert await store.room_users("s", 10) == [("alice", 1000)]
    # Left later: seen then. Never moved back by an older time.
    await store.record_seen([("r", "alice", 3000), ("s", "alice", 500)])
    assert await store.room_users("r", 10) == [("alice", 3000), ("bob", 2000)]
    assert await store.room_users("s", 10) == [("alice", 1000)]
    assert await store.last_seen("alice") == 3000
    await store.record_seen([("r", "alice", 2500)])
    assert await store.last_seen("alice") == 3000
    assert (await store.room_users("r", 1)) == [("alice", 3000)]
    # Someone recorded without a message of theirs is one of the room's users too;
    # retention, which deletes messages, keeps last-seen times.
    await store.record_seen([("t", "carol", 4000), ("t", "dave", 4000)])
    assert await store.room_users("t", 10) == [("carol", 4000), ("dave", 4000)]
    await store.prune(Retention(max_age_ms=1), 10_000)
    assert await store.room_users("r", 10) == [("alice", 3000), ("bob", 2000)]
    await store.record_seen([])


async def test_rooms_page_by_name(store: Store) -> None:
    names = ["b", "a", "é", "a-b", "Z"]
    await store.append_chats([draft("x", room=name) for name in names], 1)
    assert [name for name, _ in await store.rooms(10)] == sorted(names)
    assert [name for name, _ in await store.rooms(2)] == ["Z", "a"]
    assert [name for name, _ in await store.rooms(2, "a")] == ["a-b", "b"]
    assert [name for name, _ in await store.rooms(10, "b")] == ["é"]
    assert await store.rooms(10, "é") == []


async def test_a_database_of_schema_1_is_brought_up_to_date(
    open_store: Opener, tmp_path: Path
) -> None:
    """Messages stored before room_users existed make their senders room users."""
    store = open_store()
    first = migrations("sqlite" if isinstance(store, SqliteStore) else "postgres")[0][1]
    rows = [("r", 1, "m1", 1000, "alice", "hi", None), ("r", 2, "m2", 2000, "alice", "yo", None)]
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as db:
            db.executescript(first)
            db.execute("CREATE TABLE hubbub_schema (version INTEGER NOT NULL)")
            db.execute("INSERT INTO hubbub_schema VALUES (1)")
            db.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            db.execute("INSERT INTO rooms VALUES ('r', 2)")
    else:
        assert isinstance(store, PostgresStore)
        db = await asyncpg.connect(store.url)
        await db.execute(first)
        await db.execute("CREATE TABLE hubbub_schema (version INTEGER NOT NULL)")
        await db.execute("INSERT INTO hubbub_schema VALUES (1)")
        await db.executemany("INSERT INTO messages VALUES ($1, $2, $3, $4, $5, $6, $7)", rows)
        await db.execute("INSERT INTO rooms VALUES ('r', 2)")
        await db.close()
    await store.open()
    try:
        assert await store.room_users("r", 10) == [("alice", 2000)]
        [next_message] = await store.append_chats([draft("again")], 3000)
        assert next_message.seq == 3
    finally:
        await store.close()


async def test_data_survives_reopening(open_store: Opener) -> None:
    store = open_store()
    await store.open()
    await store.append_chats([draft("a", client_id="c1"), draft("b")], 1000)
    await store.add_notification("bob", {"title": "t"}, 1000)
    await store.record_seen([("r", "bob", 1500)])
    await store.close()
    store = open_store()
    await store.open()
    try:
        [again, new] = await store.append_chats([draft("a", client_id="c1"), draft("c")], 2000)
        assert again.duplicate
        assert again.seq == 1
        assert new.seq == 3
        assert len(await store.unread_notifications("bob", 10)) == 1
        assert await store.room_users("r", 10) == [("alice", 2000), ("bob", 1500)]
    finally:
        await store.close()


async def test_concurrent_appends_from_many_writers_stay_gapless(open_store: Opener) -> None:
    """Several stores on one database (as several nodes would be) append at once."""
    stores = [open_store() for _ in range(3)]
    for store in stores:
        await store.open()
    try:
        results = await asyncio.gather(
            *(
                store.append_chats(
                    [draft("x", client_id=f"{i}-{batch}-{n}") for n in range(5)], batch
                )
                for i, store in enumerate(stores)
                for batch in range(4)
            )
        )
        seqs = sorted(m.seq for batch in results for m in batch)
        assert seqs == list(range(1, 61))
        # The same client ids again from every writer at once: all duplicates.
        again = await asyncio.gather(
            *(store.append_chats([draft("x", client_id="0-0-0")], 9) for store in stores)
        )
        assert {(m.seq, m.duplicate) for [m] in again} == {(again[0][0].seq, True)}
        assert (await stores[0].room_state("r", 1)).last_seq == 60
    finally:
        for store in stores:
            await store.close()


async def test_a_newer_schema_is_refused(
    open_store: Opener, request: pytest.FixtureRequest
) -> None:
    store = open_store()
    await store.open()
    await store.close()
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as db:
            db.execute("UPDATE hubbub_schema SET version = 999")
    else:
        assert isinstance(store, PostgresStore)
        db = await asyncpg.connect(store.url)
        await db.execute("UPDATE hubbub_schema SET version = 999")
        await db.close()
    newer = open_store()
    with pytest.raises(SchemaTooNew, match=r"schema version 999.*newer hubbub"):
        await newer.open()
    await newer.close()


async def test_a_notification_key_stores_once_per_user(store: Store) -> None:
    first = await store.add_notification("bob", {"title": "invoice"}, 1000, key="inv-1")
    assert not first.duplicate
    assert first.key == "inv-1"
    again = await store.add_notification("bob", {"title": "changed"}, 2000, key="inv-1")
    assert again.duplicate
    assert (again.id, again.ts, again.payload, again.read) == (
        first.id,
        1000,
        {"title": "invoice"},
        False,
    )
    other_user = await store.add_notification("carol", {"title": "invoice"}, 3000, key="inv-1")
    assert not other_user.duplicate
    unkeyed = [await store.add_notification("bob", {"body": "x"}, 4000) for _ in range(2)]
    assert unkeyed[0].id != unkeyed[1].id
    assert not any(n.duplicate for n in unkeyed)
    unread = await store.unread_notifications("bob", 10)
    assert [(n.id, n.key) for n in unread] == [
        (first.id, "inv-1"),
        (unkeyed[0].id, None),
        (unkeyed[1].id, None),
    ]
    # Once read, the key still stores nothing new, and says it was read.
    await store.mark_read("bob", [first.id], 5000)
    read = await store.add_notification("bob", {"title": "invoice"}, 6000, key="inv-1")
    assert read.duplicate
    assert read.read
    assert read.id == first.id


async def test_a_notification_key_is_stored_once_whatever_writes_it(open_store: Opener) -> None:
    """The same key sent at once to several nodes on one database."""
    stores = [open_store() for _ in range(3)]
    for store in stores:
        await store.open()
    try:
        results = await asyncio.gather(
            *(
                store.add_notification("bob", {"title": "once"}, 1000, key="k")
                for store in stores
                for _ in range(3)
            )
        )
        assert len({n.id for n in results}) == 1
        assert sum(not n.duplicate for n in results) == 1
        assert len(await stores[0].unread_notifications("bob", 10)) == 1
    finally:
        for store in stores:
            await store.close()


async def test_a_database_of_the_first_version_is_brought_up_to_date(
    open_store: Opener,
) -> None:
    """Written by a hubbub that knew only migration 1; its notifications stay."""
    store = open_store()
    [(_, first_sql)] = migrations("sqlite" if isinstance(store, SqliteStore) else "postgres")[:1]
    setup = [
        first_sql,
        "CREATE TABLE hubbub_schema (version INTEGER NOT NULL)",
        "INSERT INTO hubbub_schema (version) VALUES (1)",
        "INSERT INTO notifications (user_id, ts, payload)"
        " VALUES ('bob', 1000, '{\"title\": \"old\"}')",
        "INSERT INTO rooms (name, last_seq) VALUES ('r', 2)",
        "INSERT INTO messages (room, seq, id, ts, user_id, body, client_id)"
        " VALUES ('r', 1, 'id1', 900, 'ann', 'first', 'c1'),"
        " ('r', 2, 'id2', 950, 'ann', 'second', NULL)",
    ]
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as db:
            for sql in setup:
                db.executescript(sql)
    else:
        assert isinstance(store, PostgresStore)
        db = await asyncpg.connect(store.url)
        for sql in setup:
            await db.execute(sql)
        await db.close()
    await store.open()
    try:
        [old] = await store.unread_notifications("bob", 10)
        assert old.payload == {"title": "old"}
        keyed = await store.add_notification("bob", {"title": "new"}, 2000, key="k")
        assert not keyed.duplicate
        assert (await store.add_notification("bob", {}, 3000, key="k")).duplicate
        # The chat history came through every migration: numbers, ids and client ids.
        old_chat = await store.history("r", None, 10)
        assert [(m.seq, m.id, m.text, m.client_id) for m in old_chat] == [
            (1, "id1", "first", "c1"),
            (2, "id2", "second", None),
        ]
        [again, new] = await store.append_chats(
            [draft("x", user="ann", client_id="c1"), draft("y")], 3000
        )
        assert (again.duplicate, again.id, new.seq) == (True, "id1", 3)
    finally:
        await store.close()
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as db:
            newest = len(migrations("sqlite"))
            assert db.execute("SELECT version FROM hubbub_schema").fetchall() == [(newest,)]


async def test_a_large_batch_is_numbered_without_gaps(store: Store) -> None:
    """More rows than one statement holds, over several rooms, with an earlier
    batch's client id near the end: every room numbered 1..n, nothing twice."""
    [first] = await store.append_chats([draft("early", room="r3", client_id="k-5")], 1000)
    drafts = [draft(f"m{n}", room=f"r{n % 7}", client_id=f"k-{n}") for n in range(1203)]
    drafts.insert(1100, draft("again", room="r3", client_id="k-5"))
    results = await store.append_chats(drafts, 2000)
    assert len(results) == len(drafts)
    duplicates = [m for m in results if m.duplicate]
    # k-5 was stored before, and drafts[5] carries it too (room r5, not r3: not the same).
    assert [(m.id, m.text) for m in duplicates] == [(first.id, "early")]
    total = 0
    for room in (f"r{n}" for n in range(7)):
        messages = await store.history(room, None, 2000)
        assert [m.seq for m in messages] == list(range(1, len(messages) + 1))
        assert (await store.room_state(room, 1)).last_seq == len(messages)
        total += len(messages)
    assert total == 1 + 1203


async def test_unread_for_many_users_in_one_read(store: Store) -> None:
    for n in range(4):
        await store.add_notification("bob", {"title": f"b{n}"}, 1000 + n)
    carol = await store.add_notification("carol", {"title": "c"}, 2000)
    read = await store.add_notification("dave", {"title": "read"}, 3000)
    await store.mark_read("dave", [read.id], 4000)
    many = [f"user-{n}" for n in range(1200)]  # more than one query's worth of ids
    found = await store.unread_for_users(["bob", "carol", "dave", "nobody", *many], 3)
    assert set(found) == {"bob", "carol"}
    assert [n.payload["title"] for n in found["bob"]] == ["b0", "b1", "b2"]
    assert found["carol"] == [carol]
    assert await store.unread_for_users([], 3) == {}


async def test_a_user_without_unread_notifications_may_be_skipped(store: Store) -> None:
    """may_have_unread is never False for a user who has an unread notification
    (SQLite, the one process owning its file, knows; PostgreSQL says True)."""
    await store.add_notification("dana", {"title": "t"}, 1000)
    assert store.may_have_unread("dana")
    if isinstance(store, SqliteStore):
        assert not store.may_have_unread("erin")  # never had one: nothing to read


async def test_who_has_unread_notifications_survives_reopening(open_store: Opener) -> None:
    store = open_store()
    await store.open()
    await store.add_notification("fay", {"title": "t"}, 1000)
    await store.close()
    again = open_store()
    await again.open()
    try:
        assert again.may_have_unread("fay")
    finally:
        await again.close()
