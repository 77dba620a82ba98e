"""The Redis broker (``--broker redis://...``): the nodes of a cluster, joined
through one Redis server (not Redis Cluster: the scripts below touch keys they
compute).

What travels where::

    channel hubbub:r:<room>   room messages, once per message whatever the number of
                              receivers; membership events (joined, left); the
                              room's end (an admin's)
    channel hubbub:n:<node>   messages to one session of that node; answers to its
                              claims; close requests; room snapshots after an outage;
                              requests to end a session whose client came back
                              through another node, and their answers
    channel hubbub:u          messages to a user's connections, once per message:
                              every node delivers to its own connections of that user
    hash    hubbub:members:<room>   user id -> "<session id>|<join order>|<info JSON>"
    string  hubbub:order:<room>     the room's join counter
    string  hubbub:alive:<node>     set with an expiry, refreshed by the live node
    set     hubbub:nodes            every node that registered
    set     hubbub:rooms:<node>     rooms where that node has members
    hash    hubbub:conn:<user>      node -> 1: the nodes where that user has connections
    set     hubbub:users:<node>     users with connections on that node
    string  hubbub:call:<user>      the call that user is in, with an expiry refreshed
                                    by the node where the call lives (the caller's)

A session id starts with its node's id (``<node>.<random>``): a message to a session
goes straight to its node's channel, with no lookup. So does a call id: a call
lives on its caller's node, and the callee's moves made through another node are
sent there.

Nothing in the hot path awaits: the hub's publications go to a bounded queue that
is written to Redis once per turn of the event loop, one pipeline of every command
queued, on a connection of the broker's own (:mod:`hubbub.broker.resp`); replies
and pub/sub messages are parsed by hiredis as they arrive, many per read. What does
not fit, or comes while Redis is unreachable, is dropped and counted
(:attr:`RedisBroker.dropped`). A node's own members get room messages directly,
without the round trip. redis-py serves the rest (scripts loading, heartbeats,
resync), which is not per message.

A node subscribes to a room's channel before it claims a place there, and the
answer to the claim comes back on the node's channel through the same subscriber
connection: every event published before the claim is in the answer's member
list, every one after it arrives after the answer. Live nodes refresh their alive
key every ``heartbeat`` seconds; a node whose key expired (``node_timeout``) is
reaped by the first live node to notice: its members are taken out of their rooms
and announced as gone (``user-left``) to every node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from hubbub import randomness
from hubbub.broker import (
    CallPlacement,
    CallRoute,
    ChatRun,
    ClaimOutcome,
    ClaimResult,
    Delivery,
    Member,
    MembershipEvents,
)
from hubbub.broker.resp import Reply, RespConnection, open_connection, pack_command

log = logging.getLogger("hubbub.broker")

PREFIX = "hubbub:"
NODE_ID_LENGTH = 8
USERS_CHANNEL = f"{PREFIX}u"
"""Messages to a user's connections: every node listens and delivers to its own."""
CLAIM_TIMEOUT = 5.0
"""Seconds a join waits for the cluster's answer before it is refused
(``cluster-unavailable``)."""
STOP_TIMEOUT = 5.0
"""Seconds a stopping node waits for its queue to reach Redis."""

_CHAT_PREFIX = b'{"type":"chat",'

_CLAIM = """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
local outcome = 'admitted'
if existing then
  if ARGV[4] ~= '1' then outcome = 'taken' end
elseif redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[5]) then
  outcome = 'full'
end
if outcome == 'admitted' then
  local order = redis.call('INCR', KEYS[2])
  local entry = ARGV[2] .. '|' .. order .. '|' .. ARGV[3]
  redis.call('HSET', KEYS[1], ARGV[1], entry)
  redis.call('SADD', KEYS[3], ARGV[8])
  if existing then
    redis.call('PUBLISH', ARGV[6], 'l' .. cjson.encode({u=ARGV[1], e=existing, a=0}))
    if ARGV[10] ~= '' and not string.find(existing, '"h":true', 1, true) then
      redis.call('PUBLISH', ARGV[6], 'm' .. ARGV[11] .. '\\n' .. ARGV[10])
    end
  end
  redis.call('PUBLISH', ARGV[6], 'j' .. cjson.encode({u=ARGV[1], e=entry, a=0}))
  if ARGV[9] ~= '' then
    redis.call('PUBLISH', ARGV[6], 'm' .. ARGV[11] .. ARGV[2] .. '\\n' .. ARGV[9])
  end
end
local all = redis.call('HGETALL', KEYS[1])
redis.call('PUBLISH', ARGV[7],
  'c' .. cjson.encode({s=ARGV[2], r=ARGV[8], o=outcome, p=existing or '', m=all}))
return outcome
"""

_RELEASE = """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if not existing then return 0 end
local mine = ARGV[2] .. '|'
if string.sub(existing, 1, #mine) ~= mine then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[2]) end
redis.call('PUBLISH', ARGV[3], 'l' .. cjson.encode({u=ARGV[1], e=existing, a=0}))
return 1
"""

_REAP = """
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local rooms = redis.call('SMEMBERS', KEYS[2])
local node = ARGV[1] .. '.'
local gone = 0
for _, room in ipairs(rooms) do
  local hash = ARGV[2] .. 'members:' .. room
  local all = redis.call('HGETALL', hash)
  for i = 1, #all, 2 do
    local entry = all[i + 1]
    if string.sub(entry, 1, #node) == node then
      redis.call('HDEL', hash, all[i])
      redis.call('PUBLISH', ARGV[2] .. 'r:' .. room,
        'l' .. cjson.encode({u=all[i], e=entry, a=1}))
      gone = gone + 1
    end
  end
  if redis.call('HLEN', hash) == 0 then redis.call('DEL', ARGV[2] .. 'order:' .. room) end
end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
for _, user in ipairs(redis.call('SMEMBERS', ARGV[2] .. 'users:' .. ARGV[1])) do
  redis.call('HDEL', ARGV[2] .. 'conn:' .. user, ARGV[1])
end
redis.call('DEL', ARGV[2] .. 'users:' .. ARGV[1])
return gone
"""

_PLACE_CALL = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 'already-in-call' end
local reachable = false
for _, node in ipairs(redis.call('HKEYS', KEYS[3])) do
  if redis.call('EXISTS', ARGV[3] .. 'alive:' .. node) == 1 then
    reachable = true
  else
    redis.call('HDEL', KEYS[3], node)
  end
end
if not reachable then return 'unavailable' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'busy' end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 'placed'
"""

_CALL_OVER = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 0
"""

_SYNC = """
redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
redis.call('SADD', KEYS[3], ARGV[1])
local want = cjson.decode(ARGV[5])
local node = ARGV[1] .. '.'
local p = ARGV[2]
local conflicts = {}
for _, room in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local hash = p .. 'members:' .. room
  local keep = {}
  for _, m in ipairs(want[room] or {}) do keep[m[1]] = m[2] end
  local all = redis.call('HGETALL', hash)
  for i = 1, #all, 2 do
    local entry = all[i + 1]
    if string.sub(entry, 1, #node) == node
        and keep[all[i]] ~= string.match(entry, '^([^|]*)') then
      redis.call('HDEL', hash, all[i])
      redis.call('PUBLISH', p .. 'r:' .. room, 'l' .. cjson.encode({u=all[i], e=entry, a=1}))
    end
  end
  if redis.call('HLEN', hash) == 0 then redis.call('DEL', p .. 'order:' .. room) end
  if not want[room] then redis.call('SREM', KEYS[1], room) end
end
for room, members in pairs(want) do
  local hash = p .. 'members:' .. room
  redis.call('SADD', KEYS[1], room)
  for _, m in ipairs(members) do
    local existing = redis.call('HGET', hash, m[1])
    if not existing then
      local order = redis.call('INCR', p .. 'order:' .. room)
      local entry = m[2] .. '|' .. order .. '|' .. m[3]
      redis.call('HSET', hash, m[1], entry)
      redis.call('PUBLISH', p .. 'r:' .. room, 'j' .. cjson.encode({u=m[1], e=entry, a=1}))
    elseif string.match(existing, '^([^|]*)') ~= m[2] then
      table.insert(conflicts, m[2])
    end
  end
  redis.call('PUBLISH', ARGV[4],
    'y' .. cjson.encode({r=room, m=redis.call('HGETALL', hash)}))
end
return conflicts
"""


_USERS_BYTES = USERS_CHANNEL.encode()


def node_of(session_id: str) -> str | None:
    """The node a session id names, if it names one."""
    if len(session_id) > NODE_ID_LENGTH and session_id[NODE_ID_LENGTH] == ".":
        return session_id[:NODE_ID_LENGTH]
    return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _info(member: Member) -> str:
    return json.dumps(
        {"n": member.name, "g": member.grants, "h": member.hidden, "s": member.status},
        separators=(",", ":"),
    )


def _parse_entry(user_id: str, entry: str) -> tuple[int, Member]:
    """(join order, member) from a members hash value."""
    session_id, order, info = entry.split("|", 2)
    fields = json.loads(info)
    member = Member(
        user_id=user_id,
        session_id=session_id,
        name=fields.get("n"),
        grants=fields.get("g"),
        hidden=bool(fields.get("h")),
        status=fields.get("s") or "online",
    )
    return int(order), member


def _parse_members(flat: Any) -> list[Member]:
    """HGETALL's flat [user, entry, user, entry...] (``{}`` from cjson when empty),
    in join order."""
    if not isinstance(flat, list):
        return []
    entries = [_parse_entry(flat[i], flat[i + 1]) for i in range(0, len(flat) - 1, 2)]
    entries.sort(key=lambda pair: pair[0])
    return [member for _, member in entries]


class _Op:
    """One command for the writer to send (a PUBLISH, a script's EVALSHA...)."""

    __slots__ = ("at", "data", "on_error", "on_reply", "on_sent")

    def __init__(
        self,
        *command: Any,
        on_error: Callable[[], None] | None = None,
        on_sent: Callable[[], None] | None = None,
        on_reply: Callable[[Reply], None] | None = None,
    ) -> None:
        self.data: bytes = pack_command(command)
        self.on_error = on_error
        """Called if the command is dropped or fails."""
        self.on_sent = on_sent
        self.on_reply = on_reply
        """Called with Redis's reply, when it is not an error."""
        self.at = time.monotonic()


def _publish(channel: str, data: bytes) -> _Op:
    return _Op("PUBLISH", channel, data)


def _evalsha(script: Any, keys: list[str], args: list[Any], **kw: Any) -> _Op:
    return _Op("EVALSHA", script.sha, len(keys), *keys, *args, **kw)


class RedisBroker:
    """A :class:`~hubbub.broker.Broker` and :class:`~hubbub.broker.Membership`
    over Redis."""

    def __init__(
        self,
        url: str,
        *,
        heartbeat: float = 1.0,
        node_timeout: float = 5.0,
        max_pending: int = 100_000,
        node_id: str | None = None,
    ) -> None:
        self.url = url
        self.node_id = node_id or secrets.token_hex(NODE_ID_LENGTH // 2)
        self.heartbeat = heartbeat
        self.node_timeout = node_timeout
        self.max_pending = max_pending
        self.connected = False
        """Redis answered lately and this node is subscribed to its channels."""
        self.published = 0
        """Operations sent to Redis (publications and membership changes)."""
        self.dropped = 0
        """Operations dropped: the queue was full or Redis unreachable."""
        self._delivery: Delivery | None = None
        self._events: MembershipEvents | None = None
        self._node_channel = f"{PREFIX}n:{self.node_id}"
        self._node_bytes = self.node_id.encode()
        self._client = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self._subscriber: RespConnection | None = None
        """Subscribed to this node's channel, the users' and its rooms'."""
        self._publisher: RespConnection | None = None
        """Where the queue is written."""
        self._claim_script = self._client.register_script(_CLAIM)
        self._release_script = self._client.register_script(_RELEASE)
        self._reap_script = self._client.register_script(_REAP)
        self._sync_script = self._client.register_script(_SYNC)
        self._place_call_script = self._client.register_script(_PLACE_CALL)
        self._call_over_script = self._client.register_script(_CALL_OVER)
        self._users_here: set[str] = set()
        """Users with connections on this node (registered in Redis)."""
        self._calls_here: dict[str, tuple[str, str]] = {}
        """call id -> (caller, callee) of the calls placed on this node, whose
        parties' call keys it keeps alive."""
        self._queue: deque[_Op] = deque()
        """Waiting for the end of this turn of the event loop, to be written."""
        self._inflight: deque[_Op] = deque()
        """Written, waiting for Redis's reply, in order."""
        self._flush_soon = False
        self._tasks: list[asyncio.Task[None]] = []
        self._confirming = 0
        """Subscriptions of a (re)connection not yet confirmed."""
        self._confirmed: asyncio.Future[None] | None = None
        self._wanted: dict[str, int] = {}
        """room -> local members and claims on their way: while above 0, this node
        is subscribed to the room's channel."""
        self._subscribing: dict[str, int] = {}
        """room -> SUBSCRIBE commands sent and not yet confirmed."""
        self._subscribed: set[str] = set()
        self._waiting: dict[str, list[_Op]] = {}
        """Claims waiting for their room's subscription to be confirmed."""
        self._claims: dict[str, tuple[str, float]] = {}
        """session id -> (room, deadline) of the claims on their way."""
        self._ending: dict[str, float] = {}
        """local session id -> deadline of the requests to end a session elsewhere."""
        self._placing: dict[str, float] = {}
        """call id -> deadline of the calls waiting for Redis's word."""
        self._mirror: dict[str, dict[str, Member]] = {}
        """room -> user id -> member on another node, for the rooms subscribed."""
        self._suspects: dict[tuple[str, str], tuple[Member, float]] = {}
        """(room, user id) -> (member, when): members missing after an outage, gone
        unless their node puts them back by then."""
        self._stopping = False
        self._up = asyncio.Event()
        """Set while connected (for start-up to wait on)."""
        self._connect_error = ""

    # -- Broker -----------------------------------------------------------------

    def attach(self, delivery: Delivery) -> None:
        self._delivery = delivery

    def publish_to_room(self, room: str, payload: bytes, exclude: str | None = None) -> None:
        delivery = self._delivery
        if delivery is not None:
            delivery.deliver_to_room(room, payload, exclude)
        data = b"m" + self._node_bytes + (exclude or "").encode() + b"\n" + payload
        self._send(_publish(f"{PREFIX}r:{room}", data))

    def publish_chat(self, room: str, run: ChatRun) -> None:
        delivery = self._delivery
        if delivery is not None:
            delivery.deliver_chat(room, run)
        # The acks are this node's: each sender sent its chat here.
        channel = f"{PREFIX}r:{room}"
        for relay, sender, _ in run:
            if relay is not None:
                data = b"m" + self._node_bytes + sender.encode() + b"\n" + relay
                self._send(_publish(channel, data))

    def publish_to_session(self, session_id: str, payload: bytes) -> None:
        node = node_of(session_id)
        if node is None or node == self.node_id:
            if self._delivery is not None:
                self._delivery.deliver_to_session(session_id, payload)
            return
        data = b"s" + session_id.encode() + b"\n" + payload
        self._send(_publish(f"{PREFIX}n:{node}", data))

    def publish_to_user(self, user_id: str, payload: bytes, exclude: str | None = None) -> None:
        if self._delivery is not None:
            self._delivery.deliver_to_user(user_id, payload, exclude)
        head = b"u" + self._node_bytes + (exclude or "").encode() + b"\n" + user_id.encode()
        self._send(_publish(USERS_CHANNEL, head + b"\n" + payload))

    def lag_seconds(self) -> float:
        """How long the oldest operation waiting for Redis has waited."""
        oldest = self._inflight or self._queue
        return time.monotonic() - oldest[0].at if oldest else 0.0

    @property
    def pending(self) -> int:
        return len(self._queue) + len(self._inflight)

    # -- Membership -------------------------------------------------------------

    def attach_members(self, events: MembershipEvents) -> None:
        self._events = events

    def new_session_id(self) -> str:
        return f"{self.node_id}.{randomness.token_urlsafe(12)}"

    def claim(
        self,
        room: str,
        member: Member,
        *,
        replace: bool,
        max_members: int,
        joined: bytes | None = None,
        left: bytes | None = None,
    ) -> None:
        session_id = member.session_id
        if not self.connected:
            asyncio.get_running_loop().call_soon(
                self._answer, session_id, ClaimResult(ClaimOutcome.UNAVAILABLE, [])
            )
            return
        self._want(room)
        self._claims[session_id] = (room, time.monotonic() + CLAIM_TIMEOUT)
        op = _evalsha(
            self._claim_script,
            [f"{PREFIX}members:{room}", f"{PREFIX}order:{room}", f"{PREFIX}rooms:{self.node_id}"],
            [
                member.user_id,
                session_id,
                _info(member),
                "1" if replace else "0",
                max_members,
                f"{PREFIX}r:{room}",
                self._node_channel,
                room,
                joined or b"",
                left or b"",
                self.node_id,
            ],
            on_error=lambda: self._claim_failed(session_id),
        )
        if room in self._subscribed:
            self._send(op)
        else:
            self._waiting.setdefault(room, []).append(op)

    def release(self, room: str, member: Member) -> None:
        self._send(
            _evalsha(
                self._release_script,
                [f"{PREFIX}members:{room}", f"{PREFIX}order:{room}"],
                [member.user_id, member.session_id, f"{PREFIX}r:{room}"],
            )
        )
        self._unwant(room)

    def remote_member(self, room: str, user_id: str) -> Member | None:
        members = self._mirror.get(room)
        return None if members is None else members.get(user_id)

    def remote_members(self, room: str) -> list[Member]:
        return list(self._mirror.get(room, {}).values())

    def close_remote(self, member: Member, code: int, reason: str, announce: bool) -> None:
        node = node_of(member.session_id)
        if node is None:
            return
        body = {"s": member.session_id, "c": int(code), "r": reason, "a": announce}
        self._send(_publish(f"{PREFIX}n:{node}", b"x" + json.dumps(body).encode()))

    def end_room_elsewhere(self, room: str) -> None:
        self._send(_publish(f"{PREFIX}r:{room}", b"e" + self._node_bytes))

    async def room_members(self, room: str) -> list[Member]:
        """Every member of ``room`` on every node, from Redis (for the HTTP API,
        on a node that may have none of them)."""
        flat = await self._client.hgetall(f"{PREFIX}members:{room}")
        entries = [_parse_entry(_text(user), _text(entry)) for user, entry in flat.items()]
        entries.sort(key=lambda pair: pair[0])
        return [member for _, member in entries]

    # -- users and calls ----------------------------------------------------------

    def user_here(self, user_id: str, here: bool) -> None:
        conn, users = f"{PREFIX}conn:{user_id}", f"{PREFIX}users:{self.node_id}"
        if here:
            self._users_here.add(user_id)
            self._send(_Op("HSET", conn, self.node_id, 1))
            self._send(_Op("SADD", users, user_id))
        else:
            self._users_here.discard(user_id)
            self._send(_Op("HDEL", conn, self.node_id))
            self._send(_Op("SREM", users, user_id))

    def connected_elsewhere(self, user_id: str) -> bool:
        # Not known here without asking Redis: a call that rings elsewhere rings on.
        return True

    def place_call(self, call_id: str, caller: str, callee: str, ringing: bytes) -> None:
        self._placing[call_id] = time.monotonic() + CLAIM_TIMEOUT

        def answer(outcome: CallPlacement) -> None:
            if self._placing.pop(call_id, None) is None:
                return  # answered already (timed out): the call keys expire by themselves
            if outcome is CallPlacement.PLACED:
                self._calls_here[call_id] = (caller, callee)
            if self._events is not None:
                self._events.call_placed(call_id, outcome)

        def replied(reply: Reply) -> None:
            answer(CallPlacement(reply.decode() if isinstance(reply, bytes) else reply))

        def failed() -> None:
            # Never from within place_call itself (an operation dropped at once).
            asyncio.get_running_loop().call_soon(answer, CallPlacement.CLUSTER_UNAVAILABLE)

        head = b"u" + self._node_bytes + b"\n" + callee.encode()
        self._send(
            _evalsha(
                self._place_call_script,
                [f"{PREFIX}call:{caller}", f"{PREFIX}call:{callee}", f"{PREFIX}conn:{callee}"],
                [call_id, self._call_ttl_ms, PREFIX, USERS_CHANNEL, head + b"\n" + ringing],
                on_reply=replied,
                on_error=failed,
            )
        )

    def call_over(self, call_id: str, caller: str, callee: str) -> None:
        self._calls_here.pop(call_id, None)
        self._send(
            _evalsha(
                self._call_over_script,
                [f"{PREFIX}call:{caller}", f"{PREFIX}call:{callee}"],
                [call_id],
            )
        )

    def call_move(
        self,
        call_id: str,
        move: str,
        user_id: str,
        session_id: str,
        ref: str | int | None,
        room: str | None = None,
    ) -> CallRoute:
        node = node_of(call_id)
        if node is None or node == self.node_id:
            return CallRoute.HERE
        if not self.connected:
            self.dropped += 1
            return CallRoute.UNREACHABLE
        body = {"c": call_id, "m": move, "u": user_id, "s": session_id, "f": ref, "r": room}
        self._send(_publish(f"{PREFIX}n:{node}", b"k" + json.dumps(body).encode()))
        return CallRoute.SENT

    @property
    def _call_ttl_ms(self) -> int:
        """A call key outlives its node by at most this: refreshed every heartbeat."""
        return int(self.node_timeout * 1000)

    def end_elsewhere(self, session_id: str, resume_token: str, asked_by: str) -> bool:
        node = node_of(session_id)
        if node is None or node == self.node_id or not self.connected:
            return False
        self._ending[asked_by] = time.monotonic() + CLAIM_TIMEOUT
        body = {"s": session_id, "t": resume_token, "b": asked_by}
        self._send(
            _Op(
                "PUBLISH",
                f"{PREFIX}n:{node}",
                b"q" + json.dumps(body).encode(),
                on_error=lambda: self._ended_elsewhere(asked_by, False),
            )
        )
        return True

    def _ended_elsewhere(self, asked_by: str, ended: bool) -> None:
        if self._ending.pop(asked_by, None) is not None and self._events is not None:
            # Never from within end_elsewhere itself (a request dropped at once).
            asyncio.get_running_loop().call_soon(self._events.ended_elsewhere, asked_by, ended)

    def _on_end_request(self, body: dict[str, Any]) -> None:
        """Another node holds the client of a session of ours: end it here, then say
        so. The answer goes out after the session's release (one queue, in order):
        once it arrives, the session's place is free in Redis."""
        ended = self._events is not None and self._events.end_for_resume(body["s"], body["t"])
        node = node_of(body["b"])
        if node is not None:
            answer = {"b": body["b"], "e": ended}
            self._send(_publish(f"{PREFIX}n:{node}", b"Q" + json.dumps(answer).encode()))

    # -- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        """Connect and join the cluster; with Redis unreachable, start apart from it
        (``/readyz`` says so) and keep trying."""
        self._tasks = [asyncio.create_task(self._supervise(), name="redis-supervisor")]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.node_timeout):
                await self._up.wait()
        log.info("event=cluster-node node=%s connected=%s", self.node_id, self.connected)

    async def stop(self) -> None:
        """Send what is queued (the members' leaves among it), leave the cluster."""
        flushed = asyncio.get_running_loop().create_future()

        def done() -> None:
            if not flushed.done():
                flushed.set_result(None)

        self._send(_Op("PING", on_sent=done, on_error=done))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_TIMEOUT):
                await flushed
        self._stopping = True
        if self.connected:
            with contextlib.suppress(RedisError, OSError):
                async with self._client.pipeline(transaction=False) as pipe:
                    pipe.delete(f"{PREFIX}alive:{self.node_id}")
                    pipe.srem(f"{PREFIX}nodes", self.node_id)
                    await pipe.execute()
        for task in self._tasks:
            task.cancel()
        # Bounded: a stop never hangs on a connection that does not answer.
        await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT)
        self._close_connections()
        with contextlib.suppress(TimeoutError, RedisError, OSError):
            async with asyncio.timeout(STOP_TIMEOUT):
                await self._client.aclose()

    async def ping(self) -> bool:
        """For ``/readyz``: Redis answers, and this node is subscribed."""
        return self.connected and bool(await self._client.ping())

    # -- the writer -------------------------------------------------------------

    def _send(self, op: _Op) -> None:
        if not self.connected or self.pending >= self.max_pending:
            self.dropped += 1
            if op.on_error is not None:
                op.on_error()
            return
        self._queue.append(op)
        if not self._flush_soon:
            # Everything this turn of the event loop publishes goes in one write.
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_soon = False
        queue = self._queue
        publisher = self._publisher
        if not queue or publisher is None or publisher.closed:
            return
        count = len(queue)
        data = b"".join([op.data for op in queue])
        self._inflight.extend(queue)
        queue.clear()
        self.published += count
        publisher.call_many(data, count, self._on_reply)

    def _on_reply(self, reply: Reply) -> None:
        op = self._inflight.popleft()
        if isinstance(reply, hiredis.ReplyError):
            log.error("event=redis-op-failed error=%s", reply)
            if op.on_error is not None:
                op.on_error()
        else:
            if op.on_sent is not None:
                op.on_sent()
            if op.on_reply is not None:
                op.on_reply(reply)

    # -- subscriptions ----------------------------------------------------------

    def _want(self, room: str) -> None:
        count = self._wanted.get(room, 0)
        self._wanted[room] = count + 1
        if count == 0:
            self._mirror.setdefault(room, {})
            self._subscribe(room)

    def _unwant(self, room: str) -> None:
        count = self._wanted.get(room, 0) - 1
        if count > 0:
            self._wanted[room] = count
            return
        self._wanted.pop(room, None)
        self._mirror.pop(room, None)
        self._subscribed.discard(room)
        subscriber = self._subscriber
        if self.connected and subscriber is not None:
            self._send(_Op("SREM", f"{PREFIX}rooms:{self.node_id}", room))
            subscriber.write(pack_command(("UNSUBSCRIBE", f"{PREFIX}r:{room}")))

    def _subscribe(self, room: str) -> None:
        subscriber = self._subscriber
        if not self.connected or subscriber is None:
            return
        self._subscribing[room] = self._subscribing.get(room, 0) + 1
        subscriber.write(pack_command(("SUBSCRIBE", f"{PREFIX}r:{room}")))

    # -- reading ----------------------------------------------------------------

    def _on_push(self, reply: Reply) -> None:
        """What the subscriber connection receives: a message, or the confirmation
        of a SUBSCRIBE or UNSUBSCRIBE."""
        kind: bytes = reply[0]
        channel: bytes = reply[1]
        if kind == b"message":
            data: bytes = reply[2]
            if channel == self._node_bytes_channel:
                self._on_node_message(data)
            elif channel == _USERS_BYTES:
                self._on_user_message(data)
            else:
                self._on_room_message(channel[len(PREFIX) + 2 :].decode(), data)
        elif kind == b"subscribe":
            if self._confirming:
                # Those of a (re)connection: once all are in, nothing published
                # from then on is missed.
                self._confirming -= 1
                confirmed = self._confirmed
                if not self._confirming and confirmed is not None and not confirmed.done():
                    confirmed.set_result(None)
                return
            name = channel.decode()
            if name.startswith(f"{PREFIX}r:"):
                room = name[len(PREFIX) + 2 :]
                left = self._subscribing.get(room, 0) - 1
                if left > 0:
                    self._subscribing[room] = left
                    return
                self._subscribing.pop(room, None)
                if room in self._wanted:
                    self._subscribed.add(room)
                    for op in self._waiting.pop(room, []):
                        self._send(op)

    @property
    def _node_bytes_channel(self) -> bytes:
        return self._node_channel.encode()

    def _on_room_message(self, room: str, data: bytes) -> None:
        kind = data[:1]
        if kind == b"m":
            if data[1 : 1 + NODE_ID_LENGTH] == self._node_bytes:
                return  # this node's own: its members had it directly
            newline = data.index(b"\n", 1 + NODE_ID_LENGTH)
            exclude = data[1 + NODE_ID_LENGTH : newline].decode() or None
            payload = data[newline + 1 :]
            if self._delivery is not None:
                self._delivery.deliver_to_room(room, payload, exclude)
            if payload.startswith(_CHAT_PREFIX) and self._events is not None:
                self._events.chat_seen(room, payload)
            return
        if kind == b"e":
            if data[1:] != self._node_bytes and self._events is not None:
                self._events.room_ended(room)
            return
        members = self._mirror.get(room)
        if members is None:
            return
        event = json.loads(data[1:])
        _, member = _parse_entry(event["u"], event["e"])
        if node_of(member.session_id) == self.node_id:
            return
        announce = bool(event["a"])
        events = self._events
        self._suspects.pop((room, member.user_id), None)
        if kind == b"j":
            before = members.get(member.user_id)
            members[member.user_id] = member
            if announce and events is not None and before != member:
                events.members_changed(room, [member], [])
        elif kind == b"l":
            now = members.get(member.user_id)
            if now is not None and now.session_id == member.session_id:
                del members[member.user_id]
                if announce and events is not None:
                    events.members_changed(room, [], [member])

    def _on_user_message(self, data: bytes) -> None:
        if data[1 : 1 + NODE_ID_LENGTH] == self._node_bytes or self._delivery is None:
            return  # this node's own: delivered when published
        first = data.index(b"\n", 1 + NODE_ID_LENGTH)
        second = data.index(b"\n", first + 1)
        exclude = data[1 + NODE_ID_LENGTH : first].decode() or None
        user_id = data[first + 1 : second].decode()
        self._delivery.deliver_to_user(user_id, data[second + 1 :], exclude)

    def _on_node_message(self, data: bytes) -> None:
        kind = data[:1]
        if kind == b"s":
            newline = data.index(b"\n")
            if self._delivery is not None:
                self._delivery.deliver_to_session(data[1:newline].decode(), data[newline + 1 :])
            return
        body = json.loads(data[1:])
        if kind == b"c":
            self._on_claim_result(body)
        elif kind == b"x":
            if self._events is not None:
                self._events.close_session(body["s"], body["c"], body["r"], body["a"])
        elif kind == b"y":
            self._on_snapshot(body["r"], _parse_members(body["m"]))
        elif kind == b"k":
            if self._events is not None:
                self._events.call_moved(
                    body["c"], body["m"], body["u"], body["s"], body["f"], body["r"]
                )
        elif kind == b"q":
            self._on_end_request(body)
        elif kind == b"Q":
            self._ended_elsewhere(body["b"], bool(body["e"]))

    def _on_claim_result(self, body: dict[str, Any]) -> None:
        session_id = body["s"]
        outcome = ClaimOutcome(body["o"])
        members = _parse_members(body["m"])
        pending = self._claims.pop(session_id, None)
        if pending is None:
            # Answered already (timed out): a place taken for nobody is given back.
            if outcome is ClaimOutcome.ADMITTED:
                for member in members:
                    if member.session_id == session_id:
                        self._want(body["r"])
                        self.release(body["r"], member)
            return
        room = pending[0]
        mirror = self._mirror.get(room)
        if mirror is not None:
            mirror.clear()
            for member in members:
                if node_of(member.session_id) != self.node_id:
                    mirror[member.user_id] = member
        replaced = None
        if outcome is ClaimOutcome.ADMITTED and body["p"]:
            claimant = next((m for m in members if m.session_id == session_id), None)
            if claimant is not None:
                _, replaced = _parse_entry(claimant.user_id, body["p"])
        elif outcome is not ClaimOutcome.ADMITTED:
            self._unwant(room)
        self._answer(session_id, ClaimResult(outcome, members, replaced))

    def _on_snapshot(self, room: str, members: list[Member]) -> None:
        """This node is back after an outage: what changed meanwhile is announced.

        A member missing from the snapshot may only be waiting for its own node to
        come back (after a Redis restart every node puts its members back): it is
        announced as gone if it is still missing ``node_timeout`` later.
        """
        mirror = self._mirror.get(room)
        if mirror is None:
            return
        now = {m.user_id: m for m in members if node_of(m.session_id) != self.node_id}
        deadline = time.monotonic() + self.node_timeout
        for uid, known in mirror.items():
            if now.get(uid) != known:
                self._suspects[room, uid] = (known, deadline)
        joined = [m for uid, m in now.items() if mirror.get(uid) != m]
        for came in joined:
            mirror[came.user_id] = came
            self._suspects.pop((room, came.user_id), None)
        if joined and self._events is not None:
            self._events.members_changed(room, joined, [])

    def _expire_suspects(self) -> None:
        now = time.monotonic()
        for key, (known, deadline) in list(self._suspects.items()):
            if deadline > now:
                continue
            del self._suspects[key]
            room, uid = key
            mirror = self._mirror.get(room)
            if mirror is not None and mirror.get(uid) == known:
                del mirror[uid]
                if self._events is not None:
                    self._events.members_changed(room, [], [known])

    def _answer(self, session_id: str, result: ClaimResult) -> None:
        if self._events is not None:
            self._events.claim_answered(session_id, result)

    def _claim_failed(self, session_id: str) -> None:
        pending = self._claims.pop(session_id, None)
        if pending is None:
            return
        self._unwant(pending[0])
        asyncio.get_running_loop().call_soon(
            self._answer, session_id, ClaimResult(ClaimOutcome.UNAVAILABLE, [])
        )

    # -- liveness, outages ------------------------------------------------------

    def _lost(self, why: str) -> None:
        """Redis went away: nothing more is sent until it is back and resynchronized."""
        if not self.connected or self._stopping:
            return
        log.warning("event=cluster-disconnected node=%s error=%s", self.node_id, why)
        self.connected = False
        self._up.clear()
        self._subscribed.clear()
        self._subscribing.clear()
        self._waiting.clear()
        self._close_connections()
        lost = [*self._inflight, *self._queue]
        self.dropped += len(lost)
        failed = [op for op in lost if op.on_error is not None]
        self._inflight.clear()
        self._queue.clear()
        for op in failed:
            assert op.on_error is not None
            op.on_error()
        for session_id in list(self._claims):
            self._claim_failed(session_id)
        for asked_by in list(self._ending):
            self._ended_elsewhere(asked_by, False)

    async def _supervise(self) -> None:
        while not self._stopping:
            try:
                if not self.connected:
                    await self._connect()
                else:
                    await self._beat()
            except (RedisError, OSError) as exc:
                if self.connected:
                    self._lost(f"heartbeat: {exc}")
                elif str(exc) != self._connect_error:
                    self._connect_error = str(exc)  # once per cause, not every heartbeat
                    log.warning("event=cluster-connect-failed node=%s error=%s", self.node_id, exc)
            self._expire_claims()
            self._expire_suspects()
            await asyncio.sleep(self.heartbeat)

    async def _connect(self) -> None:
        """Subscribe again, then make Redis agree with this node's members."""
        self._close_connections()
        await self._client.ping()
        for script in (
            self._claim_script,
            self._release_script,
            self._place_call_script,
            self._call_over_script,
        ):
            # Loaded by hand: the writer's pipelines call them by their SHA only.
            script.sha = await self._client.script_load(script.script)
        subscriber = self._subscriber = await open_connection(
            self.url, self._on_push, self._subscriber_lost, self.node_timeout
        )
        rooms = list(self._wanted)
        channels = [self._node_channel, USERS_CHANNEL, *(f"{PREFIX}r:{room}" for room in rooms)]
        confirmed = self._confirmed = asyncio.get_running_loop().create_future()
        self._confirming = len(channels)
        subscriber.write(pack_command(("SUBSCRIBE", *channels)))
        async with asyncio.timeout(self.node_timeout):
            await confirmed
        self._subscribed = set(rooms)
        self._publisher = await open_connection(
            self.url, None, self._publisher_lost, self.node_timeout
        )
        await self._sync()
        if subscriber.closed or self._publisher.closed:
            raise ConnectionError("the connection to Redis closed while resynchronizing")
        self.connected = True
        self._connect_error = ""
        self._up.set()
        log.info("event=cluster-connected node=%s rooms=%d", self.node_id, len(rooms))

    async def _sync(self) -> None:
        members = self._local_members()
        want = {
            room: [[m.user_id, m.session_id, _info(m)] for m in ms] for room, ms in members.items()
        }
        conflicts = await self._sync_script(
            keys=[
                f"{PREFIX}rooms:{self.node_id}",
                f"{PREFIX}alive:{self.node_id}",
                f"{PREFIX}nodes",
            ],
            args=[
                self.node_id,
                PREFIX,
                int(self.node_timeout * 1000),
                self._node_channel,
                json.dumps(want) if want else "{}",
            ],
        )
        # Where this node's users can be reached, and the calls it holds.
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.delete(f"{PREFIX}users:{self.node_id}")
            for user in self._users_here:
                pipe.hset(f"{PREFIX}conn:{user}", self.node_id, 1)
                pipe.sadd(f"{PREFIX}users:{self.node_id}", user)
            for call_id, (caller, callee) in self._calls_here.items():
                for user in (caller, callee):
                    pipe.set(f"{PREFIX}call:{user}", call_id, px=self._call_ttl_ms, nx=True)
            await pipe.execute()
        events = self._events
        for session_id in conflicts or []:
            sid = session_id.decode() if isinstance(session_id, bytes) else session_id
            if events is not None:
                # While this node was cut off, another took the same identity.
                events.close_session(sid, 4009, "the same user joined from elsewhere", False)

    def _local_members(self) -> dict[str, list[Member]]:
        return {} if self._events is None else self._events.local_members()

    async def _beat(self) -> None:
        client = self._client
        async with client.pipeline(transaction=False) as pipe:
            pipe.set(f"{PREFIX}alive:{self.node_id}", "1", px=int(self.node_timeout * 1000))
            pipe.sadd(f"{PREFIX}nodes", self.node_id)
            for caller, callee in self._calls_here.values():
                for user in (caller, callee):
                    pipe.pexpire(f"{PREFIX}call:{user}", self._call_ttl_ms)
            pipe.smembers(f"{PREFIX}nodes")
            *_, nodes = await pipe.execute()
        others = [n.decode() for n in nodes if n.decode() != self.node_id]
        if not others:
            return
        async with client.pipeline(transaction=False) as pipe:
            for node in others:
                pipe.exists(f"{PREFIX}alive:{node}")
            alive = await pipe.execute()
        for node, up in zip(others, alive, strict=True):
            if up:
                continue
            gone = await self._reap_script(
                keys=[f"{PREFIX}alive:{node}", f"{PREFIX}rooms:{node}", f"{PREFIX}nodes"],
                args=[node, PREFIX],
            )
            if gone >= 0:
                log.info("event=cluster-node-reaped node=%s members=%d", node, gone)

    def _expire_claims(self) -> None:
        now = time.monotonic()
        for session_id, (_, deadline) in list(self._claims.items()):
            if deadline <= now:
                self._claim_failed(session_id)
        for asked_by, deadline in list(self._ending.items()):
            if deadline <= now:
                self._ended_elsewhere(asked_by, False)
        for call_id, deadline in list(self._placing.items()):
            if deadline <= now:
                del self._placing[call_id]
                if self._events is not None:
                    self._events.call_placed(call_id, CallPlacement.CLUSTER_UNAVAILABLE)

    def _subscriber_lost(self, why: str) -> None:
        confirmed = self._confirmed
        if confirmed is not None and not confirmed.done():
            confirmed.set_exception(ConnectionError(why))
        self._lost(f"read: {why}")

    def _publisher_lost(self, why: str) -> None:
        self._lost(f"write: {why}")

    def _close_connections(self) -> None:
        for connection in (self._subscriber, self._publisher):
            if connection is not None:
                connection.close()
        self._subscriber = self._publisher = None
        self._confirming = 0
