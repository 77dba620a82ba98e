"""The Redis broker: the parts of a cluster node (:mod:`~hubbub.broker.redis`) tied
together, behind the :class:`~hubbub.broker.Broker` and
:class:`~hubbub.broker.Membership` interfaces, with the node's lifecycle: connect,
resynchronize after an outage, beat, stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from hubbub import randomness
from hubbub.broker import (
    CallRoute,
    ChatRun,
    ClusterStatus,
    Delivery,
    Member,
    MembershipEvents,
    ModeRule,
)
from hubbub.broker.redis import scripts, wire
from hubbub.broker.redis.calls import Calls
from hubbub.broker.redis.handover import Handovers
from hubbub.broker.redis.keys import USERS_CHANNEL, node_channel, room_channel
from hubbub.broker.redis.liveness import Liveness
from hubbub.broker.redis.media import RedisPlacements, RoomCalls
from hubbub.broker.redis.membership import RoomMembership
from hubbub.broker.redis.node import Node
from hubbub.broker.redis.pipeline import Pipeline, may_skip_replies, publish
from hubbub.broker.redis.resp import RespConnection, open_connection
from hubbub.broker.redis.rooms import Rooms
from hubbub.broker.redis.subscriptions import Subscriptions
from hubbub.broker.redis.target import RedisTarget
from hubbub.media.modes import MediaSetting
from hubbub.protocol.errors import CloseCode
from hubbub.protocol.messages import MediaFeed
from hubbub.settings import masked_url

log = logging.getLogger("hubbub.broker")

STOP_TIMEOUT = 5.0
"""Seconds a stopping node waits for its queue to reach Redis."""


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
        self.target = RedisTarget(url)
        """Where Redis is: the URL's server, or the master that Sentinel names now."""
        self._pipeline = Pipeline(max_pending)
        node = self._node = Node(
            node_id or wire.new_node_id(), heartbeat, node_timeout, self._pipeline
        )
        self.node_id = node.id
        self._wire = node.wire
        self.connected = False
        """Redis answered lately and this node is subscribed to its channels."""
        self._client: aioredis.Redis = self.target.client
        """redis-py, for what is not per message (scripts loading, heartbeats, resync)."""
        self._subscriptions = Subscriptions(node, self)
        self._rooms = Rooms(node, self._subscriptions.hears)
        self._membership = RoomMembership(node, self._subscriptions)
        self._calls = Calls(node)
        self._room_calls = RoomCalls(node)
        self._liveness = Liveness(node, self._client, self._calls, self._membership)
        self._handovers = Handovers(node, self._subscriptions, self._membership, self._reap_later)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        """Its queue is sent: an outage no longer matters, the supervisor ends."""
        self._stopped = False
        """:meth:`stop` was called."""
        self._up = asyncio.Event()
        """Set while connected (for start-up to wait on)."""
        self._connect_error = ""

    def placements(self) -> RedisPlacements:
        """Where this cluster's rooms are on the media servers."""
        return RedisPlacements(self._client, self.node_id)

    @property
    def malformed(self) -> int:
        """Publications dropped because they were malformed or not ours."""
        return self._node.malformed

    # -- Broker -----------------------------------------------------------------

    def attach(self, delivery: Delivery) -> None:
        self._node.delivery = delivery

    def new_session_id(self) -> str:
        return f"{self.node_id}.{randomness.token_urlsafe(12)}"

    def publish_to_room(self, room: str, payload: bytes, exclude: str | None = None) -> None:
        """Every member, this node's too, gets it when Redis carries it (see
        :mod:`~hubbub.broker.redis.rooms`)."""
        self._rooms.publish(room, payload, exclude)

    def publish_chat(self, room: str, run: ChatRun) -> None:
        # The acks are this node's: each sender sent its chat here, and gets its ack
        # when this node hears the chat back.
        self._rooms.publish_chat(room, run)

    def publish_to_session(self, session_id: str, payload: bytes) -> None:
        node = wire.node_of(session_id)
        if node is None or node == self.node_id:
            if self._node.delivery is not None:
                self._node.delivery.deliver_to_session(session_id, payload)
            return
        channel = node_channel(node)
        if node in self._node.read_batches:
            # with what else this turn sends that node's sessions, in one publication
            self._pipeline.send_batched(channel, (session_id, payload), wire.encode_sessions)
        else:
            self._pipeline.send(publish(channel, wire.encode_session(session_id, payload)))

    def publish_to_user(self, user_id: str, payload: bytes, exclude: str | None = None) -> None:
        if self._node.delivery is not None:
            self._node.delivery.deliver_to_user(user_id, payload, exclude)
        data = self._wire.user(exclude, user_id, payload)
        self._pipeline.send(publish(USERS_CHANNEL, data))

    def lag_seconds(self) -> float:
        """How long the oldest operation waiting for Redis has waited."""
        return self._pipeline.lag_seconds()

    def status(self) -> ClusterStatus:
        pipeline = self._pipeline
        return ClusterStatus(
            node=self.node_id,
            connected=self.connected,
            sent=pipeline.sent,
            dropped=pipeline.dropped,
            pending=pipeline.pending,
            lag_seconds=pipeline.lag_seconds(),
        )

    async def health(self) -> bool:
        """Redis answers, and this node is subscribed."""
        return self.connected and bool(await self._client.ping())

    async def room_members(self, room: str) -> list[Member]:
        try:
            return await self._membership.room_members(self._client, room)
        except RedisError as error:
            raise ConnectionError(f"Redis: {error}") from error

    async def rooms(self, limit: int, after: str | None = None) -> list[tuple[str, list[Member]]]:
        try:
            return await self._membership.rooms(self._client, limit, after)
        except RedisError as error:
            raise ConnectionError(f"Redis: {error}") from error

    # -- Membership -------------------------------------------------------------

    def attach_members(self, events: MembershipEvents) -> None:
        self._node.events = events

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
        self._membership.claim(
            room, member, replace=replace, max_members=max_members, joined=joined, left=left
        )

    def release(self, room: str, member: Member, last_seen: int | None = None) -> None:
        self._membership.release(room, member, last_seen)

    def update(self, room: str, member: Member) -> None:
        self._membership.update(room, member)

    def remote_member(self, room: str, user_id: str) -> Member | None:
        return self._membership.remote_member(room, user_id)

    def remote_members(self, room: str) -> list[Member]:
        return self._membership.remote_members(room)

    def close_remote(self, member: Member, code: int, reason: str, announce: bool) -> None:
        self._membership.close_remote(member, code, reason, announce)

    def end_room_elsewhere(self, room: str) -> None:
        self._membership.end_room_elsewhere(room)

    def count_senders(self, room: str, senders: int, rule: ModeRule | None, reason: str) -> None:
        self._room_calls.count_senders(room, senders, rule, reason)

    def share_feed(self, room: str, user_id: str, feed: MediaFeed | None) -> None:
        self._room_calls.share_feed(room, user_id, feed)

    def set_media_setting(self, room: str, setting: MediaSetting | None, rule: ModeRule) -> None:
        self._room_calls.set_media_setting(room, setting, rule)

    def media_done(self, room: str, handed_to: str | None = None) -> None:
        self._room_calls.media_done(room, handed_to)

    def find_session(self, session_id: str, resume_token: str, asked_by: str) -> bool:
        return self._handovers.find(session_id, resume_token, asked_by)

    def take_session(self, room: str, session_id: str, taken_by: str) -> None:
        self._handovers.take(room, session_id, taken_by)

    def offer_session(
        self, asked_by: str, session_id: str, room: str = "", user_id: str = "", moved_to: str = ""
    ) -> None:
        self._handovers.offer(asked_by, session_id, room, user_id, moved_to)

    def give_session(self, session_id: str, resume_token: str, room: str, user_id: str) -> bool:
        return self._handovers.give(session_id, resume_token, room, user_id)

    def user_here(self, user_id: str, here: bool) -> None:
        self._calls.user_here(user_id, here)

    def connected_elsewhere(self, user_id: str) -> bool:
        return self._calls.connected_elsewhere(user_id)

    def place_call(self, call_id: str, caller: str, callee: str, ringing: bytes) -> None:
        self._calls.place_call(call_id, caller, callee, ringing)

    def call_over(self, call_id: str, caller: str, callee: str) -> None:
        self._calls.call_over(call_id, caller, callee)

    def call_move(
        self,
        call_id: str,
        move: str,
        user_id: str,
        session_id: str,
        ref: str | int | None,
        room: str | None = None,
    ) -> CallRoute:
        return self._calls.call_move(call_id, move, user_id, session_id, ref, room)

    # -- what arrives (subscriptions.Listener) ----------------------------------

    def on_room(self, room: str, data: bytes) -> None:
        try:
            publication = self._wire.read_room(data)
        except wire.WireError as error:
            self._node.reject(room_channel(room), error)
            return
        node = self._node
        kind = type(publication)
        if kind is wire.RoomMessage or kind is wire.ChatMessage or kind is wire.Echo:
            self._rooms.heard(room, publication)  # type: ignore[arg-type]
            return
        match publication:
            case None:
                pass  # this node's own: its members had it directly
            case wire.RoomEnded():
                if node.events is not None:
                    node.events.room_ended(room)
            case wire.MemberJoined():
                self._membership.on_joined(room, publication)
            case wire.MemberLeft():
                self._membership.on_left(room, publication)
            case wire.MemberUpdated():
                self._membership.on_updated(room, publication)
            case wire.Take():
                self._handovers.on_take(room, publication)
            case wire.MediaChanged():
                self._room_calls.on_changed(room, publication)

    def on_unsubscribed(self, room: str) -> None:
        # What this node published there will not come back: its acks go now.
        self._rooms.deliver_waiting(room)

    def on_user(self, data: bytes) -> None:
        try:
            message = self._wire.read_user(data)
        except wire.WireError as error:
            self._node.reject(USERS_CHANNEL, error)
            return
        delivery = self._node.delivery
        if message is not None and delivery is not None:  # None: this node's own
            delivery.deliver_to_user(message.user_id, message.payload, message.exclude)

    def on_node(self, data: bytes) -> None:
        try:
            publication = wire.decode_node(data)
        except wire.WireError as error:
            self._node.reject(self._node.channel, error)
            return
        if type(publication) is wire.SessionMessages:  # the most of them, by far
            delivery = self._node.delivery
            if delivery is not None:
                for message in publication.messages:
                    delivery.deliver_to_session(message.session_id, message.payload)
            return
        if type(publication) is wire.SessionMessage:
            if self._node.delivery is not None:
                self._node.delivery.deliver_to_session(publication.session_id, publication.payload)
            return
        match publication:
            case wire.ClaimAnswer():
                self._membership.on_claimed(publication)
            case wire.CloseSession():
                self._membership.on_close(publication)
            case wire.Snapshot():
                self._membership.on_snapshot(publication)
            case wire.CallMoved():
                self._calls.on_moved(publication)
            case wire.AskSession():
                self._handovers.on_ask(publication)
            case wire.Offer():
                self._handovers.on_offer(publication)
            case wire.Handed():
                self._handovers.on_handed(publication)
            case wire.Adopt():
                self._handovers.on_adopt(publication)

    # -- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        """Connect and join the cluster; with Redis unreachable, start apart from it
        (``/readyz`` says so) and keep trying."""
        self._tasks = [asyncio.create_task(self._supervise(), name="redis-supervisor")]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._node.node_timeout):
                await self._up.wait()
        log.info("event=cluster-node node=%s connected=%s", self.node_id, self.connected)

    async def stop(self) -> None:
        """Send what is queued (the members' leaves among it), leave the cluster."""
        if self._stopped:
            return
        self._stopped = True
        await self._pipeline.drain(STOP_TIMEOUT)
        self._stopping = True
        if self.connected:
            with contextlib.suppress(RedisError, OSError):
                await self._liveness.leave()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # Bounded: a stop never hangs on a connection that does not answer.
            await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT)
        self._subscriptions.close()
        self._pipeline.close()
        self._rooms.deliver_waiting()
        self.connected = False
        with contextlib.suppress(TimeoutError, RedisError, OSError):
            async with asyncio.timeout(STOP_TIMEOUT):
                await self._client.aclose()

    async def _supervise(self) -> None:
        while not self._stopping:
            try:
                if not self.connected:
                    await self._connect()
                else:
                    self._check_connections()
                    await self._liveness.beat()
            except (RedisError, OSError) as exc:
                if self.connected:
                    self._lost(f"heartbeat: {exc}")
                elif str(exc) != self._connect_error:
                    self._connect_error = str(exc)  # once per cause, not every heartbeat
                    log.warning("event=cluster-connect-failed node=%s error=%s", self.node_id, exc)
            now = time.monotonic()
            self._membership.expire(now)
            self._calls.expire(now)
            self._handovers.expire(now)
            await asyncio.sleep(self._node.heartbeat)

    def _check_connections(self) -> None:
        """Each of the broker's own connections answers within a heartbeat, or is
        taken for dead (a connection that stopped answering without closing: a
        network that drops everything, a stalled proxy) and made again."""
        now = time.monotonic()
        within = self._node.heartbeat
        if not self._subscriptions.ping(now, within):
            raise ConnectionError("the subscriber connection does not answer")
        if not self._pipeline.ping(now, within):
            raise ConnectionError("the publisher connection does not answer")

    async def _connect(self) -> None:
        """Subscribe again, then make Redis agree with this node's members."""
        timeout = self._node.node_timeout
        await self._client.ping()
        for script in scripts.ALL:
            # Called by their SHA only: Redis may have restarted without them.
            await self._client.script_load(script.source)
        url = await self.target.master_url()
        publisher = await open_connection(url, None, self._publisher_lost, timeout)
        try:
            if self.target.sentinel is not None:
                await self._check_master(publisher)
            skip_replies = await may_skip_replies(publisher)
            rooms = await self._subscriptions.open(url, self._subscriber_lost, timeout)
            await self._resync()
            if self._subscriptions.closed or publisher.closed:
                raise ConnectionError("the connection to Redis closed while resynchronizing")
        except BaseException:
            publisher.close()
            self._subscriptions.close()
            raise
        self._pipeline.open(publisher, skip_replies=skip_replies)
        self.connected = True
        self._connect_error = ""
        self._up.set()
        log.info(
            "event=cluster-connected node=%s redis=%s rooms=%d",
            self.node_id,
            _address(url) if self.target.sentinel is not None else masked_url(url),
            rooms,
        )

    async def _check_master(self, connection: RespConnection) -> None:
        """Sentinel named this server a moment ago: it must still be the master (not
        the old one, back as a replica, before the sentinels all knew)."""
        role = await connection.ask("ROLE")
        if not isinstance(role, list) or not role or role[0] not in (b"master", "master"):
            raise ConnectionError("the server Sentinel named is not a master (yet)")

    async def _resync(self) -> None:
        conflicts = await self._membership.sync(self._client)
        # Where this node's users can be reached, and the calls it holds.
        async with self._client.pipeline(transaction=False) as pipe:
            self._calls.resync(pipe)
            await pipe.execute()
        events = self._node.events
        if events is not None:
            for session_id in conflicts:
                # While this node was cut off, another took the same identity.
                events.close_session(
                    session_id, CloseCode.REPLACED, "the same user joined from elsewhere", False
                )

    def _lost(self, why: str) -> None:
        """Redis went away: nothing more is sent until it is back and resynchronized."""
        if not self.connected or self._stopping:
            return
        log.warning("event=cluster-disconnected node=%s error=%s", self.node_id, why)
        self.connected = False
        self._up.clear()
        self._subscriptions.close()
        self._pipeline.close()
        # What this node published and has not heard back will not come back.
        self._rooms.deliver_waiting()
        self._membership.lost()
        self._handovers.lost()

    def _reap_later(self, node: str) -> None:
        """A node found dead outside a heartbeat: reaped now (once its alive key is
        gone, any live node may)."""

        async def reap() -> None:
            try:
                await self._liveness.reap(node)
            except (RedisError, OSError) as exc:
                log.warning("event=cluster-reap-failed node=%s error=%s", node, exc)

        task = asyncio.create_task(reap())
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    def _subscriber_lost(self, why: str) -> None:
        self._lost(f"read: {why}")

    def _publisher_lost(self, why: str) -> None:
        self._lost(f"write: {why}")


def _address(url: str) -> str:
    """host:port of a redis:// URL, without what comes before or after."""
    return url.partition("@")[2].partition("/")[0] or url.partition("://")[2].partition("/")[0]
