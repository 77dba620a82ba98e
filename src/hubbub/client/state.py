"""The client's protocol state and every decision it makes, apart from any I/O.

:class:`ClientState` never touches a socket, a task or a clock. The adapter
(:class:`hubbub.client.Client`, on aiohttp) tells it what happened and carries out
what it asks, in the order asked (:meth:`ClientState.next_action`)::

    the adapter tells                        the state asks
    ─────────────────                        ──────────────
    start(now)                          ──►  Connect
    connection_made(now)                ──►  Send join-room (or resume)
    receive(frame, now)                 ──►  Emit RoomJoined, Answer "join"
    request(message, now) -> ref        ──►  Send ...; the reply: Answer ref
    chat(text, now) -> key              ──►  Send chat; its chat-ack: Answer key
    connection_lost(code, reason, now)  ──►  Emit Disconnected; later Connect
    connect_failed(reason, now)         ──►  (the next attempt, or Finished)
    tick(now), at next_deadline()       ──►  resends, timeouts, reconnections
    close(now)                          ──►  CloseConnection, Finished

Timers are deadlines on the adapter's clock (``now``, in seconds): the state says
when it next needs to be called (:meth:`~ClientState.next_deadline`), as aioquic's
connection does, and tests drive it with a hand clock.

The phases of a client, and the only moves between them (:data:`MOVES`)::

    IDLE ──start──► CONNECTING ──made──► JOINING ──room-joined──► OPEN
                        ▲   │                                       │
                        │   └──made, with a session──► RESUMING ────┤ resumed
                        │                     refused: join afresh  │
                        │                 JOINING ──► CATCHING_UP ──┤ (rejoin: the chat
                        │                                           │  stored meanwhile)
                     WAITING ◄── lost (not a final close code) ─────┘
                        (backoff, or the server's ``reconnect`` hint)

    any phase ──► CLOSED: close(), a final close code, a refused first join, a
                          refused rejoin that does not pass, backoff given up

The reconnect loop follows ``docs/protocol.md`` ("A client's reconnect loop") with
the rules of :mod:`hubbub.protocol.errors`: no reconnection after
:data:`~hubbub.protocol.errors.FINAL_CLOSE_CODES`; ``resume`` first whenever there
is a session to ask back, unless the server said it was going away; a rejoin
refused with one of :data:`~hubbub.protocol.errors.RETRIED_REJOIN_ERRORS` keeps
trying; after a fresh rejoin the chat stored while away is fetched from the history.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import msgspec

from hubbub.client.backoff import Backoff
from hubbub.client.errors import Closed, ConnectError, JoinRefused, NotConnected, RequestFailed
from hubbub.client.events import (
    ChatAck,
    ChatGap,
    ChatMessage,
    Disconnected,
    Event,
    History,
    KnownMessage,
    NotificationReceived,
    Pong,
    Reconnected,
    ReconnectHint,
    Resumed,
    RoomJoined,
    ServerError,
    ServerMessage,
    StoredChat,
    UnreadNotifications,
    WaitingForUserId,
    decode_frame,
)
from hubbub.client.outbox import ChatOutbox, OutgoingChat
from hubbub.client.outgoing import encode, message
from hubbub.client.room import RoomMirror
from hubbub.protocol import messages as protocol
from hubbub.protocol.errors import FINAL_CLOSE_CODES, RETRIED_REJOIN_ERRORS, ErrorCode

log = logging.getLogger("hubbub.client")

DEFAULT_REQUEST_TIMEOUT = 10.0
"""Seconds to wait for the reply to a request (and for a chat's ``chat-ack``
before it is sent again)."""

DEFAULT_HELD_ID_WAIT = 120.0
"""Seconds at most a join waits, in all, for a user id held for a session that may
still resume (``user-id-taken`` with ``heldForMs``) before it takes the refusal."""
HELD_ID_MARGIN = 0.25
"""Seconds added to ``heldForMs`` before the join is tried again."""

DEFAULT_MAX_CATCH_UP = 1000
"""Chat messages stored while the client was away that a fresh rejoin fetches from
the history at most; older ones are reported as a :class:`ChatGap`."""

JOIN_REF = "join"
"""The ``ref`` of the ``join-room`` a connection starts with; its :class:`Answer`
is the first join's outcome."""
RESUME_REF = "resume"
CATCH_UP_REF = "catch-up"


class Phase(Enum):
    IDLE = "idle"
    """Made, not started."""
    CONNECTING = "connecting"
    """The adapter is opening a WebSocket (:class:`Connect`)."""
    RESUMING = "resuming"
    """``resume`` sent first thing on a new connection; waiting for ``resumed``."""
    JOINING = "joining"
    """``join-room`` sent first thing (or after a refused resume)."""
    CATCHING_UP = "catching-up"
    """Joined afresh after a reconnection: paging back through the history for the
    chat stored while the client was away."""
    OPEN = "open"
    """In the room, on a live connection."""
    WAITING = "waiting"
    """Between reconnection attempts."""
    CLOSED = "closed"


MOVES: dict[Phase, frozenset[Phase]] = {
    Phase.IDLE: frozenset({Phase.CONNECTING, Phase.CLOSED}),
    Phase.CONNECTING: frozenset({Phase.RESUMING, Phase.JOINING, Phase.WAITING, Phase.CLOSED}),
    Phase.RESUMING: frozenset({Phase.OPEN, Phase.JOINING, Phase.WAITING, Phase.CLOSED}),
    Phase.JOINING: frozenset({Phase.OPEN, Phase.CATCHING_UP, Phase.WAITING, Phase.CLOSED}),
    Phase.CATCHING_UP: frozenset({Phase.OPEN, Phase.WAITING, Phase.CLOSED}),
    Phase.OPEN: frozenset({Phase.WAITING, Phase.CLOSED}),
    Phase.WAITING: frozenset({Phase.CONNECTING, Phase.CLOSED}),
    Phase.CLOSED: frozenset(),
}
"""Every move a client makes between phases; any other is a bug of ours."""

_ON_A_CONNECTION = frozenset({Phase.RESUMING, Phase.JOINING, Phase.CATCHING_UP, Phase.OPEN})

_FINAL_NAMES: dict[int, str] = {int(code): name for code, name in FINAL_CLOSE_CODES.items()}


class IllegalMove(RuntimeError):
    """The state was asked to do something its phase does not allow (a bug of the
    adapter's, or of ours: never caused by what the server sends)."""


# -- what the state asks of the adapter ------------------------------------------


@dataclass(frozen=True, slots=True)
class Connect:
    """Open a new WebSocket to the server; then call :meth:`ClientState.connection_made`
    or :meth:`ClientState.connect_failed`."""


@dataclass(frozen=True, slots=True)
class Send:
    """Write one text frame on the current connection."""

    text: str

    @property
    def message(self) -> Any:
        return msgspec.json.decode(self.text)


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """Close the current connection (with 1000); nothing more of it is reported."""


@dataclass(frozen=True, slots=True)
class Emit:
    """Hand ``event`` to the application."""

    event: Event


@dataclass(frozen=True, slots=True)
class Answer:
    """What the caller waiting on ``key`` gets: a reply, or an exception to raise.
    ``key`` is a request's ref, a chat's (:meth:`ClientState.chat`), or
    :data:`JOIN_REF` for the first join (:meth:`ClientState.start`)."""

    key: str
    outcome: KnownMessage | ServerMessage | Exception


@dataclass(frozen=True, slots=True)
class Finished:
    """The client is done: closed, or it gave up. No more actions follow."""

    reason: str


Action = Connect | Send | CloseConnection | Emit | Answer | Finished


@dataclass(slots=True)
class _CatchUp:
    """A rejoin in progress, paging back from ``oldest`` to ``after_seq``."""

    joined: RoomJoined
    after_seq: int
    missed: list[StoredChat]
    oldest: int


_resumed = msgspec.json.Decoder(protocol.Resumed)


class ClientState:
    """One client's connection to a hubbub server, one room, as a state machine."""

    def __init__(
        self,
        room: str,
        *,
        user: str | None = None,
        token: str | None = None,
        reconnect: bool = True,
        backoff: Backoff | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        max_catch_up: int = DEFAULT_MAX_CATCH_UP,
        join_fields: Mapping[str, Any] | None = None,
        client_id_prefix: str | None = None,
        held_id_wait: float = DEFAULT_HELD_ID_WAIT,
    ) -> None:
        self.token = token
        self.held_id_wait = held_id_wait
        self.reconnect = reconnect
        self.backoff = backoff or Backoff()
        self.request_timeout = request_timeout
        self.max_catch_up = max_catch_up
        self.mirror = RoomMirror(room, user)
        self.outbox = ChatOutbox(client_id_prefix or secrets.token_hex(6))
        self.last_n = 0
        """The ``n`` of the last server message received in this session."""
        self.close_reason: str | None = None
        self._join_fields = dict(join_fields or {})
        self._phase = Phase.IDLE
        self._actions: deque[Action] = deque()
        self._connected = False
        """A connection is open (from connection_made until it is lost or given up)."""
        self._starting = True
        """The first connection and join, which :meth:`start` answers, are under way."""
        self._refs = itertools.count(1)
        self._requests: dict[str, float] = {}
        """Requests waiting for their reply: ref -> deadline."""
        self._status_asked: str | None = None
        """The status set with :meth:`keep_status`: a fresh join asks for it again."""
        # a reconnection
        self._attempt = 0
        """Attempts of this reconnection so far (0: none under way)."""
        self._resume_next = False
        """Whether the next attempt asks for the session back."""
        self._resume_refused: str | None = None
        self._hint: float | None = None
        self._hint_resume = False
        """The server's ``reconnect`` said the session goes on elsewhere: resume it."""
        """Seconds the server asked us to wait before coming back (``reconnect``)."""
        self._reconnect_at: float | None = None
        self._step_deadline: float | None = None
        """When the resume, join or history page under way is given up."""
        self._join_again_at: float | None = None
        """When a join refused for a held user id is sent again (on the same connection)."""
        self._held_since: float | None = None
        """When this join first found its user id held."""
        self._backlog: list[KnownMessage | ServerMessage] = []
        """What arrived while joining, handled once in the room."""
        self._catch_up: _CatchUp | None = None
        self._restore_at_n: int | None = None
        """After a resume: resend the unacknowledged chat once the replay reached this."""

    # -- what the adapter reads ----------------------------------------------------

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def connected(self) -> bool:
        """In the room, on a live connection: sends go out now."""
        return self._phase is Phase.OPEN

    @property
    def closed(self) -> bool:
        return self._phase is Phase.CLOSED

    @property
    def stores_chat(self) -> bool:
        """Whether the server stores chat (and acknowledges it): it said ``lastSeq``."""
        return self.mirror.last_seq is not None

    def next_action(self) -> Action | None:
        """The next thing to do, in order; None when there is nothing more for now."""
        return self._actions.popleft() if self._actions else None

    def next_deadline(self) -> float | None:
        """When :meth:`tick` is next needed (None: not until something happens)."""
        deadlines = [
            self._reconnect_at,
            self._step_deadline,
            self._join_again_at,
            min(self._requests.values(), default=None),
            self.outbox.next_deadline() if self._phase is Phase.OPEN else None,
        ]
        return min((d for d in deadlines if d is not None), default=None)

    def join_message(self, room: str) -> dict[str, Any]:
        """The ``join-room`` for ``room``, as this client sends it."""
        status = self._status_asked if "status" not in self._join_fields else None
        join = message(
            protocol.JoinRoom,
            room=room,
            user_id=self.mirror.user_id,
            token=self.token,
            status=status,
        )
        return {**self._join_fields, **join}

    # -- what the adapter tells: the connection -------------------------------------

    def start(self, now: float) -> None:
        """Connect and join; :data:`JOIN_REF`'s :class:`Answer` says how it went."""
        if self._phase is not Phase.IDLE:
            raise IllegalMove("the client is started already")
        self._move(Phase.CONNECTING)
        self._actions.append(Connect())

    def connection_made(self, now: float) -> None:
        """The WebSocket asked for with :class:`Connect` is open."""
        if self._phase is Phase.CLOSED:  # closed meanwhile: not wanted any more
            self._actions.append(CloseConnection())
            return
        self._expect(Phase.CONNECTING)
        self._connected = True
        mirror = self.mirror
        if self._resume_next and mirror.session_id is not None and mirror.resume_token is not None:
            self._move(Phase.RESUMING)
            resume = message(
                protocol.Resume,
                session_id=mirror.session_id,
                resume_token=mirror.resume_token,
                last_n=self.last_n,
                ref=RESUME_REF,
            )
            self._send(resume)
            self._step_deadline = now + self.request_timeout
            return
        self.last_n = 0  # a new connection is a new session
        self._join(now)

    def connect_failed(self, reason: str, now: float) -> None:
        """The WebSocket asked for with :class:`Connect` could not be opened."""
        if self._phase is Phase.CLOSED:
            return
        self._expect(Phase.CONNECTING)
        if self._starting:
            self._fail_start(ConnectError(reason))
        else:
            self._attempt_failed(reason, now)

    def connection_lost(self, code: int | None, reason: str, now: float) -> None:
        """The connection closed: with ``code``, or None when it was lost without a
        close frame (1006: a network drop, a dead peer)."""
        if not self._connected:
            return  # given up on already (CloseConnection), or closed by us
        self._connected = False
        self._lose_connection()
        final = _FINAL_NAMES.get(code) if code is not None else None
        if self._starting:
            self._fail_start(ConnectError(f"the connection closed (code {code})"))
        elif self._phase is Phase.OPEN:
            retry = self.reconnect and final is None
            self._emit(Disconnected(code=code, reason=reason, will_retry=retry, name=final))
            if not retry:
                self._finish(reason)
                return
            # The session may have outlived the connection (a close from a proxy,
            # a half-open link): it is asked back first, unless the server said it is
            # going away (`reconnect`) with its sessions (not handed to another node).
            self._resume_next = self._hint is None or self._hint_resume
            self._resume_refused = None
            self._schedule(now)
        elif final is not None:  # during a reconnection attempt: as final as ever
            self._emit(Disconnected(code=code, reason=reason, will_retry=False, name=final))
            self._finish(reason)
        else:
            self._attempt_failed(f"the connection closed (code {code})", now)

    def receive(self, frame: str | bytes, now: float) -> None:
        """One text frame from the server."""
        if self._phase not in _ON_A_CONNECTION or not self._connected:
            return
        if self._phase is Phase.RESUMING:
            self._resume_answered(frame, now)
            return
        n, event = decode_frame(frame)
        if event is None:
            log.warning("hubbub client: skipped a frame that is not a message")
            return
        if not self._count(n):
            return
        if self._phase is Phase.JOINING:
            self._while_joining(event, now)
        elif self._phase is Phase.CATCHING_UP:
            self._while_catching_up(event, now)
        else:
            self._dispatch(event, now)
            if self._restore_at_n is not None and self.last_n >= self._restore_at_n:
                self._restore_at_n = None
                self._restore(now)

    def tick(self, now: float) -> None:
        """Do what is due at ``now``: a reconnection attempt, a timeout, a resend."""
        if self._reconnect_at is not None and self._reconnect_at <= now:
            self._reconnect_at = None
            self._move(Phase.CONNECTING)
            self._actions.append(Connect())
        if self._join_again_at is not None and self._join_again_at <= now:
            self._join_again_at = None
            if self._phase is Phase.JOINING and self._connected:
                self._send_join(now)
        if self._step_deadline is not None and self._step_deadline <= now:
            self._step_deadline = None
            waited = f"no answer from the server within {self.request_timeout:g} s"
            if self._starting:
                self._fail_start(TimeoutError(waited))
            else:
                self._give_up_connection()
                self._attempt_failed(waited, now)
        for ref, deadline in list(self._requests.items()):
            if deadline <= now:
                del self._requests[ref]
                self._answer(ref, TimeoutError(f"no reply within {self.request_timeout:g} s"))
        if self._phase is Phase.OPEN:
            for entry in self.outbox.due(now):
                self._transmit(entry, now)

    def close(self, now: float, reason: str = "closed") -> None:
        """Leave: close the connection, fail what waits, and finish."""
        self._finish(reason)

    # -- what the adapter tells: the application's requests -------------------------

    def send(self, message: Mapping[str, Any]) -> None:
        """Send ``message`` as it is; :class:`NotConnected` while the connection is
        down, :class:`Closed` once the client is closed."""
        self._check_open()
        self._send(message)

    def request(self, message: Mapping[str, Any], now: float) -> str:
        """Send ``message`` with a fresh ``ref``, returned: its :class:`Answer` is
        the reply, :class:`RequestFailed` for an ``error``, :class:`TimeoutError`."""
        self._check_open()
        ref = f"c{next(self._refs)}"
        self._requests[ref] = now + self.request_timeout
        self._send({**message, "ref": ref})
        return ref

    def abandon(self, ref: str) -> None:
        """Nobody waits for ``ref`` any more: its reply will be an event like others."""
        self._requests.pop(ref, None)

    def chat(self, text: str, now: float) -> str | None:
        """Send a chat message. On a server that stores chat, returns the key whose
        :class:`Answer` is its :class:`ChatAck`, or the final refusal; the message is
        sent again until then (see :mod:`hubbub.client.outbox`). On a server that
        stores nothing, send it once and return None."""
        if not self.stores_chat:
            self.send(message(protocol.Chat, message=text))
            return None
        if self._phase is Phase.CLOSED:
            raise Closed(self.close_reason or "closed")
        entry = self.outbox.add(text)
        if self._phase is Phase.OPEN:
            self._transmit(entry, now)
        return entry.ref

    def keep_status(self, status: str) -> None:
        """The server took our status: ask for it again when joining afresh (a new
        connection starts ``online``)."""
        self._status_asked = self.mirror.status = status

    # -- joining ----------------------------------------------------------------

    def _join(self, now: float) -> None:
        self._move(Phase.JOINING)
        self._backlog = []
        self._send_join(now)

    def _send_join(self, now: float) -> None:
        self._send({**self.join_message(self.mirror.room), "ref": JOIN_REF})
        self._step_deadline = now + self.request_timeout

    def _while_joining(self, event: KnownMessage | ServerMessage, now: float) -> None:
        if isinstance(event, RoomJoined) and event.ref == JOIN_REF:
            self._step_deadline = None
            self._held_since = None
            if self._starting:
                self._started(event, now)
            else:
                self._rejoined(event, now)
        elif isinstance(event, ServerError) and event.ref == JOIN_REF:
            self._step_deadline = None
            self._join_refused(event, now)
        else:  # a newer server's greeting, a notification...
            self._backlog.append(event)

    def _started(self, joined: RoomJoined, now: float) -> None:
        self._move(Phase.OPEN)
        self._starting = False
        self.mirror.joined(joined)
        self._emit(joined)
        self._dispatch_backlog(now)
        self._answer(JOIN_REF, joined)

    def _join_refused(self, error: ServerError, now: float) -> None:
        if self._wait_for_held_id(error, now):
            return
        self._held_since = None
        refused = JoinRefused(error.code, error.message)
        if self._starting:  # the application's to handle
            self._fail_start(refused)
        elif error.code in RETRIED_REJOIN_ERRORS and not self.backoff.gives_up_after(self._attempt):
            log.info("hubbub client: rejoin refused (%s), retrying", error.code)
            self._give_up_connection()
            self._schedule(now)
        else:
            self._emit(ServerError(code=error.code, message=error.message))
            self._finish(str(refused))

    def _wait_for_held_id(self, error: ServerError, now: float) -> bool:
        """A user id held for a session that may still resume (this program's own,
        from before it restarted, as often as not) is free again at most
        ``heldForMs`` from now: join again then, on this connection, as long as
        :attr:`held_id_wait` allows in all."""
        if error.code != ErrorCode.USER_ID_TAKEN or error.held_for_ms is None:
            return False
        if self._held_since is None:
            self._held_since = now
        seconds = error.held_for_ms / 1000 + HELD_ID_MARGIN
        if now + seconds - self._held_since > self.held_id_wait:
            return False
        user_id = self.mirror.user_id or ""
        log.info(
            "hubbub client: user id %r is held for a session that may still resume; "
            "joining again in %.1f s",
            user_id,
            seconds,
        )
        self._emit(WaitingForUserId(user_id=user_id, seconds=seconds))
        self._join_again_at = now + seconds
        return True

    def _resume_answered(self, frame: str | bytes, now: float) -> None:
        self._step_deadline = None
        try:
            resumed = _resumed.decode(frame)
        except (msgspec.ValidationError, msgspec.DecodeError):
            resumed = None
        if resumed is not None:
            self._move(Phase.OPEN)
            # Resumed on another node of a cluster, the session has an id there.
            self.mirror.session_id = resumed.session_id or self.mirror.session_id
            self._emit(Resumed(attempts=self._attempt, missed=max(0, resumed.last_n - self.last_n)))
            self._attempt = 0
            # What was sent and not acknowledged goes again once the replay is in
            # (its chat-ack may be there), not before.
            if resumed.last_n > self.last_n:
                self._restore_at_n = resumed.last_n
            else:
                self._restore(now)
            return
        # A refusal is the first message of this connection's own new session.
        n, event = decode_frame(frame)
        self.last_n = 0
        self._count(n)
        if isinstance(event, ServerError):
            refused = event.reason or event.code
        else:
            refused = "unexpected-reply"
        log.info("hubbub client: resume refused (%s), joining afresh", refused)
        self._resume_refused = refused
        self._resume_next = False
        self._join(now)  # this connection carries a new session: it may join at once
        if event is not None and not isinstance(event, ServerError):
            self._backlog.append(event)

    # -- catching up after a fresh rejoin --------------------------------------------

    def _rejoined(self, joined: RoomJoined, now: float) -> None:
        """The chat stored after the last seq seen comes from the history in
        ``room-joined`` and, when that does not reach back far enough, page by
        page before it: at most :attr:`max_catch_up` messages."""
        after_seq = self.mirror.last_seq
        if after_seq is None or joined.last_seq is None or joined.last_seq <= after_seq:
            self._back(joined, [], None, now)
            return
        missed = [m for m in joined.history if m.seq > after_seq]
        oldest = joined.history[0].seq if joined.history else joined.last_seq + 1
        self._next_page(_CatchUp(joined, after_seq, missed, oldest), now)

    def _next_page(self, catch_up: _CatchUp, now: float) -> None:
        after, oldest = catch_up.after_seq, catch_up.oldest
        if oldest <= after + 1 or len(catch_up.missed) >= self.max_catch_up:
            self._caught_up(catch_up, now)
            return
        if self._phase is not Phase.CATCHING_UP:
            self._move(Phase.CATCHING_UP)
        self._catch_up = catch_up
        page = message(
            protocol.History,
            before_seq=oldest,
            limit=min(self.max_catch_up - len(catch_up.missed), oldest - after - 1),
            ref=CATCH_UP_REF,
        )
        self._send(page)
        self._step_deadline = now + self.request_timeout

    def _while_catching_up(self, event: KnownMessage | ServerMessage, now: float) -> None:
        if isinstance(event, History) and event.ref == CATCH_UP_REF:
            page = event.messages
        elif isinstance(event, ServerError) and event.ref == CATCH_UP_REF:
            log.warning("hubbub client: cannot fetch the missed chat: %s", event.code)
            page = []
        else:
            self._backlog.append(event)
            return
        catch_up, self._catch_up = self._catch_up, None
        if catch_up is None:  # not in CATCHING_UP without one
            return
        self._step_deadline = None
        if not page:  # nothing older is kept (or it cannot be had)
            self._caught_up(catch_up, now)
            return
        catch_up.missed = [m for m in page if m.seq > catch_up.after_seq] + catch_up.missed
        catch_up.oldest = page[0].seq
        self._next_page(catch_up, now)

    def _caught_up(self, catch_up: _CatchUp, now: float) -> None:
        after, oldest = catch_up.after_seq, catch_up.oldest
        gap = ChatGap(after_seq=after, before_seq=oldest) if oldest > after + 1 else None
        self._back(catch_up.joined, catch_up.missed, gap, now)

    def _back(
        self, joined: RoomJoined, missed: list[StoredChat], gap: ChatGap | None, now: float
    ) -> None:
        """In the room again as a new member: Reconnected, the room as it is, the
        chat missed, what came meanwhile, then the unacknowledged chat again."""
        self._move(Phase.OPEN)
        self.mirror.joined(joined)
        self._emit(Reconnected(attempts=self._attempt, resume_refused=self._resume_refused))
        self._emit(joined)
        if gap is not None:
            self._emit(gap)
        for stored in missed:
            self.mirror.seen_seq(stored.seq)
            if not self.outbox.owns(stored.client_id):  # ours come back as chat-acks
                self._emit(_as_chat(stored))
        self._attempt = 0
        self._resume_refused = None
        self._dispatch_backlog(now)
        self._restore(now)

    # -- in the room ------------------------------------------------------------

    def _dispatch(self, event: KnownMessage | ServerMessage, now: float) -> None:
        # (A message of a type this client has no struct for keeps its ref in its data:
        # the reply to a request sent with send-what-you-like, a media-offer...)
        ref = (
            event.data.get("ref")
            if isinstance(event, ServerMessage)
            else getattr(event, "ref", None)
        )
        if isinstance(event, ChatAck):
            entry = self.outbox.acknowledged(event.client_id)
            if entry is not None:
                self._answer(entry.ref, event)
            self.mirror.seen_seq(event.seq)
        elif isinstance(event, ServerError):
            entry = self.outbox.by_ref(ref)
            if entry is not None:
                self._chat_refused(entry, event, now)
                return  # retried, or raised by chat(): not an event of its own
        if ref is not None and str(ref) in self._requests:
            del self._requests[str(ref)]
            if isinstance(event, ServerError):
                self._answer(str(ref), RequestFailed(event.code, event.message))
            else:
                self._answer(str(ref), event)
            if isinstance(event, RoomJoined):  # join(room): in another room now
                self.mirror.joined(event)
                self._emit(event)
                self._back_in_room(now)
                return
            if isinstance(event, Pong | History):
                return  # data for the caller alone
            if isinstance(event, UnreadNotifications):
                self.mirror.unread.update((n.id, n) for n in event.notifications)
                return
            # other answers (an error, a call's news...) are events as well
        self.mirror.track(event, now)
        if isinstance(event, ReconnectHint):
            self._hint = max(0, event.after_ms) / 1000
            self._hint_resume = event.resume
        if isinstance(event, NotificationReceived) and not self.mirror.notification_arrived(event):
            return  # came in the list sent on connecting as well
        self._emit(event)

    def _dispatch_backlog(self, now: float) -> None:
        backlog, self._backlog = self._backlog, []
        for event in backlog:
            self._dispatch(event, now)

    def _chat_refused(self, entry: OutgoingChat, error: ServerError, now: float) -> None:
        again = self.outbox.refused(
            entry, error.code, in_room=self.mirror.in_room, now=now, backoff=self.backoff
        )
        if not again:
            self._answer(entry.ref, RequestFailed(error.code, error.message))

    def _transmit(self, entry: OutgoingChat, now: float) -> None:
        self._send(entry.frame())
        self.outbox.sent(entry, now + self.request_timeout)

    def _restore(self, now: float) -> None:
        """What a new connection owes the old one's unfinished business: the chat
        messages not yet acknowledged, in the order they were first sent."""
        for entry in self.outbox:
            self._transmit(entry, now)

    def _back_in_room(self, now: float) -> None:
        for entry in self.outbox.waiting_for_room():
            self._transmit(entry, now)

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

    # -- reconnecting and finishing -----------------------------------------------

    def _schedule(self, now: float) -> None:
        """Wait before the next attempt: the server's hint, else the backoff."""
        self._attempt += 1
        hint, self._hint = self._hint, None
        delay = hint if hint is not None else self.backoff.delay(self._attempt)
        self._reconnect_at = now + delay
        self._move(Phase.WAITING)

    def _attempt_failed(self, reason: str, now: float) -> None:
        if self.backoff.gives_up_after(self._attempt):
            self._finish(f"gave up reconnecting: {reason}")
            return
        log.info("hubbub client: reconnect attempt %d failed: %s", self._attempt, reason)
        self._schedule(now)

    def _give_up_connection(self) -> None:
        """Leave the current connection (a step of the reconnection failed)."""
        if self._connected:
            self._connected = False
            self._lose_connection()
            self._actions.append(CloseConnection())

    def _lose_connection(self) -> None:
        """What ends with a connection: frames not yet written, replies awaited."""
        self._actions = deque(a for a in self._actions if not isinstance(a, Send))
        self._step_deadline = self._join_again_at = None
        self._restore_at_n = None
        self._catch_up = None
        self.outbox.hold()
        for ref in list(self._requests):
            self._answer(ref, NotConnected("the connection to the server was lost"))
        self._requests.clear()

    def _fail_start(self, error: Exception) -> None:
        self._answer(JOIN_REF, error)
        self._starting = False
        self._finish(str(error))

    def _finish(self, reason: str) -> None:
        if self._phase is Phase.CLOSED:
            return
        if self._starting:
            self._starting = False
            self._answer(JOIN_REF, Closed(reason))
        if self._connected:
            self._connected = False
            self._actions.append(CloseConnection())
        self._move(Phase.CLOSED)
        self.close_reason = reason
        self._reconnect_at = self._step_deadline = self._join_again_at = None
        for ref in list(self._requests):
            self._answer(ref, NotConnected("the connection to the server was lost"))
        self._requests.clear()
        for entry in self.outbox.take_all():
            self._answer(entry.ref, Closed(f"{reason}; the message may not have been stored"))
        self._actions.append(Finished(reason))

    # -- helpers ----------------------------------------------------------------

    def _move(self, to: Phase) -> None:
        if to not in MOVES[self._phase]:
            raise IllegalMove(f"{self._phase.value} -> {to.value}")
        self._phase = to

    def _expect(self, phase: Phase) -> None:
        if self._phase is not phase:
            raise IllegalMove(f"in {self._phase.value}, not {phase.value}")

    def _check_open(self) -> None:
        if self._phase is Phase.CLOSED:
            raise Closed(self.close_reason or "closed")
        if self._phase is not Phase.OPEN:
            raise NotConnected("the connection to the server is down")

    def _send(self, frame: Mapping[str, Any]) -> None:
        self._actions.append(Send(encode(frame)))

    def _emit(self, event: Event) -> None:
        self._actions.append(Emit(event))

    def _answer(self, key: str, outcome: KnownMessage | ServerMessage | Exception) -> None:
        self._actions.append(Answer(key, outcome))


def _as_chat(stored: StoredChat) -> ChatMessage:
    return ChatMessage(
        message=stored.message,
        user_id=stored.user_id,
        id=stored.id,
        seq=stored.seq,
        ts=stored.ts,
        client_id=stored.client_id,
    )


__all__ = [
    "DEFAULT_MAX_CATCH_UP",
    "DEFAULT_REQUEST_TIMEOUT",
    "JOIN_REF",
    "MOVES",
    "Action",
    "Answer",
    "ClientState",
    "CloseConnection",
    "Connect",
    "Emit",
    "Finished",
    "IllegalMove",
    "Phase",
    "Send",
]
