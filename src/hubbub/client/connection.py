"""The client: one WebSocket to a hubbub server, one room, events as an async iterator.

The client joins its room as soon as it connects and keeps the connection alive on
its own. Requests that the server answers (``join-room``, ``leave-room``, ``ping``,
``history``...) carry a ``ref`` and are matched with their reply or error.

Every server message carries ``n``, its number in the session; the client keeps
the last one. When the connection is lost without a close frame (a network drop,
a sleeping laptop), it reconnects with :class:`Backoff` and sends ``resume`` with
that number: the server gives the session back and sends what was missed, each
message once and in order (:class:`Resumed`). When the session cannot be resumed
(the server restarted, closed the connection itself, or holds no longer what was
missed), the client joins the same room afresh under the same user id
(:class:`Reconnected`, then :class:`RoomJoined`) and fetches the chat stored
meanwhile from the history, so that no chat message is missed or seen twice.
A server's ``reconnect`` hint (it is shutting down) sets the delay before
coming back.

On a server that stores chat, each chat message carries a ``clientId`` of ours and
stays in an outbox until its ``chat-ack`` comes: it is sent again after a
reconnection, after a refusal that passes with time (``store-unavailable``,
``rate-limited``), and when no answer comes, always with the same ``clientId``, so
the server stores it exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import msgspec

from hubbub.client.backoff import Backoff
from hubbub.client.errors import (
    Closed,
    ConnectError,
    JoinRefused,
    NotConnected,
    RequestFailed,
)
from hubbub.client.events import (
    CallAccepted,
    CallCancelled,
    CallDeclined,
    CallEnded,
    CallRinging,
    ChatAck,
    ChatGap,
    ChatMessage,
    Disconnected,
    Event,
    History,
    IceServers,
    KnownMessage,
    Notification,
    NotificationReceived,
    NotificationsRead,
    Participant,
    ParticipantRemoved,
    ParticipantUpdated,
    Pong,
    PresenceChanged,
    Reconnected,
    ReconnectHint,
    Resumed,
    RoomEnded,
    RoomJoined,
    RoomLeft,
    ServerError,
    ServerMessage,
    StoredChat,
    TypingChanged,
    UnreadNotifications,
    UserJoined,
    UserLeft,
    decode_frame,
)

log = logging.getLogger("hubbub.client")

Listener = Callable[[Event], None]

FATAL_CLOSE_CODES = frozenset({1002, 1003, 1007, 1008, 1009, 1010, 4003, 4004, 4009, 4010})
"""Close codes after which reconnecting would only be refused the same way (a
protocol error, a flood, a frame too large), or is not wanted: an admin removed us
(4003) or ended the room (4004), our identity joined from elsewhere (4009), or
another connection resumed our session (4010). Others (1001 going away, 1006 lost,
1011, 4008 slow reader) are retried."""

RETRYABLE_JOIN_CODES = frozenset({"user-id-taken", "room-full", "rate-limited"})
"""Join refusals that can pass with time when rejoining after a reconnect: the
server may not yet have noticed that this client's old connection is dead."""

DEFAULT_REQUEST_TIMEOUT = 10.0
"""Seconds to wait for the reply to a request."""

DEFAULT_HEARTBEAT = 15.0
"""Seconds between WebSocket pings; a pong missing for half of it drops the connection."""

DEFAULT_MAX_QUEUED_EVENTS = 1000
"""Events kept for the iterator before the client stops reading from the server."""

RETRYABLE_CHAT_CODES = frozenset({"store-unavailable", "rate-limited"})
"""Chat refusals after which the same message is sent again (after a backoff delay)."""

CHAT_REF_PREFIX = "chat:"
"""The ``ref`` of a chat message is this and its ``clientId``."""

DEFAULT_MAX_CATCH_UP = 1000
"""Chat messages stored while the client was away that a fresh rejoin fetches from
the history at most; older ones are reported as a :class:`ChatGap`."""

TYPING_EXPIRES = 5.0
"""Seconds after which a member's typing counts as stopped unless renewed (the
server does not time typing out)."""

STATUSES = frozenset({"online", "away", "busy"})
"""The presence statuses a client may set."""

RESUME_REF = "resume"
CATCH_UP_REF = "catch-up"
JOIN_REF = "join"


class _OutgoingChat:
    """A chat message in the outbox: sent, and sent again, until it is acknowledged."""

    def __init__(self, client_id: str, message: str) -> None:
        self.client_id = client_id
        self.message = message
        self.acked: asyncio.Future[ChatAck] = asyncio.get_running_loop().create_future()
        self.retries = 0
        self.timer: asyncio.TimerHandle | None = None

    def frame(self) -> dict[str, Any]:
        return {
            "type": "chat",
            "message": self.message,
            "clientId": self.client_id,
            "ref": CHAT_REF_PREFIX + self.client_id,
        }

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def websocket_url(url: str) -> str:
    """``url`` as a WebSocket URL (``http`` becomes ``ws``, ``https`` ``wss``)."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"not a hubbub URL: {url!r} (use ws://, wss://, http:// or https://)")
    return urlunsplit((scheme, parts.netloc, parts.path or "/", parts.query, ""))


class Client:
    """A connection to a hubbub server, in one room.

    Use it as an async context manager, then iterate over its events::

        async with Client("ws://127.0.0.1:8080", room="lobby", user="alice") as client:
            await client.chat("hello")
            async for event in client:
                ...

    ``user`` is the user id to ask for (the server picks one when it is None; on a
    server with tokens the token says who the user is). ``token`` is passed to the
    server in each ``join-room`` (never in the URL, which logs keep).
    With ``reconnect`` False a lost connection ends the iteration instead (no
    resume, no rejoin). ``max_catch_up`` bounds the chat messages a fresh rejoin
    fetches from the history. With ``events`` False nothing is queued for the iterator:
    listeners (:meth:`add_listener`) are then the only way to see events.
    """

    def __init__(
        self,
        url: str,
        room: str,
        *,
        user: str | None = None,
        token: str | None = None,
        reconnect: bool = True,
        backoff: Backoff | None = None,
        events: bool = True,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        heartbeat: float = DEFAULT_HEARTBEAT,
        max_queued_events: int = DEFAULT_MAX_QUEUED_EVENTS,
        max_catch_up: int = DEFAULT_MAX_CATCH_UP,
        join_fields: Mapping[str, Any] | None = None,
    ) -> None:
        self.url = websocket_url(url)
        self.token = token
        self.room = room
        self.user_id: str | None = user
        self.session_id: str | None = None
        self.participants: dict[str, Participant] = {}
        """The other members of the room by user id, kept up to date."""
        self.grants: frozenset[str] | None = None
        """What our token grants, as the server said (None without a token)."""
        self.ice_servers: list[dict[str, Any]] = []
        """The ``iceServers`` for new peer connections, kept fresh by the server."""
        self.last_seq: int | None = None
        """The room's last chat sequence number seen (None: the server stores no chat)."""
        self.status = "online"
        """Our presence status, as the server has it (see :meth:`set_status`)."""
        self.offline: dict[str, int] = {}
        """The room's offline members (who chatted there and are not in it now) by
        user id, with when they were last seen (milliseconds since 1970 UTC)."""
        self.unread: dict[int, Notification] = {}
        """This user's unread notifications by id, as far as this client knows: from
        the list the server sends on connecting, those that arrive, minus those
        marked read (from any connection of the user)."""
        self.last_n = 0
        """The ``n`` of the last server message received in this session."""
        self.reconnect = reconnect
        self.backoff = backoff or Backoff()
        self.max_catch_up = max_catch_up
        self.request_timeout = request_timeout
        self.heartbeat = heartbeat
        self._join_fields = dict(join_fields or {})
        self._queue_events = events
        self._max_queued_events = max_queued_events
        self._events: deque[Event] = deque()
        self._event_ready = asyncio.Event()
        self._room_for_events = asyncio.Event()
        self._room_for_events.set()
        self._listeners: list[Listener] = []
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._runner: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[KnownMessage]] = {}
        self._refs = itertools.count(1)
        self._closing = False
        self._closed = asyncio.Event()
        self._close_reason: str | None = None
        self._outbox: dict[str, _OutgoingChat] = {}
        self._client_ids = itertools.count(1)
        self._client_id_prefix = secrets.token_hex(6)
        self._tasks: set[asyncio.Task[None]] = set()
        self._resume_token: str | None = None
        self._reconnect_after: float | None = None
        """Seconds the server asked us to wait before coming back (``reconnect``)."""
        self._typing_since: dict[str, float] = {}
        self._status_asked: str | None = None
        """The status set with :meth:`set_status`: a fresh join asks for it again."""
        self._restore_at_n: int | None = None
        """After a resume: resend the unacknowledged chat once the replay reached this."""

    # -- lifecycle --------------------------------------------------------------

    async def __aenter__(self) -> Client:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> RoomJoined:
        """Connect and join the room; raise :class:`ConnectError` or
        :class:`JoinRefused` when that fails. Reconnection applies from then on."""
        if self._runner is not None:
            raise RuntimeError("the client is started already")
        self._session = aiohttp.ClientSession()
        try:
            ws = await self._open()
            try:
                joined, backlog = await self._join_on(ws)
            except BaseException:
                await ws.close()
                raise
        except BaseException:
            await self._session.close()
            raise
        self._ws = ws
        self._accept_joined(joined)
        self._emit(joined)
        for event in backlog:
            self._dispatch(event)
        self._runner = asyncio.create_task(self._run(ws), name="hubbub-client")
        return joined

    async def close(self) -> None:
        """Leave: close the connection with 1000 and end the event iteration."""
        self._closing = True
        ws = self._ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await ws.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._finish("closed")
        if self._session is not None:
            await self._session.close()

    async def wait_closed(self) -> None:
        """Return once the client is closed, or has given up reconnecting."""
        await self._closed.wait()

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self._ws.closed

    # -- events -----------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with every event, as it arrives, before it is queued for
        the iterator. Listeners must not block; exceptions they raise are logged."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            try:
                event = await self.next_event()
            except Closed:
                return
            yield event

    async def next_event(self, timeout: float | None = None) -> Event:
        """The next event; :class:`Closed` once there are no more, TimeoutError
        when none comes within ``timeout`` seconds."""
        if not self._queue_events:
            raise RuntimeError("this client was made with events=False")
        async with asyncio.timeout(timeout):
            while not self._events:
                if self._closed.is_set():
                    raise Closed(self._close_reason or "closed")
                self._event_ready.clear()
                await self._event_ready.wait()
        event = self._events.popleft()
        if len(self._events) < self._max_queued_events:
            self._room_for_events.set()
        return event

    # -- sending ----------------------------------------------------------------

    @property
    def stores_chat(self) -> bool:
        """Whether the server stores chat (and acknowledges it): it said ``lastSeq``."""
        return self.last_seq is not None

    @property
    def unacknowledged(self) -> list[str]:
        """Chat messages sent and not yet acknowledged, in the order they were sent."""
        return [entry.message for entry in self._outbox.values()]

    async def chat(self, message: str) -> ChatAck | None:
        """Send a chat message to the others in the room.

        On a server that stores chat, return its :class:`ChatAck` once it is stored.
        Until then the message is kept and sent again, with the same ``clientId``,
        after a reconnection or a passing refusal: the server stores it once, however
        often it is sent. Cancelling this wait does not take the message back. Raise
        :class:`RequestFailed` when the server refuses it for good (``too-large``...),
        :class:`Closed` when the client closes first. On a server that stores nothing,
        send it once and return None (:class:`NotConnected` while the connection is
        down)."""
        if not self.stores_chat:
            await self.send({"type": "chat", "message": message})
            return None
        if self._closing or self._closed.is_set():
            raise Closed(self._close_reason or "closed")
        client_id = f"{self._client_id_prefix}-{next(self._client_ids)}"
        entry = _OutgoingChat(client_id, message)
        self._outbox[client_id] = entry
        await self._send_chat(entry)
        return await asyncio.shield(entry.acked)

    async def history(
        self, before_seq: int | None = None, limit: int | None = None
    ) -> list[StoredChat]:
        """A page of the room's stored chat, oldest first: the ``limit`` messages (the
        server's page size when None) before ``before_seq`` (the newest when None).
        An empty list: there is nothing older."""
        message: dict[str, Any] = {"type": "history"}
        if before_seq is not None:
            message["beforeSeq"] = before_seq
        if limit is not None:
            message["limit"] = limit
        reply = await self.request(message)
        if not isinstance(reply, History):
            raise RequestFailed("bad-reply", f"expected history, got {type(reply).__name__}")
        return reply.messages

    async def signal(self, to: str, signal: Any) -> None:
        """Relay ``signal`` (any JSON value) to the member ``to``."""
        await self.send({"type": "signal", "targetUserId": to, "signal": signal})

    async def set_status(self, status: str) -> None:
        """Set our presence status, ``online``, ``away`` or ``busy``: the room sees it
        (:class:`PresenceChanged`, ``Participant.status``), and it is kept across
        reconnections and rooms."""
        if status not in STATUSES:
            raise ValueError(f"a status is one of {sorted(STATUSES)}, not {status!r}")
        await self.request({"type": "presence", "status": status})
        self._status_asked = self.status = status

    async def typing(self, active: bool = True) -> None:
        """Tell the room we are typing (``active``), or stopped. Send it again every
        few seconds while typing goes on: the others take it as stopped after
        :data:`TYPING_EXPIRES` seconds without news. Sending chat stops it."""
        await self.send({"type": "typing", "active": active})

    @property
    def typing_users(self) -> set[str]:
        """The members typing now (heard from within :data:`TYPING_EXPIRES` seconds)."""
        now = time.monotonic()
        return {user for user, since in self._typing_since.items() if now - since < TYPING_EXPIRES}

    async def fetch_notifications(self, limit: int | None = None) -> UnreadNotifications:
        """This user's unread notifications, oldest first (at most ``limit``, or the
        server's page size); ``more`` says whether others wait after them."""
        message: dict[str, Any] = {"type": "notifications"}
        if limit is not None:
            message["limit"] = limit
        reply = await self.request(message)
        if not isinstance(reply, UnreadNotifications):
            raise RequestFailed("bad-reply", f"expected notifications, got {type(reply).__name__}")
        return reply

    async def mark_read(self, ids: list[int]) -> list[int]:
        """Mark notifications read, for every connection of this user; returns the
        ids that were unread until now."""
        reply = await self.request({"type": "notification-read", "ids": list(ids)})
        if not isinstance(reply, NotificationsRead):
            raise RequestFailed(
                "bad-reply", f"expected notification-read, got {type(reply).__name__}"
            )
        return reply.ids

    async def call(self, user_id: str) -> CallRinging:
        """Ring the user ``user_id`` wherever it is connected; returns once it rings
        (its ``call_id`` names the call). What follows arrives as events:
        :class:`CallAccepted` (both then join its ``room``), :class:`CallDeclined`,
        :class:`CallMissed`, :class:`CallEnded`. Refusals: ``user-unavailable``,
        ``busy``, ``already-in-call``..."""
        reply = await self.request({"type": "call-request", "targetUserId": user_id})
        if not isinstance(reply, CallRinging):
            raise RequestFailed("bad-reply", f"expected call-ringing, got {type(reply).__name__}")
        return reply

    async def accept_call(self, call_id: str) -> CallAccepted:
        """Accept a ringing call (:class:`CallIncoming`); join the returned ``room``."""
        reply = await self.request({"type": "call-accept", "callId": call_id})
        if not isinstance(reply, CallAccepted):
            raise RequestFailed("bad-reply", f"expected call-accepted, got {type(reply).__name__}")
        return reply

    async def decline_call(self, call_id: str) -> None:
        """Decline a ringing call: the caller gets :class:`CallDeclined`."""
        await self._call_move("call-decline", call_id, CallDeclined)

    async def cancel_call(self, call_id: str) -> None:
        """Stop ringing our own call: the callee gets :class:`CallCancelled`."""
        await self._call_move("call-cancel", call_id, CallCancelled)

    async def end_call(self, call_id: str) -> None:
        """Hang up a call in progress: both get :class:`CallEnded` (``hung-up``)."""
        await self._call_move("call-end", call_id, CallEnded)

    async def _call_move(self, kind: str, call_id: str, answer: type[KnownMessage]) -> None:
        reply = await self.request({"type": kind, "callId": call_id})
        if not isinstance(reply, answer):
            raise RequestFailed(
                "bad-reply", f"expected {answer.__name__}, got {type(reply).__name__}"
            )

    async def remove_participant(self, user_id: str) -> None:
        """Take a member out of the room (needs the ``admin`` grant)."""
        reply = await self.request({"type": "remove-participant", "userId": user_id})
        if not isinstance(reply, ParticipantRemoved):
            raise RequestFailed(
                "bad-reply", f"expected participant-removed, got {type(reply).__name__}"
            )

    async def end_room(self) -> None:
        """Close every other member's connection and leave (needs ``admin``)."""
        reply = await self.request({"type": "end-room"})
        if not isinstance(reply, RoomEnded):
            raise RequestFailed("bad-reply", f"expected room-ended, got {type(reply).__name__}")
        self.participants.clear()

    async def ping(self) -> float:
        """Round trip to the server through its ``ping`` message, in seconds."""
        started = time.monotonic()
        await self.request({"type": "ping"})
        return time.monotonic() - started

    async def leave(self) -> None:
        """Leave the room (the connection stays open; :meth:`join` enters another)."""
        await self.request({"type": "leave-room"})
        self.participants.clear()

    async def join(self, room: str) -> RoomJoined:
        """Move to ``room`` (leaving the current one once the server agrees)."""
        reply = await self.request(self._join_message(room))
        if not isinstance(reply, RoomJoined):
            raise RequestFailed("bad-reply", f"expected room-joined, got {type(reply).__name__}")
        self.room = room
        return reply

    async def send(self, message: Mapping[str, Any]) -> None:
        """Send one message as it is (for protocol additions this client has no
        method for). Raise :class:`NotConnected` while the connection is down."""
        ws = self._ws
        if self._closing or self._closed.is_set():
            raise Closed(self._close_reason or "closed")
        if ws is None or ws.closed:
            raise NotConnected("the connection to the server is down")
        await ws.send_str(msgspec.json.encode(message).decode())

    async def request(self, message: Mapping[str, Any]) -> KnownMessage | ServerMessage:
        """Send ``message`` with a fresh ``ref`` and return the server's reply to it;
        raise :class:`RequestFailed` when the server answers with an ``error``."""
        ref = f"c{next(self._refs)}"
        future: asyncio.Future[KnownMessage | ServerMessage] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[ref] = future  # type: ignore[assignment]
        try:
            await self.send({**message, "ref": ref})
            async with asyncio.timeout(self.request_timeout):
                reply = await future
        finally:
            self._pending.pop(ref, None)
        if isinstance(reply, ServerError):
            raise RequestFailed(reply.code, reply.message)
        return reply

    # -- the connection -----------------------------------------------------------

    def _join_message(self, room: str) -> dict[str, Any]:
        message: dict[str, Any] = {**self._join_fields, "type": "join-room", "room": room}
        if self.user_id is not None:
            message["userId"] = self.user_id
        if self.token is not None:
            message["token"] = self.token
        if self._status_asked is not None and "status" not in message:
            message["status"] = self._status_asked  # a new connection starts online
        return message

    async def _open(self) -> aiohttp.ClientWebSocketResponse:
        assert self._session is not None
        try:
            return await self._session.ws_connect(
                self.url, heartbeat=self.heartbeat, autoping=True, compress=0
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise ConnectError(f"the server refused the connection: HTTP {exc.status}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ConnectError(f"cannot reach {self.url}: {exc}") from None

    async def _receive_on(
        self, ws: aiohttp.ClientWebSocketResponse
    ) -> KnownMessage | ServerMessage | None:
        """The next message on a connection whose reader is not running yet (during
        a join or a resume); None for one already seen or not a message."""
        frame = await ws.receive()
        if frame.type is not aiohttp.WSMsgType.TEXT:
            raise ConnectError(f"the connection closed (code {ws.close_code})")
        n, event = decode_frame(frame.data)
        if event is None or not self._count(n):
            return None
        return event

    async def _join_on(
        self, ws: aiohttp.ClientWebSocketResponse
    ) -> tuple[RoomJoined, list[KnownMessage | ServerMessage]]:
        """Join on a fresh connection (a new session), before the reader runs.
        Returns the reply and what came before it, to be handled after it."""
        self.last_n = 0
        await ws.send_str(
            msgspec.json.encode({**self._join_message(self.room), "ref": JOIN_REF}).decode()
        )
        backlog: list[KnownMessage | ServerMessage] = []
        async with asyncio.timeout(self.request_timeout):
            while True:
                event = await self._receive_on(ws)
                if isinstance(event, RoomJoined) and event.ref == JOIN_REF:
                    return event, backlog
                if isinstance(event, ServerError) and event.ref == JOIN_REF:
                    raise JoinRefused(event.code, event.message)
                if event is not None:  # a newer server's greeting, a notification...
                    backlog.append(event)

    async def _resume_on(self, ws: aiohttp.ClientWebSocketResponse) -> int | str:
        """Ask for our session back, first thing on a fresh connection. Returns the
        ``n`` of the last message the session was sent (what we missed follows,
        read by the reader), or why it was refused (the connection then carries a
        new session, which may join)."""
        assert self.session_id is not None
        assert self._resume_token is not None
        resume = {
            "type": "resume",
            "sessionId": self.session_id,
            "resumeToken": self._resume_token,
            "lastN": self.last_n,
            "ref": RESUME_REF,
        }
        await ws.send_str(msgspec.json.encode(resume).decode())
        async with asyncio.timeout(self.request_timeout):
            frame = await ws.receive()
        if frame.type is not aiohttp.WSMsgType.TEXT:
            raise ConnectError(f"the connection closed while resuming (code {ws.close_code})")
        n, event = decode_frame(frame.data)
        if isinstance(event, ServerMessage) and event.type == "resumed":
            last_n = event.data.get("lastN")
            return last_n if isinstance(last_n, int) else self.last_n
        # A refusal is the first message of this connection's own new session.
        self.last_n = 0
        self._count(n)
        if isinstance(event, ServerError):
            return event.reason or event.code
        return "unexpected-reply"

    def _count(self, n: int | None) -> bool:
        """Note message number ``n``; False for a message received before (which is
        not handled again)."""
        if n is None:
            return True
        if n <= self.last_n:
            log.warning("hubbub client: message %d came again; skipped", n)
            return False
        if n != self.last_n + 1:
            log.warning("hubbub client: messages %d to %d never came", self.last_n + 1, n - 1)
        self.last_n = n
        return True

    async def _catch_up(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        joined: RoomJoined,
        after_seq: int,
        backlog: list[KnownMessage | ServerMessage],
    ) -> tuple[list[StoredChat], ChatGap | None]:
        """The chat stored after ``after_seq`` (the last we saw), from the history in
        ``room-joined`` and, when that does not reach back far enough, page by
        page before it; at most ``max_catch_up`` messages. What else arrives
        meanwhile goes to ``backlog``."""
        if joined.last_seq is None or joined.last_seq <= after_seq:
            return [], None
        missed = [m for m in joined.history if m.seq > after_seq]
        oldest = joined.history[0].seq if joined.history else joined.last_seq + 1
        while oldest > after_seq + 1 and len(missed) < self.max_catch_up:
            request = {
                "type": "history",
                "beforeSeq": oldest,
                "limit": min(self.max_catch_up - len(missed), oldest - after_seq - 1),
                "ref": CATCH_UP_REF,
            }
            await ws.send_str(msgspec.json.encode(request).decode())
            page: list[StoredChat] | None = None
            async with asyncio.timeout(self.request_timeout):
                while page is None:
                    event = await self._receive_on(ws)
                    if isinstance(event, History) and event.ref == CATCH_UP_REF:
                        page = event.messages
                    elif isinstance(event, ServerError) and event.ref == CATCH_UP_REF:
                        log.warning("hubbub client: cannot fetch the missed chat: %s", event.code)
                        page = []
                    elif event is not None:
                        backlog.append(event)
            if not page:
                break
            missed = [m for m in page if m.seq > after_seq] + missed
            oldest = page[0].seq
        gap = ChatGap(after_seq=after_seq, before_seq=oldest) if oldest > after_seq + 1 else None
        return missed, gap

    def _accept_joined(self, joined: RoomJoined) -> None:
        self.room = joined.room
        self.user_id = joined.user_id
        self.session_id = joined.session_id
        self._resume_token = joined.resume_token
        self.participants = {p.user_id: p for p in joined.participants}
        self.grants = frozenset(joined.grants) if joined.grants is not None else None
        self.ice_servers = joined.ice_servers
        self.last_seq = joined.last_seq
        self.status = joined.status
        self.offline = {member.user_id: member.last_seen for member in joined.offline}
        self._typing_since.clear()

    async def _run(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            while True:
                code, reason = await self._read(ws)
                self._ws = None
                self._restore_at_n = None
                self._fail_pending()
                if self._closing:
                    return
                retry = self.reconnect and code not in FATAL_CLOSE_CODES
                self._emit(Disconnected(code=code, reason=reason, will_retry=retry))
                if not retry:
                    self._finish(reason)
                    return
                # Only a connection lost without a close frame leaves a session to
                # resume: one the server closed (shutting down, 4008...) is over.
                lost = code is None and self._reconnect_after is None
                reconnected = await self._reconnect(resume=lost)
                if reconnected is None:
                    return
                ws = reconnected
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug of ours: say so, end the iteration, do not hang
            log.exception("hubbub client stopped")
            self._finish("internal error")

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, str]:
        while True:
            frame = await ws.receive()
            if frame.type is aiohttp.WSMsgType.TEXT:
                n, event = decode_frame(frame.data)
                if event is None:
                    log.warning("hubbub client: skipped a frame that is not a message")
                    continue
                if not self._count(n):
                    continue
                self._dispatch(event)
                if self._restore_at_n is not None and self.last_n >= self._restore_at_n:
                    self._restore_at_n = None
                    await self._restore()
                # backpressure: stop reading while the application is behind
                await self._room_for_events.wait()
            elif frame.type is aiohttp.WSMsgType.BINARY:
                log.warning("hubbub client: skipped a binary frame")
            else:
                code = ws.close_code
                if code is None or code == 1006:
                    return None, "connection lost"
                return code, str(frame.extra or f"closed by the server with {code}")

    async def _reconnect(self, *, resume: bool) -> aiohttp.ClientWebSocketResponse | None:
        """Connect again: resume the session when ``resume`` and the server still
        has it, else join afresh and catch up on the chat. None: given up."""
        resume = resume and self.session_id is not None and self._resume_token is not None
        refused: str | None = None
        attempt = 0
        while True:
            attempt += 1
            hint, self._reconnect_after = self._reconnect_after, None
            await asyncio.sleep(hint if hint is not None else self.backoff.delay(attempt))
            ws: aiohttp.ClientWebSocketResponse | None = None
            try:
                ws = await self._open()
                if resume:
                    outcome = await self._resume_on(ws)
                    if isinstance(outcome, int):
                        self._resumed(ws, attempt, outcome)
                        return ws
                    log.info("hubbub client: resume refused (%s), joining afresh", outcome)
                    refused, resume = outcome, False
                    # this connection carries a new session: it may join at once
                seen_seq = self.last_seq
                joined, backlog = await self._join_on(ws)
                missed: list[StoredChat] = []
                gap = None
                if seen_seq is not None:
                    missed, gap = await self._catch_up(ws, joined, seen_seq, backlog)
            except JoinRefused as exc:
                await _close_quietly(ws)
                if exc.code not in RETRYABLE_JOIN_CODES or self.backoff.gives_up_after(attempt):
                    self._emit(ServerError(code=exc.code, message=exc.message))
                    self._finish(str(exc))
                    return None
                log.info("hubbub client: rejoin refused (%s), retrying", exc.code)
                continue
            except (ConnectError, TimeoutError, aiohttp.ClientError, OSError) as exc:
                await _close_quietly(ws)
                if self.backoff.gives_up_after(attempt):
                    self._finish(f"gave up reconnecting: {exc}")
                    return None
                log.info("hubbub client: reconnect attempt %d failed: %s", attempt, exc)
                continue
            self._ws = ws
            self._accept_joined(joined)
            self._emit(Reconnected(attempts=attempt, resume_refused=refused))
            self._emit(joined)
            if gap is not None:
                self._emit(gap)
            for stored in missed:
                self._seen_seq(stored.seq)
                if not (stored.client_id or "").startswith(self._client_id_prefix + "-"):
                    self._emit(_as_chat(stored))  # our own come back as chat-acks
            for event in backlog:
                self._dispatch(event)
            await self._restore()
            return ws

    def _resumed(self, ws: aiohttp.ClientWebSocketResponse, attempt: int, last_n: int) -> None:
        self._ws = ws
        self._emit(Resumed(attempts=attempt, missed=max(0, last_n - self.last_n)))
        # What was sent and not acknowledged goes again once the replay is in
        # (its chat-ack may be there), not before.
        if last_n > self.last_n:
            self._restore_at_n = last_n
        else:
            self._spawn(self._restore())

    async def _restore(self) -> None:
        """What a new connection owes the old one's unfinished business: the chat
        messages not yet acknowledged, in the order they were first sent."""
        for entry in list(self._outbox.values()):
            await self._send_chat(entry)

    async def _send_chat(self, entry: _OutgoingChat) -> None:
        """Send ``entry`` if the connection is up (else the reconnection will), and
        send it again if no answer comes within ``request_timeout``."""
        entry.cancel_timer()
        if entry.acked.done():
            return
        ws = self._ws
        if ws is None or ws.closed:
            return
        entry.timer = asyncio.get_running_loop().call_later(
            self.request_timeout, self._resend_later, entry
        )
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(msgspec.json.encode(entry.frame()).decode())

    def _resend_later(self, entry: _OutgoingChat) -> None:
        entry.timer = None
        if self._outbox.get(entry.client_id) is entry and not entry.acked.done():
            self._spawn(self._send_chat(entry))

    def _chat_refused(self, entry: _OutgoingChat, error: ServerError) -> None:
        if error.code in RETRYABLE_CHAT_CODES:
            entry.retries += 1
            entry.cancel_timer()
            entry.timer = asyncio.get_running_loop().call_later(
                self.backoff.delay(entry.retries), self._resend_later, entry
            )
            return
        self._settle(entry, RequestFailed(error.code, error.message))

    def _settle(self, entry: _OutgoingChat, outcome: ChatAck | BaseException) -> None:
        entry.cancel_timer()
        self._outbox.pop(entry.client_id, None)
        if entry.acked.done():
            return
        if isinstance(outcome, BaseException):
            entry.acked.set_exception(outcome)
            entry.acked.add_done_callback(_retrieved)  # nobody may be waiting any more
        else:
            entry.acked.set_result(outcome)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _dispatch(self, event: KnownMessage | ServerMessage) -> None:
        ref = getattr(event, "ref", None)
        if isinstance(event, ChatAck):
            entry = self._outbox.get(event.client_id or "")
            if entry is not None:
                self._settle(entry, event)
            self._seen_seq(event.seq)
        elif isinstance(event, ChatMessage) and event.seq is not None:
            self._seen_seq(event.seq)
        elif isinstance(event, ServerError) and str(ref).startswith(CHAT_REF_PREFIX):
            entry = self._outbox.get(str(ref).removeprefix(CHAT_REF_PREFIX))
            if entry is not None:
                self._chat_refused(entry, event)
                return  # retried, or raised by chat(): not an event of its own
        if ref is not None:
            future = self._pending.get(str(ref))
            if future is not None and not future.done():
                future.set_result(event)  # type: ignore[arg-type]
                if isinstance(event, RoomJoined):
                    self._accept_joined(event)
                    self._emit(event)
                    return
                if isinstance(event, (Pong, History)):
                    return  # data for the caller alone
                if isinstance(event, UnreadNotifications):
                    self.unread.update((n.id, n) for n in event.notifications)
                    return
                # other answers (an error, a call's news...) are events as well
        self._track(event)
        if isinstance(event, NotificationReceived) and event.id in self.unread:
            return  # came in the list sent on connecting as well
        if isinstance(event, NotificationReceived):
            self.unread[event.id] = event.notification
        self._emit(event)

    def _track(self, event: KnownMessage | ServerMessage) -> None:
        """Keep what the client shows of the room (and of us) up to date."""
        if isinstance(event, UserJoined):
            self.participants[event.user_id] = Participant(
                event.user_id, event.polite, event.name, event.grants, event.status
            )
            self.offline.pop(event.user_id, None)
        elif isinstance(event, UserLeft):
            self.participants.pop(event.user_id, None)
            self._typing_since.pop(event.user_id, None)
        elif isinstance(event, ParticipantUpdated):
            self._update_participant(event.user_id, connection=event.connection)
        elif isinstance(event, PresenceChanged):
            if event.user_id is None or event.user_id == self.user_id:
                self.status = event.status
            elif event.status == "offline":
                self.offline[event.user_id] = event.last_seen or 0
            else:
                self._update_participant(event.user_id, status=event.status)
        elif isinstance(event, TypingChanged):
            if event.active:
                self._typing_since[event.user_id] = time.monotonic()
            else:
                self._typing_since.pop(event.user_id, None)
        elif isinstance(event, ChatMessage):
            self._typing_since.pop(event.user_id, None)
        elif isinstance(event, UnreadNotifications):
            # sent on connecting: the unread ones as they are now
            self.unread = {n.id: n for n in event.notifications}
        elif isinstance(event, NotificationsRead):
            for read in event.ids:
                self.unread.pop(read, None)
        elif isinstance(event, ReconnectHint):
            self._reconnect_after = max(0, event.after_ms) / 1000
        elif isinstance(event, IceServers):
            self.ice_servers = event.ice_servers
        elif isinstance(event, RoomEnded | RoomLeft):
            self.participants.clear()

    def _update_participant(self, user_id: str, **changes: str) -> None:
        member = self.participants.get(user_id)
        if member is not None:
            self.participants[user_id] = msgspec.structs.replace(member, **changes)

    def _emit(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("hubbub client: a listener failed on %s", type(event).__name__)
        if self._queue_events:
            self._events.append(event)
            self._event_ready.set()
            if len(self._events) >= self._max_queued_events:
                self._room_for_events.clear()

    def _seen_seq(self, seq: int) -> None:
        if self.last_seq is None or seq > self.last_seq:
            self.last_seq = seq

    def _fail_pending(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(NotConnected("the connection to the server was lost"))
        self._pending.clear()

    def _finish(self, reason: str) -> None:
        if self._closed.is_set():
            return
        self._close_reason = reason
        self._closed.set()
        self._fail_pending()
        for entry in list(self._outbox.values()):
            self._settle(entry, Closed(f"{reason}; the message may not have been stored"))
        self._event_ready.set()


def _as_chat(stored: StoredChat) -> ChatMessage:
    return ChatMessage(
        message=stored.message,
        user_id=stored.user_id,
        id=stored.id,
        seq=stored.seq,
        ts=stored.ts,
        client_id=stored.client_id,
    )


async def _close_quietly(ws: aiohttp.ClientWebSocketResponse | None) -> None:
    if ws is not None and not ws.closed:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1):
                await ws.close()


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


__all__ = ["ChatMessage", "Client", "websocket_url"]
