"""The PostgreSQL store (``--database-url postgresql://...``), on asyncpg.

An append locks the rows of the rooms it writes to (in name order, so two batches
never deadlock) before it reads their last sequence numbers and looks for earlier
copies of its client ids: writers from any number of nodes are serialized per room,
so numbers stay gapless and a client id is stored once.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import asyncpg

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

POOL_SIZE = 4
"""Connections to the database: one for the chat writer, the rest for reads."""

_MIGRATION_LOCK = 0x6875_6262_7562  # "hubbub": one node migrates at a time
_MESSAGE_COLUMNS = "room, seq, id, ts, user_id, body, client_id"
_SEEN_CONFLICT = (
    " ON CONFLICT (room, user_id)"
    " DO UPDATE SET last_seen = GREATEST(room_users.last_seen, excluded.last_seen)"
)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _translated(
    method: Callable[_P, Coroutine[Any, Any, _R]],
) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """The database's failures as :class:`StoreError`, which the server handles."""

    @functools.wraps(method)
    async def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await method(*args, **kwargs)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"PostgreSQL: {exc}") from exc

    return run


class PostgresStore:
    """A :class:`~hubbub.store.Store` in a PostgreSQL database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._pool: asyncpg.Pool | None = None
        self._appending = asyncio.Lock()
        """One batch at a time: batches taken in turn get their numbers in turn."""

    @property
    def _where(self) -> str:
        # The URL may hold a password: name the database by host and name only.
        try:
            from urllib.parse import urlsplit

            parts = urlsplit(self.url)
            return f"{parts.hostname or 'localhost'}{parts.path or ''}"
        except ValueError:  # pragma: no cover
            return "(database url)"

    def _ready(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError("the store is closed")
        return self._pool

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=POOL_SIZE, init=_init_connection
            )
        except (OSError, asyncpg.PostgresError, ValueError) as exc:
            raise StoreError(f"cannot connect to PostgreSQL at {self._where}: {exc}") from None
        try:
            await self._migrate()
        except BaseException:
            await self.close()
            raise

    async def _migrate(self) -> None:
        known = migrations("postgres")
        async with self._ready().acquire() as db, db.transaction():
            await db.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await db.execute("CREATE TABLE IF NOT EXISTS hubbub_schema (version INTEGER NOT NULL)")
            row = await db.fetchrow("SELECT version FROM hubbub_schema")
            version = row[0] if row else 0
            check_not_newer(version, len(known), f"at {self._where}")
            for number, sql in known[version:]:
                await db.execute(sql)
                if row is None:
                    await db.execute("INSERT INTO hubbub_schema (version) VALUES ($1)", number)
                    row = (number,)
                else:
                    await db.execute("UPDATE hubbub_schema SET version = $1", number)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    # -- chat -------------------------------------------------------------------

    async def append_gathered(self, batch: OpenBatch) -> list[StoredChat]:
        async with self._appending:  # wakes its waiters in the order they came
            drafts, now_ms = batch.take()
            return await self.append_chats(drafts, now_ms)

    async def append_chats(self, drafts: list[ChatDraft], now_ms: int) -> list[StoredChat]:
        rooms = sorted({draft.room for draft in drafts})
        try:
            async with self._ready().acquire() as db, db.transaction():
                await db.execute(
                    "INSERT INTO rooms (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
                    rooms,
                )
                locked = await db.fetch(
                    "SELECT name, last_seq FROM rooms WHERE name = ANY($1::text[])"
                    " ORDER BY name FOR UPDATE",
                    rooms,
                )
                last_seqs = {row[0]: row[1] for row in locked}
                keyed = [d for d in drafts if d.client_id is not None]
                existing: dict[tuple[str, str, str], StoredChat] = {}
                if keyed:
                    found = await db.fetch(
                        f"SELECT {_MESSAGE_COLUMNS} FROM messages"
                        " WHERE (room, user_id, client_id) IN (SELECT * FROM"
                        " unnest($1::text[], $2::text[], $3::text[]))",
                        [d.room for d in keyed],
                        [d.user_id for d in keyed],
                        [d.client_id for d in keyed],
                    )
                    for row in found:
                        chat = stored_chat_from_row(row)
                        existing[(chat.room, chat.user_id, row[6])] = chat
                results, rows = assign_sequence(
                    drafts, last_seqs, existing, now_ms, new_ids(len(drafts))
                )
                if rows:
                    await db.execute(
                        f"INSERT INTO messages ({_MESSAGE_COLUMNS}) SELECT * FROM unnest("
                        "$1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[],"
                        " $6::text[], $7::text[])",
                        [r.room for r in rows],
                        [r.seq for r in rows],
                        [r.id for r in rows],
                        [r.ts for r in rows],
                        [r.user_id for r in rows],
                        [r.text for r in rows],
                        [r.client_id for r in rows],
                    )
                    await db.execute(
                        "UPDATE rooms SET last_seq = v.seq FROM"
                        " unnest($1::text[], $2::bigint[]) AS v(name, seq)"
                        " WHERE rooms.name = v.name",
                        list(last_seqs),
                        list(last_seqs.values()),
                    )
                    senders = sorted({(r.room, r.user_id) for r in rows})
                    await db.execute(
                        "INSERT INTO room_users (room, user_id, last_seen)"
                        " SELECT room, user_id, $3 FROM unnest($1::text[], $2::text[])"
                        " AS v(room, user_id)" + _SEEN_CONFLICT,
                        [room for room, _ in senders],
                        [user for _, user in senders],
                        now_ms,
                    )
                return results
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"PostgreSQL: {exc}") from exc

    @_translated
    async def room_state(self, room: str, recent: int) -> RoomState:
        async with self._ready().acquire() as db, db.transaction(isolation="repeatable_read"):
            last = await db.fetchval("SELECT last_seq FROM rooms WHERE name = $1", room)
            if last is None:
                return RoomState(last_seq=0, recent=[])
            rows = await db.fetch(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE room = $1"
                " ORDER BY seq DESC LIMIT $2",
                room,
                recent,
            )
        return RoomState(last_seq=last, recent=[stored_chat_from_row(r) for r in reversed(rows)])

    @_translated
    async def history(self, room: str, before_seq: int | None, limit: int) -> list[StoredChat]:
        before = before_seq if before_seq is not None else 2**62
        rows = await self._ready().fetch(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE room = $1 AND seq < $2"
            " ORDER BY seq DESC LIMIT $3",
            room,
            before,
            limit,
        )
        return [stored_chat_from_row(r) for r in reversed(rows)]

    @_translated
    async def rooms(self, limit: int, after: str | None = None) -> list[tuple[str, int]]:
        rows = await self._ready().fetch(
            'SELECT name, last_seq FROM rooms WHERE last_seq > 0 AND name COLLATE "C" > $1'
            ' ORDER BY name COLLATE "C" LIMIT $2',
            "" if after is None else after,
            limit,
        )
        return [(row[0], row[1]) for row in rows]

    @_translated
    async def room_users(self, room: str, limit: int) -> list[tuple[str, int]]:
        rows = await self._ready().fetch(
            "SELECT user_id, last_seen FROM room_users WHERE room = $1"
            ' ORDER BY last_seen DESC, user_id COLLATE "C" LIMIT $2',
            room,
            limit,
        )
        return [(row[0], row[1]) for row in rows]

    @_translated
    async def record_seen(self, seen: list[tuple[str, str, int]]) -> None:
        async with self._ready().acquire() as db, db.transaction():
            await db.executemany(
                "INSERT INTO room_users (room, user_id, last_seen) VALUES ($1, $2, $3)"
                + _SEEN_CONFLICT,
                sorted(seen),  # one lock order for every writer
            )
            await db.executemany(
                "INSERT INTO users (user_id, last_seen) VALUES ($1, $2) ON CONFLICT (user_id)"
                " DO UPDATE SET last_seen = GREATEST(users.last_seen, excluded.last_seen)",
                sorted((user_id, ts_ms) for _, user_id, ts_ms in seen),
            )

    # -- notifications and users ------------------------------------------------

    @_translated
    async def add_notification(
        self, user_id: str, payload: dict[str, Any], now_ms: int, key: str | None = None
    ) -> Notification:
        try:
            async with self._ready().acquire() as db, db.transaction():
                notification_id = await db.fetchval(
                    "INSERT INTO notifications (user_id, ts, payload, key) VALUES ($1, $2, $3, $4)"
                    " ON CONFLICT (user_id, key) WHERE key IS NOT NULL DO NOTHING RETURNING id",
                    user_id,
                    now_ms,
                    payload,
                    key,
                )
                if notification_id is not None:
                    return Notification(
                        id=notification_id, user_id=user_id, ts=now_ms, payload=payload, key=key
                    )
                first = await db.fetchrow(
                    "SELECT id, ts, payload, read_at FROM notifications"
                    " WHERE user_id = $1 AND key = $2",
                    user_id,
                    key,
                )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"PostgreSQL: {exc}") from exc
        return Notification(
            id=first[0],
            user_id=user_id,
            ts=first[1],
            payload=first[2],
            read=first[3] is not None,
            key=key,
            duplicate=True,
        )

    @_translated
    async def unread_notifications(self, user_id: str, limit: int) -> list[Notification]:
        rows = await self._ready().fetch(
            "SELECT id, ts, payload, key FROM notifications"
            " WHERE user_id = $1 AND read_at IS NULL ORDER BY id LIMIT $2",
            user_id,
            limit,
        )
        return [
            Notification(id=row[0], user_id=user_id, ts=row[1], payload=row[2], key=row[3])
            for row in rows
        ]

    @_translated
    async def unread_for_users(
        self, user_ids: list[str], limit: int
    ) -> dict[str, list[Notification]]:
        rows = await self._ready().fetch(
            "SELECT user_id, id, ts, payload, key FROM (SELECT user_id, id, ts, payload, key,"
            " ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY id) AS n FROM notifications"
            " WHERE read_at IS NULL AND user_id = ANY($1::text[])) AS unread"
            " WHERE n <= $2 ORDER BY user_id, id",
            user_ids,
            limit,
        )
        found: dict[str, list[Notification]] = {}
        for row in rows:
            found.setdefault(row[0], []).append(
                Notification(id=row[1], user_id=row[0], ts=row[2], payload=row[3], key=row[4])
            )
        return found

    def may_have_unread(self, user_id: str) -> bool:
        return True  # other nodes add notifications to the same database

    @_translated
    async def mark_read(self, user_id: str, ids: list[int], now_ms: int) -> list[int]:
        rows = await self._ready().fetch(
            "UPDATE notifications SET read_at = $1"
            " WHERE id = ANY($2::bigint[]) AND user_id = $3 AND read_at IS NULL RETURNING id",
            now_ms,
            ids,
            user_id,
        )
        marked = {row[0] for row in rows}
        return [i for i in ids if i in marked]

    @_translated
    async def set_last_seen(self, user_id: str, ts_ms: int) -> None:
        await self._ready().execute(
            "INSERT INTO users (user_id, last_seen) VALUES ($1, $2)"
            " ON CONFLICT (user_id) DO UPDATE SET last_seen = excluded.last_seen",
            user_id,
            ts_ms,
        )

    @_translated
    async def last_seen(self, user_id: str) -> int | None:
        value = await self._ready().fetchval(
            "SELECT last_seen FROM users WHERE user_id = $1", user_id
        )
        return None if value is None else int(value)

    # -- retention ----------------------------------------------------------------

    @_translated
    async def prune(self, retention: Retention, now_ms: int) -> int:
        removed = 0
        async with self._ready().acquire() as db, db.transaction():
            if retention.max_age_ms is not None:
                status = await db.execute(
                    "DELETE FROM messages WHERE ts < $1", now_ms - retention.max_age_ms
                )
                removed += int(status.split()[-1])
            if retention.max_messages is not None:
                status = await db.execute(
                    "DELETE FROM messages USING rooms WHERE rooms.name = messages.room"
                    " AND messages.seq <= rooms.last_seq - $1",
                    retention.max_messages,
                )
                removed += int(status.split()[-1])
        return removed

    @_translated
    async def prune_notifications(self, retention: Retention, now_ms: int) -> int:
        removed = 0
        async with self._ready().acquire() as db, db.transaction():
            if retention.notification_read_max_age_ms is not None:
                status = await db.execute(
                    "DELETE FROM notifications WHERE read_at IS NOT NULL AND read_at < $1",
                    now_ms - retention.notification_read_max_age_ms,
                )
                removed += int(status.split()[-1])
            if retention.max_notifications_per_user is not None:
                status = await db.execute(
                    OVER_CAP_NOTIFICATIONS, retention.max_notifications_per_user
                )
                removed += int(status.split()[-1])
        return removed


async def _init_connection(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec(
        "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
    )
