"""Who is in which room across the cluster: claims and releases, the mirror of each
room's members on other nodes, snapshots after an outage, the reaping of a dead
node's members, and the requests that reach a member's own node (close it, end it
for a client that came back elsewhere, end the room).

Claims are atomic in Redis (``claim.lua``): of two nodes admitting the same user
id into a room at once, one gets it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import msgspec
import redis.asyncio as aioredis

from hubbub.broker import ClaimOutcome, ClaimResult, Member
from hubbub.broker.redis import keys, scripts, wire
from hubbub.broker.redis.node import CLAIM_TIMEOUT, Node
from hubbub.broker.redis.pipeline import Op, publish
from hubbub.broker.redis.subscriptions import Subscriptions
from hubbub.protocol.errors import CloseCode


class RoomMembership:
    __slots__ = ("_claims", "_mirror", "_node", "_subscriptions", "_suspects")

    def __init__(self, node: Node, subscriptions: Subscriptions) -> None:
        self._node = node
        self._subscriptions = subscriptions
        self._claims: dict[str, tuple[str, float]] = {}
        """session id -> (room, deadline) of the claims on their way."""
        self._mirror: dict[str, dict[str, Member]] = {}
        """room -> user id -> member on another node, for the rooms subscribed."""
        self._suspects: dict[tuple[str, str], tuple[Member, float]] = {}
        """(room, user id) -> (member, when): members missing after an outage, gone
        unless their node puts them back by then."""

    # -- what the hub asks --------------------------------------------------------

    def claim(
        self,
        room: str,
        member: Member,
        *,
        replace: bool,
        max_members: int,
        joined: bytes | None,
        left: bytes | None,
    ) -> None:
        node = self._node
        session_id = member.session_id
        if not node.pipeline.is_open:
            asyncio.get_running_loop().call_soon(
                self._answer, session_id, ClaimResult(ClaimOutcome.UNAVAILABLE, [])
            )
            return
        self._want(room)
        self._claims[session_id] = (room, time.monotonic() + CLAIM_TIMEOUT)
        command = scripts.claim(
            members_key=keys.members(room),
            order_key=keys.order(room),
            node_rooms_key=keys.node_rooms(node.id),
            room_names_key=keys.ROOM_NAMES,
            user_nodes_key=keys.user_nodes(member.user_id),
            node_users_key=keys.node_users(node.id),
            media_key=keys.media(room),
            settings_key=keys.MEDIA_SETTINGS,
            user_id=member.user_id,
            session_id=session_id,
            info=wire.encode_info(member),
            replace=replace,
            max_members=max_members,
            room_channel=keys.room_channel(room),
            node_channel=node.channel,
            room=room,
            joined=joined or b"",
            left=left or b"",
            node=node.id,
        )
        op = Op(*command, on_error=lambda: self._claim_failed(session_id))
        self._subscriptions.send_when_subscribed(room, op)

    def release(self, room: str, member: Member, last_seen: int | None) -> None:
        command = scripts.release(
            members_key=keys.members(room),
            order_key=keys.order(room),
            room_names_key=keys.ROOM_NAMES,
            user_id=member.user_id,
            session_id=member.session_id,
            room_channel=keys.room_channel(room),
            last_seen=last_seen or 0,
            room=room,
        )
        self._node.pipeline.send(Op(*command))
        self._unwant(room)

    def update(self, room: str, member: Member) -> None:
        command = scripts.update(
            members_key=keys.members(room),
            user_id=member.user_id,
            session_id=member.session_id,
            info=wire.encode_info(member),
            room_channel=keys.room_channel(room),
        )
        self._node.pipeline.send(Op(*command))

    def remote_member(self, room: str, user_id: str) -> Member | None:
        members = self._mirror.get(room)
        return None if members is None else members.get(user_id)

    def remote_members(self, room: str) -> list[Member]:
        holds = self._node.holds
        return [m for m in self._mirror.get(room, {}).values() if not holds(m.session_id)]

    async def room_members(self, client: aioredis.Redis, room: str) -> list[Member]:
        """Every member of ``room`` on every node, from Redis (for the HTTP API, on
        a node that may have none of them). An entry that cannot be read is left out."""
        return self._members(room, await client.hgetall(keys.members(room)))

    async def rooms(
        self, client: aioredis.Redis, limit: int, after: str | None
    ) -> list[tuple[str, list[Member]]]:
        """The rooms with members on any node, by name (code point order: Redis
        compares bytes, and UTF-8 keeps that order), each with every member."""
        start = "(" + after if after is not None else "-"
        names = await client.zrangebylex(keys.ROOM_NAMES, start, "+", start=0, num=limit)
        if not names:
            return []
        async with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(keys.members(name.decode() if isinstance(name, bytes) else name))
            found = await pipe.execute()
        rooms = []
        for name, flat in zip(names, found, strict=True):
            room = name.decode() if isinstance(name, bytes) else name
            members = self._members(room, flat)
            if members:
                rooms.append((room, members))
        return rooms

    def _members(self, room: str, flat: Mapping[bytes | str, bytes | str]) -> list[Member]:
        entries = []
        for user_id, entry in flat.items():
            try:
                entries.append(wire.decode_entry(user_id, entry))
            except wire.WireError as error:
                self._node.reject(keys.members(room), error)
        entries.sort(key=lambda pair: pair[0])
        return [member for _, member in entries]

    def close_remote(self, member: Member, code: int, reason: str, announce: bool) -> None:
        node = wire.node_of(member.session_id)
        if node is None:
            return
        request = wire.CloseSession(member.session_id, CloseCode(code), reason, announce)
        self._node.pipeline.send(publish(keys.node_channel(node), wire.encode_request(request)))

    def end_room_elsewhere(self, room: str) -> None:
        data = self._node.wire.room_ended()
        self._node.pipeline.send(publish(keys.room_channel(room), data))

    # -- what other nodes say ---------------------------------------------------

    def on_claimed(self, answer: wire.ClaimAnswer) -> None:
        session_id = answer.session_id
        outcome = answer.outcome
        pending = self._claims.pop(session_id, None)
        if pending is None:
            # Answered already (timed out): a place taken for nobody is given back.
            if outcome is ClaimOutcome.ADMITTED:
                for member in answer.members:
                    if member.session_id == session_id:
                        self._want(answer.room)
                        self.release(answer.room, member, None)
            return
        room = pending[0]
        mirror = self._mirror.get(room)
        if mirror is not None:
            mirror.clear()
            for member in answer.members:
                if not self._node.holds(member.session_id):
                    mirror[member.user_id] = member
        if outcome is not ClaimOutcome.ADMITTED:
            self._unwant(room)
        self._answer(
            session_id, ClaimResult(outcome, answer.members, answer.replaced, answer.media)
        )

    def on_joined(self, room: str, joined: wire.MemberJoined) -> None:
        members = self._mirror.get(room)
        member = joined.member
        if members is None or self._node.holds(member.session_id):
            return
        self._suspects.pop((room, member.user_id), None)
        before = members.get(member.user_id)
        members[member.user_id] = member
        events = self._node.events
        if joined.announce and events is not None and before != member:
            events.members_changed(room, [member], [])

    def on_left(self, room: str, left: wire.MemberLeft) -> None:
        members = self._mirror.get(room)
        member = left.member
        if members is None:
            return
        if self._node.holds(member.session_id):
            # Its own: but one that moved here may still be mirrored (see on_updated).
            now = members.get(member.user_id)
            if now is not None and now.session_id == member.session_id:
                del members[member.user_id]
            return
        events = self._node.events
        if left.last_seen is not None and events is not None:
            events.seen(room, member.user_id, left.last_seen)
        self._suspects.pop((room, member.user_id), None)
        now = members.get(member.user_id)
        if now is not None and now.session_id == member.session_id:
            del members[member.user_id]
            if left.announce and events is not None:
                events.members_changed(room, [], [member])

    def on_updated(self, room: str, updated: wire.MemberUpdated) -> None:
        members = self._mirror.get(room)
        member = updated.member
        if members is None:
            return
        moved = updated.moved_from
        if (
            moved is not None
            and self._node.holds(moved)
            and not self._node.holds(member.session_id)
        ):
            members[member.user_id] = member  # moved away from here: another node's now
            return
        now = members.get(member.user_id)
        if now is None or now.session_id not in (member.session_id, updated.moved_from):
            return
        # Moved here too: mirrored under its new id until it is a local member (what
        # is sent to it meanwhile is kept for it), then no more (on_left, moved_here).
        members[member.user_id] = member

    def on_snapshot(self, snapshot: wire.Snapshot) -> None:
        """This node is back after an outage: what changed meanwhile is announced.

        A member missing from the snapshot may only be waiting for its own node to
        come back (after a Redis restart every node puts its members back): it is
        announced as gone if it is still missing ``node_timeout`` later.
        """
        room = snapshot.room
        mirror = self._mirror.get(room)
        if mirror is None:
            return
        now = {m.user_id: m for m in snapshot.members if not self._node.holds(m.session_id)}
        deadline = time.monotonic() + self._node.node_timeout
        for uid, known in mirror.items():
            if now.get(uid) != known:
                self._suspects[room, uid] = (known, deadline)
        joined = [m for uid, m in now.items() if mirror.get(uid) != m]
        for came in joined:
            mirror[came.user_id] = came
            self._suspects.pop((room, came.user_id), None)
        events = self._node.events
        if joined and events is not None:
            events.members_changed(room, joined, [])

    def on_close(self, request: wire.CloseSession) -> None:
        events = self._node.events
        if events is not None:
            events.close_session(request.session_id, request.code, request.reason, request.announce)

    # -- outages and timeouts ---------------------------------------------------

    def lost(self) -> None:
        """Redis went away: whatever waits for an answer is answered now."""
        for session_id in list(self._claims):
            self._claim_failed(session_id)

    def expire(self, now: float) -> None:
        """Answer what waited too long; announce the suspects still missing."""
        for session_id, (_, deadline) in list(self._claims.items()):
            if deadline <= now:
                self._claim_failed(session_id)
        for key, (known, deadline) in list(self._suspects.items()):
            if deadline > now:
                continue
            del self._suspects[key]
            room, uid = key
            mirror = self._mirror.get(room)
            if mirror is not None and mirror.get(uid) == known:
                del mirror[uid]
                if self._node.events is not None:
                    self._node.events.members_changed(room, [], [known])

    async def sync(self, client: aioredis.Redis) -> list[str]:
        """Make Redis agree with this node's members (which Redis may have lost, or
        kept while they left); this node's snapshots follow on its channel. Returns
        the session ids whose user id another session took meanwhile."""
        node = self._node
        members: dict[str, list[Member]] = (
            {} if node.events is None else node.events.local_members()
        )
        want = {
            room: [[m.user_id, m.session_id, wire.encode_info(m)] for m in ms]
            for room, ms in members.items()
        }
        conflicts = await scripts.run(
            client,
            scripts.sync(
                node_rooms_key=keys.node_rooms(node.id),
                alive_key=keys.alive(node.id),
                nodes_key=keys.NODES,
                node_id=node.id,
                prefix=keys.PREFIX,
                ttl_ms=node.ttl_ms,
                node_channel=node.channel,
                want=msgspec.json.encode(want),
            ),
        )
        return [s.decode() if isinstance(s, bytes) else str(s) for s in conflicts or []]

    async def reap(self, client: aioredis.Redis, dead: str) -> int:
        """Take the members of node ``dead`` out of their rooms; -1 if it is alive
        after all, else how many there were."""
        command = scripts.reap(
            alive_key=keys.alive(dead),
            node_rooms_key=keys.node_rooms(dead),
            nodes_key=keys.NODES,
            dead=dead,
            prefix=keys.PREFIX,
        )
        return int(await scripts.run(client, command))

    # -- helpers --------------------------------------------------------------

    def seed(self, room: str, members: list[Member]) -> None:
        """The room's members as of a point of its channel this node heard: its
        mirror holds every one of another node's (and what came since, kept)."""
        mirror = self._mirror.get(room)
        if mirror is None:
            return
        for member in members:
            if not self._node.holds(member.session_id):
                mirror.setdefault(member.user_id, member)

    def moved(self, room: str, member: Member) -> None:
        """A local member moved to another node (as ``member`` there), or one moved
        here is a local member now: the mirror follows at once."""
        members = self._mirror.get(room)
        if members is None:
            return
        if self._node.holds(member.session_id):
            now = members.get(member.user_id)
            if now is not None and now.session_id == member.session_id:
                del members[member.user_id]
        else:
            members[member.user_id] = member

    def want(self, room: str) -> None:
        """One more local member (or one on its way) in ``room``: this node hears it."""
        self._want(room)

    def unwant(self, room: str) -> None:
        """One local member fewer in ``room`` (which left without a release: its place
        went with it to another node)."""
        self._unwant(room)

    def _want(self, room: str) -> None:
        if self._subscriptions.want(room):
            self._mirror.setdefault(room, {})

    def _unwant(self, room: str) -> None:
        if self._subscriptions.unwant(room):
            self._mirror.pop(room, None)

    def _answer(self, session_id: str, result: ClaimResult) -> None:
        if self._node.events is not None:
            self._node.events.claim_answered(session_id, result)

    def _claim_failed(self, session_id: str) -> None:
        pending = self._claims.pop(session_id, None)
        if pending is None:
            return
        self._unwant(pending[0])
        asyncio.get_running_loop().call_soon(
            self._answer, session_id, ClaimResult(ClaimOutcome.UNAVAILABLE, [])
        )
