"""Calls across the cluster: where each user can be reached, which users are in a
call, and the moves on a call made through another node than the caller's.

A call lives on its caller's node, which keeps both parties' call keys alive (they
expire ``node_timeout`` after that node's last heartbeat); a call id names that node,
as a session id does.
"""

from __future__ import annotations

import asyncio
import time

from redis.asyncio.client import Pipeline as RedisPipeline

from hubbub.broker import CallPlacement, CallRoute
from hubbub.broker.redis import keys, scripts, wire
from hubbub.broker.redis.node import CLAIM_TIMEOUT, Node
from hubbub.broker.redis.pipeline import Op, publish
from hubbub.broker.redis.resp import Reply


class Calls:
    __slots__ = ("_calls_here", "_node", "_placing", "_users_here")

    def __init__(self, node: Node) -> None:
        self._node = node
        self._users_here: set[str] = set()
        """Users with connections on this node (registered in Redis)."""
        self._calls_here: dict[str, tuple[str, str]] = {}
        """call id -> (caller, callee) of the calls placed on this node, whose
        parties' call keys it keeps alive."""
        self._placing: dict[str, float] = {}
        """call id -> deadline of the calls waiting for Redis's word."""

    def user_here(self, user_id: str, here: bool) -> None:
        node = self._node
        send = node.pipeline.send
        user_nodes, node_users = keys.user_nodes(user_id), keys.node_users(node.id)
        if here:
            self._users_here.add(user_id)
            send(Op("HSET", user_nodes, node.id, 1))
            send(Op("SADD", node_users, user_id))
        else:
            self._users_here.discard(user_id)
            command = scripts.user_gone(
                user_nodes_key=user_nodes,
                node_users_key=node_users,
                call_key=keys.call(user_id),
                node=node.id,
                user_id=user_id,
                prefix=keys.PREFIX,
            )
            send(Op(*command))

    def connected_elsewhere(self, user_id: str) -> bool:
        # Not known here without asking Redis: a call ringing for the user rings on,
        # and Redis tells the call's node once no node reaches the user (user_gone).
        return True

    def place_call(self, call_id: str, caller: str, callee: str, ringing: bytes) -> None:
        node = self._node
        self._placing[call_id] = time.monotonic() + CLAIM_TIMEOUT

        def answer(outcome: CallPlacement) -> None:
            if self._placing.pop(call_id, None) is None:
                return  # answered already (timed out): the call keys expire by themselves
            if outcome is CallPlacement.PLACED:
                self._calls_here[call_id] = (caller, callee)
            if node.events is not None:
                node.events.call_placed(call_id, outcome)

        def replied(reply: Reply) -> None:
            answer(CallPlacement(reply.decode() if isinstance(reply, bytes) else reply))

        def failed() -> None:
            # Never from within place_call itself (an operation dropped at once).
            asyncio.get_running_loop().call_soon(answer, CallPlacement.CLUSTER_UNAVAILABLE)

        command = scripts.place_call(
            caller_call_key=keys.call(caller),
            callee_call_key=keys.call(callee),
            callee_nodes_key=keys.user_nodes(callee),
            call_id=call_id,
            ttl_ms=node.ttl_ms,
            prefix=keys.PREFIX,
            users_channel=keys.USERS_CHANNEL,
            ringing=node.wire.user(None, callee, ringing),
        )
        node.pipeline.send(Op(*command, on_reply=replied, on_error=failed))

    def call_over(self, call_id: str, caller: str, callee: str) -> None:
        self._calls_here.pop(call_id, None)
        command = scripts.call_over(
            call_keys=[keys.call(caller), keys.call(callee)], call_id=call_id
        )
        self._node.pipeline.send(Op(*command))

    def call_move(
        self,
        call_id: str,
        move: str,
        user_id: str,
        session_id: str,
        ref: str | int | None,
        room: str | None,
    ) -> CallRoute:
        node = wire.node_of(call_id)
        if node is None or node == self._node.id:
            return CallRoute.HERE
        pipeline = self._node.pipeline
        if not pipeline.is_open:
            pipeline.dropped += 1
            return CallRoute.UNREACHABLE
        moved = wire.CallMoved(call_id, move, user_id, session_id, ref, room)
        pipeline.send(publish(keys.node_channel(node), wire.encode_request(moved)))
        return CallRoute.SENT

    def on_moved(self, moved: wire.CallMoved) -> None:
        events = self._node.events
        if events is not None:
            events.call_moved(
                moved.call_id, moved.move, moved.user_id, moved.session_id, moved.ref, moved.room
            )

    def expire(self, now: float) -> None:
        for call_id, deadline in list(self._placing.items()):
            if deadline <= now:
                del self._placing[call_id]
                if self._node.events is not None:
                    self._node.events.call_placed(call_id, CallPlacement.CLUSTER_UNAVAILABLE)

    def resync(self, pipe: RedisPipeline) -> None:
        """Add to a redis-py pipeline what puts back where this node's users can be
        reached, and the calls it holds (after an outage)."""
        node = self._node
        pipe.delete(keys.node_users(node.id))
        for user in self._users_here:
            pipe.hset(keys.user_nodes(user), node.id, 1)
            pipe.sadd(keys.node_users(node.id), user)
        for call_id, (caller, callee) in self._calls_here.items():
            for user in (caller, callee):
                pipe.set(keys.call(user), call_id, px=node.ttl_ms, nx=True)

    def refresh(self, pipe: RedisPipeline) -> None:
        """Add to a heartbeat's redis-py pipeline what keeps this node's calls alive."""
        for caller, callee in self._calls_here.values():
            for user in (caller, callee):
                pipe.pexpire(keys.call(user), self._node.ttl_ms)
