"""Sessions handed from one node to another, cut at one point of their room's order.

A client comes back through node B with the id of a session node A holds (or A
stops, and asks B to take its sessions for their clients)::

    B                               Redis                             A
    find: locate.lua ───────────► where is it now? (it may have moved before)
    ASK_SESSION ──────────────────────────────────────────────────► is it yours?
    ◄──────────────────────────────────────────────────── OFFER (its room, user)
    subscribe to the room, then TAKE ─► on the room's channel ──────► cut it here
    (from here on, what the room gets                                 move.lua: its
     is the new session's: kept for it)                               place is B's
    ◄───────────────────────────────────────────── HANDED (its state, its replay)

Every node hears the room's channel in one order and delivers a room's messages in
it (:mod:`~hubbub.broker.redis.rooms`): what came before TAKE on the channel was
A's to deliver to the session, what comes after it is B's. Messages to the old
session id that still reach A are forwarded by A's hub to the new one.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable

from hubbub.broker import Located, Member, SessionFound, SessionState
from hubbub.broker.redis import keys, scripts, wire
from hubbub.broker.redis.membership import RoomMembership
from hubbub.broker.redis.node import CLAIM_TIMEOUT, Node
from hubbub.broker.redis.pipeline import Op, publish
from hubbub.broker.redis.resp import Reply
from hubbub.broker.redis.subscriptions import Subscriptions

log = logging.getLogger("hubbub.broker")

MOVED_FOR = 120.0
"""Seconds a session that moved is found under its old id (its client may come back
with it, through any node, until its grace period is over)."""


class Handovers:
    __slots__ = ("_finding", "_membership", "_next", "_node", "_reap", "_subscriptions", "_taking")

    def __init__(
        self,
        node: Node,
        subscriptions: Subscriptions,
        membership: RoomMembership,
        reap: Callable[[str], None],
    ) -> None:
        self._node = node
        self._subscriptions = subscriptions
        self._membership = membership
        self._reap = reap
        """Reap a node found dead (its members leave, its users are reachable no more)."""
        self._finding: dict[str, tuple[float, str]] = {}
        """local session id -> (deadline, resume token) of the search for the session
        its client asked for."""
        self._taking: dict[str, tuple[str, float]] = {}
        """local session id -> (room, deadline) of the session it takes."""
        self._next = itertools.count()

    # -- this node's client came back here -------------------------------------------

    def find(self, session_id: str, resume_token: str, asked_by: str) -> bool:
        node = self._node
        if wire.node_of(session_id) is None or not node.pipeline.is_open:
            return False
        self._finding[asked_by] = (time.monotonic() + CLAIM_TIMEOUT, resume_token)

        def located(reply: Reply) -> None:
            self._located(asked_by, resume_token, reply)

        command = scripts.locate(session_id=session_id, prefix=keys.PREFIX)
        node.pipeline.send(
            Op(*command, on_reply=located, on_error=lambda: self._found(asked_by, Located.UNKNOWN))
        )
        return True

    def _located(self, asked_by: str, resume_token: str, reply: Reply) -> None:
        if asked_by not in self._finding:
            return
        try:
            where = reply[0].decode()
            alive = bool(reply[1])
        except (AttributeError, IndexError, TypeError, UnicodeDecodeError):
            self._found(asked_by, Located.UNKNOWN)
            return
        node = wire.node_of(where)
        if node is None:
            self._found(asked_by, Located.UNKNOWN)
        elif node == self._node.id:
            self._found(asked_by, Located.HERE, session_id=where)
        elif not alive:
            # What it held of the session is lost; its members leave now, not a
            # node_timeout later, so that the client can join again at once.
            self._reap(node)
            self._found(asked_by, Located.NODE_GONE)
        else:
            self._ask(node, where, resume_token, asked_by)

    def _ask(self, node: str, session_id: str, resume_token: str, asked_by: str) -> None:
        ask = wire.AskSession(session_id, resume_token, asked_by)
        self._node.pipeline.send(
            Op(
                "PUBLISH",
                keys.node_channel(node),
                wire.encode_request(ask),
                on_error=lambda: self._found(asked_by, Located.UNKNOWN),
            )
        )

    def on_offer(self, offer: wire.Offer) -> None:
        finding = self._finding.get(offer.asked_by)
        to = wire.node_of(offer.moved_to)
        if offer.moved_to and finding is not None and to is not None:
            # It moved on meanwhile (its node stops, and handed it over): ask there.
            if to == self._node.id:
                self._found(offer.asked_by, Located.HERE, session_id=offer.moved_to)
            else:
                self._ask(to, offer.moved_to, finding[1], offer.asked_by)
        elif not offer.room:
            self._found(offer.asked_by, Located.UNKNOWN)
        else:
            self._found(offer.asked_by, Located.THERE, offer.session_id, offer.room, offer.user_id)

    def _found(
        self, asked_by: str, located: Located, session_id: str = "", room: str = "", user: str = ""
    ) -> None:
        events = self._node.events
        if self._finding.pop(asked_by, None) is not None and events is not None:
            # Never from within find itself (a request dropped at once).
            found = SessionFound(located, session_id, room, user)
            asyncio.get_running_loop().call_soon(events.session_found, asked_by, found)

    # -- taking a session -------------------------------------------------------------

    def take(self, room: str, session_id: str, taken_by: str) -> None:
        node = self._node
        self._membership.want(room)  # the member it becomes, released as any other
        self._taking[taken_by] = (room, time.monotonic() + CLAIM_TIMEOUT)
        command = scripts.take(
            members_key=keys.members(room),
            media_key=keys.media(room),
            settings_key=keys.MEDIA_SETTINGS,
            room_channel=keys.room_channel(room),
            session_id=session_id,
            taken_by=taken_by,
            room=room,
        )
        op = Op(*command, on_error=lambda: self._handed(taken_by, None))
        if not node.pipeline.is_open:
            op.on_error()  # type: ignore[misc]
            return
        self._subscriptions.send_when_subscribed(room, op)

    def on_take(self, room: str, take: wire.Take) -> None:
        node = self._node
        events = node.events
        if events is None:
            return
        if node.holds(take.taken_by):
            if take.taken_by in self._taking:
                # Who is in the room, as of the mark (this node may hear it only now).
                self._membership.seed(room, take.members)
                events.taking(room, take.session_id, take.taken_by, take.media)
            return
        if not node.holds(take.session_id):
            return
        pipeline = node.pipeline
        # What the hub sends while it lets the session go (its user no longer here)
        # goes after the move: the new node reaches the user first.
        pipeline.hold()
        try:
            state = events.session_cut(room, take.session_id, take.taken_by)
        finally:
            held = pipeline.unhold()
        to = wire.node_of(take.taken_by)
        if state is None or to is None:
            for op in held:
                pipeline.send(op)
            if to is not None:
                self._send_handed(to, wire.Handed(take.taken_by, None))
            return
        # Another node's member from now on (signals to it go there at once).
        self._membership.moved(
            room,
            Member(
                state.user_id,
                take.taken_by,
                name=state.name,
                grants=state.grants if state.verified else None,
                hidden=state.hidden,
                status=state.status,
            ),
        )
        self._membership.unwant(room)
        given = state
        taker = to

        def moved(reply: Reply) -> None:
            self._send_handed(taker, wire.Handed(take.taken_by, given if reply == 1 else None))

        command = scripts.move(
            members_key=keys.members(room),
            moved_key=keys.moved(take.session_id),
            user_nodes_key=keys.user_nodes(state.user_id),
            node_rooms_key=keys.node_rooms(to),
            node_users_key=keys.node_users(to),
            user_id=state.user_id,
            old=take.session_id,
            new=take.taken_by,
            new_node=to,
            ttl_ms=int(MOVED_FOR * 1000),
            room_channel=keys.room_channel(room),
            room=room,
        )
        pipeline.send(Op(*command, on_reply=moved))
        for op in held:
            pipeline.send(op)
        log.info(
            "event=session-handed session=%s to=%s room=%r replay=%d",
            take.session_id,
            take.taken_by,
            room,
            len(state.replay),
        )

    def _send_handed(self, node: str, handed: wire.Handed) -> None:
        self._node.pipeline.send(publish(keys.node_channel(node), wire.encode_handed(handed)))

    def on_handed(self, handed: wire.Handed) -> None:
        self._handed(handed.taken_by, handed.state)

    def _handed(self, taken_by: str, state: SessionState | None) -> None:
        taking = self._taking.pop(taken_by, None)
        if taking is None:
            return
        if state is None:
            self._membership.unwant(taking[0])
        events = self._node.events
        if events is not None:
            asyncio.get_running_loop().call_soon(events.session_handed, taken_by, state)

    # -- the other node's side ----------------------------------------------------------

    def on_ask(self, ask: wire.AskSession) -> None:
        events = self._node.events
        if events is not None and wire.node_of(ask.asked_by) is not None:
            events.session_asked(ask.session_id, ask.resume_token, ask.asked_by)

    def offer(self, asked_by: str, session_id: str, room: str, user_id: str, moved_to: str) -> None:
        node = wire.node_of(asked_by)
        if node is None:  # pragma: no cover - checked when asked
            return
        offer = wire.Offer(asked_by, session_id, room, user_id, moved_to)
        self._node.pipeline.send(publish(keys.node_channel(node), wire.encode_request(offer)))

    def give(self, session_id: str, resume_token: str, room: str, user_id: str) -> bool:
        """This node stops: one of the live others (in turn) takes the session."""
        node = self._node
        peers = node.peers
        if not peers or not node.pipeline.is_open:
            return False
        to = peers[next(self._next) % len(peers)]
        adopt = wire.Adopt(session_id, resume_token, room, user_id)
        node.pipeline.send(publish(keys.node_channel(to), wire.encode_request(adopt)))
        return True

    def on_adopt(self, adopt: wire.Adopt) -> None:
        events = self._node.events
        if events is not None:
            events.adopt(adopt.session_id, adopt.resume_token, adopt.room, adopt.user_id)

    # -- outages and timeouts -------------------------------------------------------------

    def expire(self, now: float) -> None:
        for asked_by, (deadline, _) in list(self._finding.items()):
            if deadline <= now:
                self._found(asked_by, Located.UNKNOWN)
        for taken_by, (_, deadline) in list(self._taking.items()):
            if deadline <= now:
                self._handed(taken_by, None)

    def lost(self) -> None:
        for asked_by in list(self._finding):
            self._found(asked_by, Located.UNKNOWN)
        for taken_by in list(self._taking):
            self._handed(taken_by, None)
