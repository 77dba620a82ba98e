"""The SQLite store: the default, one file under ``--data-dir``.

Python's ``sqlite3`` blocks, so the database is used from two threads of its own,
never from the event loop: one writer (every write, in order, one transaction per
call) and one reader (WAL mode lets it read while the writer writes). Commits are
``synchronous=FULL``: when an append returns, its batch is on disk.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import json
import queue
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from hubbub.store import (
    OVER_CAP_NOTIFICATIONS,
    ChatDraft,
    Notification,
    OpenBatch,
    Retention,
    RoomState,
    StoredChat,
    StoreError,
    assign_sequence,
    new_ids,
    stored_chat_from_row,
)
from hubbub.store.migrations import check_not_newer, migrations

DATABASE_FILE = "hubbub.db"
"""The database's name inside ``--data-dir``."""

BUSY_TIMEOUT_MS = 5000
"""How long a statement waits for a lock held by another process on the file."""

T = TypeVar("T")


class _Worker:
    """One daemon thread running calls in order: a database connection's home.

    A daemon, so that a server that is killed or never closes its store cannot
    hang the interpreter's exit; SQLite's journal makes an unfinished write harmless.
    """

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._stopped = False

    def _run(self) -> None:
        while True:
            item = self._calls.get()
            if item is None:
                return
            call, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as exc:
                future.set_exception(exc)

    async def call(self, work: Callable[[], T]) -> T:
        return await self.submit(work)

    def submit(self, work: Callable[[], T]) -> asyncio.Future[T]:
        """Queue ``work`` for the thread now; its result, once it has run."""
        if self._stopped:  # nothing would ever run it
            refused: asyncio.Future[T] = asyncio.get_running_loop().create_future()
            refused.set_exception(StoreError("the store is closed"))
            return refused
        future: Future[T] = Future()
        self._calls.put((work, future))
        return asyncio.wrap_future(future)

    def stop(self) -> None:
        self._stopped = True
        self._calls.put(None)


_MESSAGE_COLUMNS = "room, seq, id, ts, user_id, body, client_id"
_EARLIER_COPIES = (
    "SELECT m.room, m.seq, m.id, m.ts, m.user_id, m.body, m.client_id"
    " FROM json_each(?) AS k JOIN messages AS m"
    " ON m.room = json_extract(k.value, '$[0]')"
    " AND m.user_id = json_extract(k.value, '$[1]')"
    " AND m.client_id = json_extract(k.value, '$[2]')"
    " WHERE m.client_id IS NOT NULL"
)
"""Stored messages with the (room, user id, client id) of a batch's drafts, given
as a JSON list of triples."""
_encode_rows = msgspec.json.Encoder().encode
_LAST_SEQS = (
    "SELECT json_group_array(json_array(name, last_seq)) FROM rooms"
    " WHERE name IN (SELECT value FROM json_each(?))"
)
"""The last sequence numbers of the rooms named in a JSON list, as one JSON list of
pairs (one row: see ``_messages_insert`` on why every statement of a batch is one step)."""
_ROOMS_UPSERT = (
    "INSERT INTO rooms (name, last_seq) SELECT value->>0, value->>1 FROM json_each(?)"
    " WHERE true ON CONFLICT (name) DO UPDATE SET last_seq = excluded.last_seq"
)
_SEEN_UPSERT = (
    "INSERT INTO room_users (room, user_id, last_seen)"
    " SELECT value->>0, value->>1, value->>2 FROM json_each(?)"
    " WHERE true ON CONFLICT (room, user_id)"
    " DO UPDATE SET last_seen = MAX(room_users.last_seen, excluded.last_seen)"
)
_USERS_SEEN_UPSERT = (
    "INSERT INTO users (user_id, last_seen) SELECT value->>0, value->>1 FROM json_each(?)"
    " WHERE true ON CONFLICT (user_id)"
    " DO UPDATE SET last_seen = MAX(users.last_seen, excluded.last_seen)"
)
"""The upserts take their rows as one JSON list too (``WHERE true`` keeps SQLite from
reading ``ON CONFLICT`` as a join's constraint)."""
_MESSAGE_FIELDS = 7
_ROWS_PER_INSERT_MAX = 1024
"""The most rows one ``INSERT`` of a batch carries (fewer where SQLite allows fewer
bound parameters); a bigger batch takes several."""


@functools.cache
def _insert_sizes(most: int) -> list[int]:
    """The row counts insert statements are made for: powers of two up to 64,
    then multiples of 64 up to ``most``. A batch is padded up to the next one,
    so that a handful of prepared statements (kept in ``sqlite3``'s cache) serve
    every batch size."""
    sizes = [size for size in (1, 2, 4, 8, 16, 32, 64) if size < most]
    sizes += range(64, most, 64)
    return [*dict.fromkeys(sizes), most]


@functools.cache
def _messages_insert(rows: int) -> str:
    """One statement inserting ``rows`` messages given as bound parameters; rows
    of NULLs (padding) are skipped.

    One statement, not ``executemany``: ``sqlite3`` lets go of the GIL around every
    step of a statement and must take it back from the event loop's thread after
    each, a wait of up to the interpreter's switch interval whenever the loop is
    busy. Per row, that wait set the pace of a chat storm; a batch's handful of
    one-step statements waits a handful of times. Bound values rather than one
    JSON list (as the upserts take theirs): SQLite would parse each row's JSON
    once per column, about a third of the statement's CPU."""
    values = ",".join(["(?,?,?,?,?,?,?)"] * rows)
    return (
        f"INSERT INTO messages ({_MESSAGE_COLUMNS})"
        f" SELECT * FROM (VALUES {values}) WHERE column1 IS NOT NULL"
    )


_IDS_PER_QUERY = 500
"""User ids in one ``IN (...)``: well under SQLite's limit on bound parameters."""


class SqliteStore:
    """A :class:`~hubbub.store.Store` in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._write_thread = _Worker("hubbub-sqlite-writer")
        self._read_thread = _Worker("hubbub-sqlite-reader")
        self._with_unread: set[str] | None = None
        """The users who may have unread notifications: read at open, added to
        before each notification is stored (one server process owns the file)."""

    # -- plumbing -------------------------------------------------------------

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` in a transaction of its own, on the writer's thread."""
        return await self._submit(self._write_thread, self._transaction(work))

    def _transaction(
        self,
        work: Callable[[sqlite3.Connection], T],
        committed: Callable[[T], None] | None = None,
    ) -> Callable[[], T]:
        """What runs ``work`` in a transaction of its own on the writer's thread,
        then ``committed`` (on that thread) with its result, if given."""

        def run() -> T:
            db = self._writer
            if db is None:
                raise StoreError("the store is closed")
            db.execute("BEGIN IMMEDIATE")
            try:
                result = work(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            if committed is not None:
                committed(result)
            return result

        return run

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            db = self._reader
            if db is None:
                raise StoreError("the store is closed")
            return work(db)

        return await self._submit(self._read_thread, run)

    @staticmethod
    def _submit(thread: _Worker, run: Callable[[], T]) -> asyncio.Future[T]:
        """``run`` queued for ``thread`` now; a SQLite error it raises comes back
        as a :class:`StoreError`."""

        def translated() -> T:
            try:
                return run()
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite: {exc}") from exc

        return thread.submit(translated)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    # -- lifecycle --------------------------------------------------------------

    async def open(self) -> None:
        def run() -> None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the data folder {self.path.parent}: {exc.strerror}"
                ) from None
            self._writer = self._connect()
            self._migrate(self._writer)
            self._reader = self._connect()
            self._with_unread = {
                user_id
                for (user_id,) in self._reader.execute(
                    "SELECT DISTINCT user_id FROM notifications WHERE read_at IS NULL"
                )
            }

        await self._submit(self._write_thread, run)

    def _migrate(self, db: sqlite3.Connection) -> None:
        known = migrations("sqlite")
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("CREATE TABLE IF NOT EXISTS hubbub_schema (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM hubbub_schema").fetchone()
            version = row[0] if row else 0
            check_not_newer(version, len(known), f"at {self.path}")
            for number, sql in known[version:]:
                # executescript would commit on its own; one statement at a time
                # keeps each migration inside this transaction.
                for statement in _statements(sql):
                    db.execute(statement)
                if number == 1 and row is None:
                    db.execute("INSERT INTO hubbub_schema (version) VALUES (1)")
                else:
                    db.execute("UPDATE hubbub_schema SET version = ?", (number,))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    async def close(self) -> None:
        def close_writer() -> None:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

        def close_reader() -> None:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

        await self._read_thread.call(close_reader)
        await self._write_thread.call(close_writer)
        self._read_thread.stop()
        self._write_thread.stop()

    # -- chat -------------------------------------------------------------------

    async def append_chats(self, drafts: list[ChatDraft], now_ms: int) -> list[StoredChat]:
        return await self._write(lambda db: _append_chats(db, drafts, now_ms))

    def append_gathered(self, batch: OpenBatch) -> Awaitable[list[StoredChat]]:
        # Queued for the writer's thread at once (not from a task, which a busy
        # event loop starts 20 ms later and more), and taken there once the
        # batches ahead of it are written: the thread goes from one batch to the
        # next without waiting for the loop. Told from that thread as soon as it
        # is committed: the loop reports it at its next turn.
        work = self._transaction(lambda db: _append_chats(db, *batch.take()), batch.written)
        return self._submit(self._write_thread, work)

    async def room_state(self, room: str, recent: int) -> RoomState:
        def work(db: sqlite3.Connection) -> RoomState:
            row = db.execute("SELECT last_seq FROM rooms WHERE name = ?", (room,)).fetchone()
            if row is None:
                return RoomState(last_seq=0, recent=[])
            rows = db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE room = ? ORDER BY seq DESC LIMIT ?",
                (room, recent),
            ).fetchall()
            return RoomState(
                last_seq=row[0], recent=[stored_chat_from_row(r) for r in reversed(rows)]
            )

        return await self._read(work)

    async def history(self, room: str, before_seq: int | None, limit: int) -> list[StoredChat]:
        before = before_seq if before_seq is not None else 2**62

        def work(db: sqlite3.Connection) -> list[StoredChat]:
            rows = db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE room = ? AND seq < ?"
                " ORDER BY seq DESC LIMIT ?",
                (room, before, limit),
            ).fetchall()
            return [stored_chat_from_row(r) for r in reversed(rows)]

        return await self._read(work)

    async def rooms(self, limit: int, after: str | None = None) -> list[tuple[str, int]]:
        def work(db: sqlite3.Connection) -> list[tuple[str, int]]:
            rows = db.execute(
                "SELECT name, last_seq FROM rooms WHERE last_seq > 0 AND name > ?"
                " ORDER BY name LIMIT ?",
                ("" if after is None else after, limit),
            ).fetchall()
            return [(name, last_seq) for name, last_seq in rows]

        return await self._read(work)

    async def room_users(self, room: str, limit: int) -> list[tuple[str, int]]:
        def work(db: sqlite3.Connection) -> list[tuple[str, int]]:
            rows = db.execute(
                "SELECT user_id, last_seen FROM room_users WHERE room = ?"
                " ORDER BY last_seen DESC, user_id LIMIT ?",
                (room, limit),
            ).fetchall()
            return [(user_id, last_seen) for user_id, last_seen in rows]

        return await self._read(work)

    async def record_seen(self, seen: list[tuple[str, str, int]]) -> None:
        def work(db: sqlite3.Connection) -> None:
            _upsert(db, _SEEN_UPSERT, seen)
            _upsert(db, _USERS_SEEN_UPSERT, [(user_id, ts_ms) for _, user_id, ts_ms in seen])

        await self._write(work)

    # -- notifications and users ------------------------------------------------

    async def add_notification(
        self, user_id: str, payload: dict[str, Any], now_ms: int, key: str | None = None
    ) -> Notification:
        encoded = json.dumps(payload, separators=(",", ":"))
        if self._with_unread is not None:
            # Before it is stored: a connect meanwhile reads it rather than skip.
            self._with_unread.add(user_id)

        def work(db: sqlite3.Connection) -> Notification:
            if key is not None:
                first = db.execute(
                    "SELECT id, ts, payload, read_at FROM notifications"
                    " WHERE user_id = ? AND key = ?",
                    (user_id, key),
                ).fetchone()
                if first is not None:
                    return Notification(
                        id=first[0],
                        user_id=user_id,
                        ts=first[1],
                        payload=json.loads(first[2]),
                        read=first[3] is not None,
                        key=key,
                        duplicate=True,
                    )
            row = db.execute(
                "INSERT INTO notifications (user_id, ts, payload, key) VALUES (?, ?, ?, ?)"
                " RETURNING id",
                (user_id, now_ms, encoded, key),
            ).fetchone()
            return Notification(id=row[0], user_id=user_id, ts=now_ms, payload=payload, key=key)

        return await self._write(work)

    async def unread_notifications(self, user_id: str, limit: int) -> list[Notification]:
        def work(db: sqlite3.Connection) -> list[Notification]:
            rows = db.execute(
                "SELECT id, ts, payload, key FROM notifications"
                " WHERE user_id = ? AND read_at IS NULL ORDER BY id LIMIT ?",
                (user_id, limit),
            ).fetchall()
            return [
                Notification(id=i, user_id=user_id, ts=ts, payload=json.loads(payload), key=key)
                for i, ts, payload, key in rows
            ]

        return await self._read(work)

    async def unread_for_users(
        self, user_ids: list[str], limit: int
    ) -> dict[str, list[Notification]]:
        def work(db: sqlite3.Connection) -> dict[str, list[Notification]]:
            found: dict[str, list[Notification]] = {}
            for start in range(0, len(user_ids), _IDS_PER_QUERY):
                chunk = user_ids[start : start + _IDS_PER_QUERY]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    "SELECT user_id, id, ts, payload, key FROM (SELECT user_id, id, ts,"
                    " payload, key, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY id) AS n"
                    f" FROM notifications WHERE read_at IS NULL AND user_id IN ({marks}))"
                    " WHERE n <= ? ORDER BY user_id, id",
                    (*chunk, limit),
                ).fetchall()
                for user_id, i, ts, payload, key in rows:
                    found.setdefault(user_id, []).append(
                        Notification(
                            id=i, user_id=user_id, ts=ts, payload=json.loads(payload), key=key
                        )
                    )
            return found

        return await self._read(work)

    def may_have_unread(self, user_id: str) -> bool:
        with_unread = self._with_unread
        return with_unread is None or user_id in with_unread

    async def mark_read(self, user_id: str, ids: list[int], now_ms: int) -> list[int]:
        def work(db: sqlite3.Connection) -> list[int]:
            marked = []
            for notification_id in ids:
                row = db.execute(
                    "UPDATE notifications SET read_at = ?"
                    " WHERE id = ? AND user_id = ? AND read_at IS NULL RETURNING id",
                    (now_ms, notification_id, user_id),
                ).fetchone()
                if row is not None:
                    marked.append(row[0])
            return marked

        return await self._write(work)

    async def set_last_seen(self, user_id: str, ts_ms: int) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO users (user_id, last_seen) VALUES (?, ?)"
                " ON CONFLICT (user_id) DO UPDATE SET last_seen = excluded.last_seen",
                (user_id, ts_ms),
            )

        await self._write(work)

    async def last_seen(self, user_id: str) -> int | None:
        def work(db: sqlite3.Connection) -> int | None:
            row = db.execute("SELECT last_seen FROM users WHERE user_id = ?", (user_id,)).fetchone()
            return None if row is None else int(row[0])

        return await self._read(work)

    # -- retention ----------------------------------------------------------------

    async def prune(self, retention: Retention, now_ms: int) -> int:
        def work(db: sqlite3.Connection) -> int:
            removed = 0
            if retention.max_age_ms is not None:
                cursor = db.execute(
                    "DELETE FROM messages WHERE ts < ?", (now_ms - retention.max_age_ms,)
                )
                removed += cursor.rowcount
            if retention.max_messages is not None:
                cursor = db.execute(
                    "DELETE FROM messages WHERE EXISTS (SELECT 1 FROM rooms"
                    " WHERE rooms.name = messages.room AND messages.seq <= rooms.last_seq - ?)",
                    (retention.max_messages,),
                )
                removed += cursor.rowcount
            return removed

        return await self._write(work)

    async def prune_notifications(self, retention: Retention, now_ms: int) -> int:
        def work(db: sqlite3.Connection) -> int:
            removed = 0
            if retention.notification_read_max_age_ms is not None:
                cursor = db.execute(
                    "DELETE FROM notifications WHERE read_at IS NOT NULL AND read_at < ?",
                    (now_ms - retention.notification_read_max_age_ms,),
                )
                removed += cursor.rowcount
            if retention.max_notifications_per_user is not None:
                cursor = db.execute(
                    OVER_CAP_NOTIFICATIONS.replace("$1", "?1"),
                    (retention.max_notifications_per_user,),
                )
                removed += cursor.rowcount
            return removed

        return await self._write(work)


def _statements(sql: str) -> list[str]:
    """The statements of a migration file (no semicolons inside them)."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]


def _upsert(db: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """``sql`` (taking its rows as one JSON list) run for ``rows``, if any."""
    if rows:
        db.execute(sql, (_encode_rows(rows),))


def _append_chats(db: sqlite3.Connection, drafts: list[ChatDraft], now_ms: int) -> list[StoredChat]:
    """A batch of chat (:meth:`SqliteStore.append_chats`) inside the open transaction."""
    rooms = list(dict.fromkeys(draft.room for draft in drafts))
    found = db.execute(_LAST_SEQS, (_encode_rows(rooms),)).fetchone()[0]
    last_seqs = dict.fromkeys(rooms, 0)
    last_seqs.update(json.loads(found))
    # Optimistic: a clientId stored by an earlier batch is rare (a client
    # sending again after a lost connection), and the unique index finds it
    # anyway. So the batch goes in without looking first; if the index
    # refuses a row, SQLite backs out that one statement (the transaction
    # goes on) and the batch is done again knowing the earlier copies.
    seqs = dict(last_seqs)
    try:
        results, rows = assign_sequence(drafts, seqs, {}, now_ms, new_ids(len(drafts)))
        _insert_messages(db, rows)
    except sqlite3.IntegrityError:
        seqs = dict(last_seqs)
        existing = _earlier_copies(db, drafts)
        results, rows = assign_sequence(drafts, seqs, existing, now_ms, new_ids(len(drafts)))
        _insert_messages(db, rows)
    changed = [(room, seq) for room, seq in seqs.items() if seq != last_seqs[room]]
    _upsert(db, _ROOMS_UPSERT, changed)
    _upsert(db, _SEEN_UPSERT, list(dict.fromkeys((r.room, r.user_id, now_ms) for r in rows)))
    return results


def _insert_messages(db: sqlite3.Connection, rows: list[StoredChat]) -> None:
    """Insert ``rows``: one statement, or (more rows than one may carry) several
    that stand or fall together."""
    most = min(
        _ROWS_PER_INSERT_MAX,
        db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // _MESSAGE_FIELDS,
    )
    if len(rows) <= most:
        _insert_up_to(db, rows, most)
        return
    # A refused row (a clientId stored before) must leave none of the batch
    # inserted, as a single statement would: the caller does it again.
    db.execute("SAVEPOINT insert_messages")
    try:
        for start in range(0, len(rows), most):
            _insert_up_to(db, rows[start : start + most], most)
    except BaseException:
        db.execute("ROLLBACK TO insert_messages")
        raise
    finally:
        db.execute("RELEASE insert_messages")


def _insert_up_to(db: sqlite3.Connection, rows: list[StoredChat], most: int) -> None:
    if not rows:
        return
    sizes = _insert_sizes(most)
    size = sizes[bisect.bisect_left(sizes, len(rows))]
    values = [
        value for r in rows for value in (r.room, r.seq, r.id, r.ts, r.user_id, r.text, r.client_id)
    ]
    values += [None] * (_MESSAGE_FIELDS * (size - len(rows)))
    db.execute(_messages_insert(size), values)


def _earlier_copies(
    db: sqlite3.Connection, drafts: list[ChatDraft]
) -> dict[tuple[str, str, str], StoredChat]:
    """The stored copies of the drafts' client ids, in one query."""
    keys = {(d.room, d.user_id, d.client_id) for d in drafts if d.client_id is not None}
    existing: dict[tuple[str, str, str], StoredChat] = {}
    if keys:
        for row in db.execute(_EARLIER_COPIES, (json.dumps(list(keys)),)).fetchall():
            existing[(row[0], row[4], row[6])] = stored_chat_from_row(row)
    return existing
