"""The store as the server adapter runs it: opening it, feeding the hub's requests
to it, handing the answers back, and the retention task."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from hubbub.core.storage import PendingChat, StorageEvents
from hubbub.protocol.messages import Ref
from hubbub.settings import ServerSettings
from hubbub.store import Retention, RoomState, Store, StoredChat, StoreError
from hubbub.store.writer import ChatWriter

log = logging.getLogger("hubbub.store")

T = TypeVar("T")

CHAT_GAP_READ_MAX = 10_000
"""Most messages one read of a gap in a room's chat fetches (the newest of the gap:
what is older is skipped, and a client catches up on it from the history)."""


def create_store(settings: ServerSettings) -> Store:
    """The backend the settings name: PostgreSQL with a database URL, else SQLite."""
    if settings.database_url:
        from hubbub.store.postgres import PostgresStore

        return PostgresStore(settings.database_url)
    from hubbub.store.sqlite import DATABASE_FILE, SqliteStore

    return SqliteStore(settings.data_dir / DATABASE_FILE)


def now_ms() -> int:
    return int(time.time() * 1000)


class StoreBridge:
    """The hub's :class:`~hubbub.core.storage.Storage`, carried out on a real store."""

    def __init__(self, store: Store, settings: ServerSettings) -> None:
        self.store = store
        self._settings = settings
        self._hub: StorageEvents | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._retention: asyncio.Task[None] | None = None
        self._seen: dict[tuple[str, str], int] = {}
        """Last-seen times waiting to be written: (room, user id) -> ms."""
        self._seen_flush: asyncio.Task[None] | None = None
        self._unread_waiting: list[tuple[str, str, int]] = []
        """(session id, user id, limit): unread notifications to read, together."""
        self._unread_task: asyncio.Task[None] | None = None
        self.writer: ChatWriter[PendingChat] = ChatWriter(
            store,
            self._stored,
            self._failed,
            max_batch=settings.store_batch_max,
            max_pending=settings.store_max_pending,
            delay=settings.store_batch_delay,
        )

    def attach(self, hub: StorageEvents) -> None:
        self._hub = hub

    @property
    def hub(self) -> StorageEvents:
        if self._hub is None:  # pragma: no cover - attached at creation
            raise RuntimeError("no hub attached")
        return self._hub

    async def start(self) -> None:
        await self.store.open()
        self.writer.start()
        if not self._retention_settings().keeps_everything:
            self._retention = asyncio.create_task(self._retain())

    async def stop(self) -> None:
        """Write what is queued, then close the store."""
        if self._retention is not None:
            self._retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention
        await self.writer.close()
        if self._seen_flush is not None:
            await self._seen_flush
        await self._write_seen()
        if self._unread_task is not None:
            await asyncio.gather(self._unread_task, return_exceptions=True)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.store.close()

    # -- the hub's requests -------------------------------------------------------

    def append_chat(self, pending: PendingChat) -> bool:
        return self.writer.add(pending, pending.draft)

    def load_room(self, room: str, recent: int) -> None:
        async def load() -> None:
            try:
                state = await self.store.room_state(room, recent)
                if self._settings.offline_on_join:
                    seen = await self.store.room_users(room, self._settings.offline_on_join)
                    state = RoomState(state.last_seq, state.recent, seen)
            except StoreError as exc:
                log.error("event=store-failed op=load-room room=%r error=%s", room, exc)
                self.hub.room_load_failed(room)
                return
            self.hub.room_loaded(room, state)

        self._spawn(load())

    def record_seen(self, room: str, user_id: str, ts_ms: int) -> None:
        # Gathered and written together: a crowd that leaves at once (a restart,
        # a network cut) costs one transaction, not one fsync per member.
        key = (room, user_id)
        if self._seen.get(key, -1) < ts_ms:
            self._seen[key] = ts_ms
        if self._seen_flush is None:
            self._seen_flush = asyncio.ensure_future(self._write_seen_soon())

    async def _write_seen_soon(self) -> None:
        # Stays the flush in progress until nothing is left to write: stop()
        # waits for it, so that no write is in flight when the store closes.
        try:
            await asyncio.sleep(self._settings.store_batch_delay)
            while self._seen:
                await self._write_seen()
        finally:
            self._seen_flush = None

    async def _write_seen(self) -> None:
        seen, self._seen = self._seen, {}
        if not seen:
            return
        entries = [(room, user_id, ts) for (room, user_id), ts in seen.items()]
        try:
            await self.store.record_seen(entries)
        except StoreError as exc:
            log.error("event=store-failed op=record-seen users=%d error=%s", len(entries), exc)

    def load_history(
        self, session_id: str, room: str, before_seq: int | None, limit: int, ref: Ref | None
    ) -> None:
        async def load() -> None:
            messages = await self._attempt(
                "history", lambda: self.store.history(room, before_seq, limit)
            )
            if messages is None:
                self.hub.store_failed(session_id, ref)
            else:
                self.hub.history_loaded(session_id, room, messages, ref)

        self._spawn(load())

    def load_chat_gap(self, room: str, after_seq: int, before_seq: int) -> None:
        async def load() -> None:
            limit = min(before_seq - after_seq - 1, CHAT_GAP_READ_MAX)
            messages = await self._attempt(
                "chat-gap", lambda: self.store.history(room, before_seq, max(limit, 1))
            )
            if messages is None:
                self.hub.chat_gap_failed(room)
            else:
                self.hub.chat_gap_loaded(
                    room, before_seq, [m for m in messages if m.seq > after_seq]
                )

        self._spawn(load())

    def load_notifications(
        self, session_id: str, user_id: str, limit: int, ref: Ref | None, asked: bool
    ) -> None:
        if not asked:
            # Connections addressed as a user (every first join, every connect with
            # a token) are many in a reconnect storm: a user who has no unread
            # notification is not read at all (nothing would be sent), and the
            # other reads wait for the one in flight and go together, one query
            # for all of them.
            if not self.store.may_have_unread(user_id):
                return
            self._unread_waiting.append((session_id, user_id, limit))
            if self._unread_task is None:
                self._unread_task = asyncio.ensure_future(self._load_unread())
            return

        async def load() -> None:
            # One more than asked for says whether more wait.
            found = await self._attempt(
                "unread-notifications", lambda: self.store.unread_notifications(user_id, limit + 1)
            )
            if found is None:
                self.hub.store_failed(session_id, ref)
            else:
                more = len(found) > limit
                self.hub.notifications_loaded(session_id, user_id, found[:limit], more, ref, asked)

        self._spawn(load())

    def mark_notifications_read(
        self, session_id: str, user_id: str, ids: list[int], ref: Ref | None
    ) -> None:
        async def mark() -> None:
            marked = await self._attempt(
                "mark-read", lambda: self.store.mark_read(user_id, ids, now_ms())
            )
            if marked is None:
                self.hub.store_failed(session_id, ref)
            else:
                self.hub.notifications_marked(session_id, user_id, marked, ref)

        self._spawn(mark())

    def store_notification(self, user_id: str, payload: dict[str, Any], key: str | None) -> None:
        async def store() -> None:
            stored = await self._attempt(
                "add-notification",
                lambda: self.store.add_notification(user_id, payload, now_ms(), key),
            )
            if stored is not None and not stored.duplicate:
                self.hub.notify(stored)

        self._spawn(store())

    async def _load_unread(self) -> None:
        try:
            while self._unread_waiting:
                waiting, self._unread_waiting = self._unread_waiting, []
                limit = max(limit for _, _, limit in waiting)
                users = list(dict.fromkeys(user_id for _, user_id, _ in waiting))
                read = functools.partial(self.store.unread_for_users, users, limit + 1)
                found = await self._attempt("unread-notifications", read)
                hub = self.hub
                for session_id, user_id, wanted in waiting:
                    if found is None:
                        hub.store_failed(session_id, None)
                        continue
                    unread = found.get(user_id, [])
                    hub.notifications_loaded(
                        session_id, user_id, unread[:wanted], len(unread) > wanted, None, False
                    )
        finally:
            self._unread_task = None

    # -- plumbing -----------------------------------------------------------------

    def _stored(self, pending: list[PendingChat], results: list[StoredChat]) -> None:
        self.hub.chat_stored(pending, results)

    def _failed(self, pending: list[PendingChat], error: StoreError) -> None:
        self.hub.chat_failed(pending)

    @staticmethod
    async def _attempt(op: str, work: Callable[[], Awaitable[T]]) -> T | None:
        try:
            return await work()
        except StoreError as exc:
            log.error("event=store-failed op=%s error=%s", op, exc)
            return None
        except Exception:
            # A driver error the backend did not wrap: the client still gets its
            # answer (store-unavailable), and the task does not die unheard.
            log.exception("event=store-failed op=%s", op)
            return None

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def retention(self) -> Retention:
        """What the retention task keeps of the history."""
        return self._retention_settings()

    def _retention_settings(self) -> Retention:
        settings = self._settings

        def ms(seconds: float | None) -> int | None:
            return None if seconds is None else int(seconds * 1000)

        return Retention(
            max_messages=settings.retention_messages,
            max_age_ms=ms(settings.retention_seconds),
            notification_read_max_age_ms=ms(settings.notification_read_retention),
            max_notifications_per_user=settings.max_notifications_per_user,
        )

    async def _retain(self) -> None:
        retention = self._retention_settings()
        while True:
            try:
                removed = await self.store.prune(retention, now_ms())
                if removed:
                    log.info("event=retention removed=%d", removed)
                removed = await self.store.prune_notifications(retention, now_ms())
                if removed:
                    log.info("event=retention notifications-removed=%d", removed)
            except StoreError as exc:
                log.error("event=store-failed op=retention error=%s", exc)
            await asyncio.sleep(self._settings.retention_interval)
