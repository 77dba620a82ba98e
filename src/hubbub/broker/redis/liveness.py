"""Heartbeats and node timeouts.

A live node refreshes its alive key every ``heartbeat`` seconds; the key expires
``node_timeout`` seconds after the last refresh. At each heartbeat a node also looks
at every other registered node: one whose key expired is dead, and the first live
node to notice reaps it (its members leave their rooms, announced as gone, within
``node_timeout + heartbeat`` of its last heartbeat).
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis

from hubbub.broker.redis import keys, wire
from hubbub.broker.redis.calls import Calls
from hubbub.broker.redis.membership import RoomMembership
from hubbub.broker.redis.node import Node

log = logging.getLogger("hubbub.broker")


class Liveness:
    __slots__ = ("_calls", "_client", "_membership", "_node")

    def __init__(
        self, node: Node, client: aioredis.Redis, calls: Calls, membership: RoomMembership
    ) -> None:
        self._node = node
        self._client = client
        self._calls = calls
        self._membership = membership

    async def beat(self) -> None:
        """This node is alive (and its calls too); the dead ones are reaped."""
        node = self._node
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.set(keys.alive(node.id), wire.WIRE_VERSION, px=node.ttl_ms)
            pipe.sadd(keys.NODES, node.id)
            self._calls.refresh(pipe)
            pipe.smembers(keys.NODES)
            *_, nodes = await pipe.execute()
        others = [n.decode() for n in nodes if n.decode() != node.id]
        if not others:
            node.peers = []
            node.read_batches = frozenset()
            return
        versions = await self._client.mget([keys.alive(other) for other in others])
        node.peers = [other for other, version in zip(others, versions, strict=True) if version]
        node.read_batches = frozenset(
            other
            for other, version in zip(others, versions, strict=True)
            if version and version.isdigit() and int(version) >= 2
        )
        for other, version in zip(others, versions, strict=True):
            if version is not None:
                continue
            gone = await self._membership.reap(self._client, other)
            if gone >= 0:
                log.info("event=cluster-node-reaped node=%s members=%d", other, gone)

    async def reap(self, dead: str) -> None:
        """Reap ``dead`` now if its alive key is gone (found dead outside a heartbeat)."""
        gone = await self._membership.reap(self._client, dead)
        if gone >= 0:
            log.info("event=cluster-node-reaped node=%s members=%d", dead, gone)

    async def leave(self) -> None:
        """This node stops: no longer alive, no longer registered."""
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.delete(keys.alive(self._node.id))
            pipe.srem(keys.NODES, self._node.id)
            await pipe.execute()
