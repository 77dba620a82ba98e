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
stays in an outbox until its ``chat-ack`` comes, sent again whenever it may not
have been stored (:mod:`hubbub.client.outbox`), always with the same ``clientId``,
so the server stores it exactly once.

What to send, when, and what each frame means is decided by
:class:`~hubbub.client.state.ClientState`, which does no I/O. This module only moves
frames between the WebSocket and it, runs its timers and lets callers await.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from hubbub.client.backoff import Backoff
from hubbub.client.errors import Closed, ConnectError, NotConnected, RequestFailed
from hubbub.client.events import (
    CallAccepted,
    CallCancelled,
    CallDeclined,
    CallEnded,
    CallRinging,
    ChatAck,
    ChatMessage,
    Event,
    History,
    KnownMessage,
    Notification,
    NotificationsRead,
    Participant,
    ParticipantRemoved,
    Reconnected,
    RoomEnded,
    RoomJoined,
    ServerMessage,
    SignalReceived,
    StoredChat,
    UnreadNotifications,
)
from hubbub.client.outgoing import message
from hubbub.client.room import TYPING_EXPIRES
from hubbub.client.state import (
    DEFAULT_HELD_ID_WAIT,
    DEFAULT_MAX_CATCH_UP,
    DEFAULT_REQUEST_TIMEOUT,
    JOIN_REF,
    Answer,
    ClientState,
    CloseConnection,
    Connect,
    Emit,
    Finished,
    Send,
)
from hubbub.protocol import messages as protocol
from hubbub.protocol.messages import SETTABLE_STATUSES

log = logging.getLogger("hubbub.client")

Listener = Callable[[Event], None]
R = TypeVar("R")

DEFAULT_HEARTBEAT = 15.0
"""Seconds between WebSocket pings; a pong missing for half of it drops the connection."""

DEFAULT_MAX_QUEUED_EVENTS = 1000
"""Events kept for the iterator before the client stops reading from the server."""

MAX_KEPT_SIGNALS = 200
"""Signals kept until something takes them (:meth:`Client.take_signals`); the
oldest go first past this."""


def websocket_url(url: str) -> str:
    """``url`` as a WebSocket URL (``http`` becomes ``ws``, ``https`` ``wss``)."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"not a hubbub URL: {url!r} (use ws://, wss://, http:// or https://)")
    if not parts.hostname:
        raise ValueError(f"not a hubbub URL: {url!r} has no host")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError(f"not a hubbub URL: {url!r} (its port must be a number from 1 to 65535)")
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
    A join refused ``user-id-taken`` because the id is held for a session that may
    still resume (this program's own, before a crash or a restart) is tried again
    when the server says the id is free, up to ``held_id_wait`` seconds in all,
    with a :class:`WaitingForUserId` event for each wait.
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
        held_id_wait: float = DEFAULT_HELD_ID_WAIT,
    ) -> None:
        self.url = websocket_url(url)
        self.heartbeat = heartbeat
        self._state = ClientState(
            room,
            user=user,
            token=token,
            reconnect=reconnect,
            backoff=backoff,
            request_timeout=request_timeout,
            max_catch_up=max_catch_up,
            join_fields=join_fields,
            held_id_wait=held_id_wait,
        )
        self._queue_events = events
        self._max_queued_events = max_queued_events
        self._events: deque[Event] = deque()
        self._event_ready = asyncio.Event()
        self._room_for_events = asyncio.Event()
        self._room_for_events.set()
        self._listeners: list[Listener] = []
        self._kept_signals: deque[SignalReceived] | None = deque(maxlen=MAX_KEPT_SIGNALS)
        """The signals that came before anything took them (None once taken): a
        peer's offer can come right after the join, before the caller's mesh listens."""
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._runner: asyncio.Task[None] | None = None
        self._timer: asyncio.Task[None] | None = None
        self._connect_wanted = asyncio.Event()
        self._timer_wake = asyncio.Event()
        self._armed: float | None = None
        """The deadline the timer task waits for."""
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        """Callers waiting for an answer, by the state's key (a ref)."""
        self._closers: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()
        self._close_reason: str | None = None

    # -- what the state knows ---------------------------------------------------------

    @property
    def room(self) -> str:
        return self._state.mirror.room

    @property
    def user_id(self) -> str | None:
        return self._state.mirror.user_id

    @property
    def session_id(self) -> str | None:
        return self._state.mirror.session_id

    @property
    def token(self) -> str | None:
        return self._state.token

    @property
    def participants(self) -> dict[str, Participant]:
        """The other members of the room by user id, kept up to date."""
        return self._state.mirror.participants

    @property
    def grants(self) -> frozenset[str] | None:
        """What our token grants, as the server said (None without a token)."""
        return self._state.mirror.grants

    @property
    def ice_servers(self) -> list[dict[str, Any]]:
        """The ``iceServers`` for new peer connections, kept fresh by the server."""
        return self._state.mirror.ice_servers

    @property
    def last_seq(self) -> int | None:
        """The room's last chat sequence number seen (None: the server stores no chat)."""
        return self._state.mirror.last_seq

    @property
    def status(self) -> str:
        """Our presence status, as the server has it (see :meth:`set_status`)."""
        return self._state.mirror.status

    @property
    def offline(self) -> dict[str, int]:
        """The room's offline members (who chatted there and are not in it now) by
        user id, with when they were last seen (milliseconds since 1970 UTC)."""
        return self._state.mirror.offline

    @property
    def unread(self) -> dict[int, Notification]:
        """This user's unread notifications by id, as far as this client knows: from
        the list the server sends on connecting, those that arrive, minus those
        marked read (from any connection of the user)."""
        return self._state.mirror.unread

    @property
    def last_n(self) -> int:
        """The ``n`` of the last server message received in this session."""
        return self._state.last_n

    @property
    def reconnect(self) -> bool:
        return self._state.reconnect

    @property
    def backoff(self) -> Backoff:
        return self._state.backoff

    @property
    def max_catch_up(self) -> int:
        return self._state.max_catch_up

    @property
    def request_timeout(self) -> float:
        return self._state.request_timeout

    @property
    def stores_chat(self) -> bool:
        """Whether the server stores chat (and acknowledges it): it said ``lastSeq``."""
        return self._state.stores_chat

    @property
    def unacknowledged(self) -> list[str]:
        """Chat messages sent and not yet acknowledged, in the order they were sent."""
        return [entry.message for entry in self._state.outbox]

    @property
    def typing_users(self) -> set[str]:
        """The members typing now (heard from within :data:`TYPING_EXPIRES` seconds)."""
        return self._state.mirror.typing_users(time.monotonic())

    @property
    def connected(self) -> bool:
        return self._state.connected and self._ws is not None and not self._ws.closed

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
        started = self._wait_for(JOIN_REF)
        self._state.start(time.monotonic())
        self._runner = asyncio.create_task(self._run(), name="hubbub-client")
        self._timer = asyncio.create_task(self._run_timers(), name="hubbub-client-timers")
        await self._pump()
        try:
            joined = await started
        except BaseException:
            await self._stop()
            raise
        assert isinstance(joined, RoomJoined)
        return joined

    async def close(self) -> None:
        """Leave: close the connection with 1000 and end the event iteration."""
        self._state.close(time.monotonic())
        await self._pump()
        await self._stop()

    async def wait_closed(self) -> None:
        """Return once the client is closed, or has given up reconnecting."""
        await self._closed.wait()

    async def _stop(self) -> None:
        if self._closers:
            await asyncio.gather(*self._closers, return_exceptions=True)
        for task in (self._runner, self._timer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._finished(self._state.close_reason or "closed")
        if self._session is not None:
            await self._session.close()

    # -- events -----------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with every event, as it arrives, before it is queued for
        the iterator. Listeners must not block; exceptions they raise are logged."""
        self._listeners.append(listener)

    def take_signals(self) -> list[SignalReceived]:
        """The ``signal`` messages that came before anything took them, oldest first
        (up to :data:`MAX_KEPT_SIGNALS`); none is kept from then on. A peer offers
        as soon as it sees us join, which can be before the caller starts its
        :class:`~hubbub.peer.Mesh`: the mesh takes them as it starts listening."""
        kept, self._kept_signals = self._kept_signals, None
        return list(kept or ())

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
        key = self._state.chat(message, time.monotonic())
        if key is None:
            await self._pump()
            return None
        acked = self._wait_for(key)
        await self._pump()
        ack = await asyncio.shield(acked)
        assert isinstance(ack, ChatAck)
        return ack

    async def history(
        self, before_seq: int | None = None, limit: int | None = None
    ) -> list[StoredChat]:
        """A page of the room's stored chat, oldest first: the ``limit`` messages (the
        server's page size when None) before ``before_seq`` (the newest when None).
        An empty list: there is nothing older."""
        reply = await self.request(message(protocol.History, before_seq=before_seq, limit=limit))
        return _expect(reply, History).messages

    async def signal(self, to: str, signal: Any) -> None:
        """Relay ``signal`` (any JSON value) to the member ``to``."""
        await self.send(message(protocol.Signal, target_user_id=to, signal=signal))

    async def set_status(self, status: str) -> None:
        """Set our presence status, ``online``, ``away`` or ``busy``: the room sees it
        (:class:`PresenceChanged`, ``Participant.status``), and it is kept across
        reconnections and rooms."""
        if status not in SETTABLE_STATUSES:
            raise ValueError(f"a status is one of {sorted(SETTABLE_STATUSES)}, not {status!r}")
        await self.request(message(protocol.SetPresence, status=status))
        self._state.keep_status(status)

    async def typing(self, active: bool = True) -> None:
        """Tell the room we are typing (``active``), or stopped. Send it again every
        few seconds while typing goes on: the others take it as stopped after
        :data:`TYPING_EXPIRES` seconds without news. Sending chat stops it."""
        await self.send(message(protocol.Typing, active=active))

    async def fetch_notifications(self, limit: int | None = None) -> UnreadNotifications:
        """This user's unread notifications, oldest first (at most ``limit``, or the
        server's page size); ``more`` says whether others wait after them."""
        reply = await self.request(message(protocol.GetNotifications, limit=limit))
        return _expect(reply, UnreadNotifications)

    async def mark_read(self, ids: list[int]) -> list[int]:
        """Mark notifications read, for every connection of this user; returns the
        ids that were unread until now."""
        reply = await self.request(message(protocol.MarkNotificationsRead, ids=list(ids)))
        return _expect(reply, NotificationsRead).ids

    async def call(self, user_id: str) -> CallRinging:
        """Ring the user ``user_id`` wherever it is connected; returns once it rings
        (its ``call_id`` names the call). What follows arrives as events:
        :class:`CallAccepted` (both then join its ``room``), :class:`CallDeclined`,
        :class:`CallMissed`, :class:`CallEnded`. Refusals: ``user-unavailable``,
        ``busy``, ``already-in-call``..."""
        reply = await self.request(message(protocol.CallRequest, target_user_id=user_id))
        return _expect(reply, CallRinging)

    async def accept_call(self, call_id: str) -> CallAccepted:
        """Accept a ringing call (:class:`CallIncoming`); join the returned ``room``."""
        reply = await self.request(message(protocol.CallAccept, call_id=call_id))
        return _expect(reply, CallAccepted)

    async def decline_call(self, call_id: str) -> None:
        """Decline a ringing call: the caller gets :class:`CallDeclined`."""
        _expect(await self.request(message(protocol.CallDecline, call_id=call_id)), CallDeclined)

    async def cancel_call(self, call_id: str) -> None:
        """Stop ringing our own call: the callee gets :class:`CallCancelled`."""
        _expect(await self.request(message(protocol.CallCancel, call_id=call_id)), CallCancelled)

    async def end_call(self, call_id: str) -> None:
        """Hang up a call in progress: both get :class:`CallEnded` (``hung-up``)."""
        _expect(await self.request(message(protocol.CallEnd, call_id=call_id)), CallEnded)

    async def remove_participant(self, user_id: str) -> None:
        """Take a member out of the room (needs the ``admin`` grant)."""
        reply = await self.request(message(protocol.RemoveParticipant, user_id=user_id))
        _expect(reply, ParticipantRemoved)

    async def end_room(self) -> None:
        """Close every other member's connection and leave (needs ``admin``)."""
        _expect(await self.request(message(protocol.EndRoom)), RoomEnded)

    async def ping(self) -> float:
        """Round trip to the server through its ``ping`` message, in seconds."""
        started = time.monotonic()
        await self.request(message(protocol.Ping))
        return time.monotonic() - started

    async def leave(self) -> None:
        """Leave the room (the connection stays open; :meth:`join` enters another)."""
        await self.request(message(protocol.LeaveRoom))

    async def join(self, room: str) -> RoomJoined:
        """Move to ``room`` (leaving the current one once the server agrees)."""
        return _expect(await self.request(self._state.join_message(room)), RoomJoined)

    async def send(self, message: Mapping[str, Any]) -> None:
        """Send one message as it is (for protocol additions this client has no
        method for). Raise :class:`NotConnected` while the connection is down."""
        if self._state.connected and (self._ws is None or self._ws.closed):
            raise NotConnected("the connection to the server is down")
        self._state.send(message)
        await self._pump()

    async def request(self, message: Mapping[str, Any]) -> KnownMessage | ServerMessage:
        """Send ``message`` with a fresh ``ref`` and return the server's reply to it;
        raise :class:`RequestFailed` when the server answers with an ``error``."""
        ref = self._state.request(message, time.monotonic())
        reply = self._wait_for(ref)
        try:
            await self._pump()
            outcome: KnownMessage | ServerMessage = await reply
            return outcome
        finally:
            if not reply.done():
                self._waiting.pop(ref, None)
                self._state.abandon(ref)

    # -- moving frames ------------------------------------------------------------

    def _wait_for(self, key: str) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        return future

    async def _pump(self) -> None:
        """Carry out what the state asks, in order. A frame is taken from the state
        and written in one step, so that concurrent pumps keep the state's order."""
        state = self._state
        while (action := state.next_action()) is not None:
            if isinstance(action, Send):
                ws = self._ws
                if ws is not None and not ws.closed:
                    # (lost meanwhile: the reader reports it, the state resends)
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await ws.send_str(action.text)
            elif isinstance(action, Emit):
                self._emit(action.event)
            elif isinstance(action, Answer):
                self._settle(action)
            elif isinstance(action, Connect):
                self._connect_wanted.set()
            elif isinstance(action, CloseConnection):
                self._close_connection()
            elif isinstance(action, Finished):
                self._finished(action.reason)
        deadline = state.next_deadline()
        if deadline is not None and (self._armed is None or deadline < self._armed):
            self._timer_wake.set()  # sooner than the timer waits for

    def _settle(self, answer: Answer) -> None:
        future = self._waiting.pop(answer.key, None)
        if future is None or future.done():
            return
        if isinstance(answer.outcome, Exception):
            future.set_exception(answer.outcome)
            future.add_done_callback(_retrieved)  # nobody may be waiting any more
        else:
            future.set_result(answer.outcome)

    def _close_connection(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            task = asyncio.ensure_future(_close_quietly(ws))
            self._closers.add(task)
            task.add_done_callback(self._closers.discard)

    async def _run(self) -> None:
        """Open the connections the state asks for, and read each until it ends."""
        try:
            while True:
                await self._connect_wanted.wait()
                self._connect_wanted.clear()
                try:
                    ws = await self._open()
                except ConnectError as exc:
                    self._state.connect_failed(str(exc), time.monotonic())
                    await self._pump()
                    continue
                self._ws = ws
                self._state.connection_made(time.monotonic())
                await self._pump()
                await self._read(ws)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug of ours: say so, end the iteration, do not hang
            log.exception("hubbub client stopped")
            await self._crashed()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            frame = await ws.receive()
            if ws is not self._ws:
                return  # given up by the state: nothing more of it counts
            if frame.type is aiohttp.WSMsgType.TEXT:
                self._state.receive(frame.data, time.monotonic())
                await self._pump()
                if ws is not self._ws:
                    return
                if self._state.connected:
                    # backpressure: stop reading while the application is behind
                    await self._room_for_events.wait()
            elif frame.type is aiohttp.WSMsgType.BINARY:
                log.warning("hubbub client: skipped a binary frame")
            else:
                self._ws = None
                code = ws.close_code
                if code is None or code == aiohttp.WSCloseCode.ABNORMAL_CLOSURE:
                    self._state.connection_lost(None, "connection lost", time.monotonic())
                else:
                    reason = str(frame.extra or f"closed by the server with {code}")
                    self._state.connection_lost(code, reason, time.monotonic())
                await self._pump()
                return

    async def _run_timers(self) -> None:
        """Call the state's tick when its next deadline comes."""
        try:
            while True:
                self._timer_wake.clear()
                self._armed = deadline = self._state.next_deadline()
                delay = None if deadline is None else max(0.0, deadline - time.monotonic())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._timer_wake.wait()
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    self._state.tick(now)
                    await self._pump()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("hubbub client stopped")
            await self._crashed()

    async def _crashed(self) -> None:
        with contextlib.suppress(Exception):
            self._state.close(time.monotonic(), "internal error")
            await self._pump()
        self._finished("internal error")

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

    def _emit(self, event: Event) -> None:
        kept = self._kept_signals
        if kept is not None:
            if isinstance(event, SignalReceived):
                kept.append(event)
            elif isinstance(event, Reconnected):
                kept.clear()  # the old session's peers are gone
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

    def _finished(self, reason: str) -> None:
        if self._closed.is_set():
            return
        self._close_reason = reason
        self._closed.set()
        for key, future in list(self._waiting.items()):
            if not future.done():
                self._settle(Answer(key, Closed(reason)))
        self._event_ready.set()


def _expect(reply: object, kind: type[R]) -> R:
    """``reply`` if it is a ``kind``; a server that answers otherwise is broken."""
    if not isinstance(reply, kind):
        raise RequestFailed("bad-reply", f"expected {kind.__name__}, got {type(reply).__name__}")
    return reply


async def _close_quietly(ws: aiohttp.ClientWebSocketResponse) -> None:
    with contextlib.suppress(Exception):
        await ws.close()


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


__all__ = ["TYPING_EXPIRES", "ChatMessage", "Client", "websocket_url"]
