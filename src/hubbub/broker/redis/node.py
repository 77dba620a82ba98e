"""What every part of a node's broker shares: who the node is, its timing, its
pipeline, and the hub it answers to."""

from __future__ import annotations

import logging

from hubbub.broker import Delivery, MembershipEvents
from hubbub.broker.redis import keys
from hubbub.broker.redis.pipeline import Pipeline
from hubbub.broker.redis.wire import Endpoint, WireError, node_of

log = logging.getLogger("hubbub.broker")

CLAIM_TIMEOUT = 5.0
"""Seconds a join waits for the cluster's answer before it is refused
(``cluster-unavailable``); also how long a call waits to be placed, and a request
to end a session on another node for its answer."""

MALFORMED_LOG_EVERY = 1000
"""Of the publications dropped as malformed, the first and then one in this many
are logged (something else publishing on our channels must not flood the log)."""


class Node:
    __slots__ = (
        "channel",
        "delivery",
        "events",
        "heartbeat",
        "id",
        "malformed",
        "node_timeout",
        "peers",
        "pipeline",
        "read_batches",
        "wire",
    )

    def __init__(
        self, node_id: str, heartbeat: float, node_timeout: float, pipeline: Pipeline
    ) -> None:
        self.wire = Endpoint(node_id)
        """What this node publishes with its id, and hears back."""
        self.id = node_id
        self.channel = keys.node_channel(node_id)
        self.heartbeat = heartbeat
        """Seconds between two heartbeats."""
        self.node_timeout = node_timeout
        """Seconds a node's alive key lives without a heartbeat."""
        self.pipeline = pipeline
        self.delivery: Delivery | None = None
        self.events: MembershipEvents | None = None
        self.peers: list[str] = []
        """The other nodes alive at the last heartbeat."""
        self.read_batches: frozenset[str] = frozenset()
        """Those of them that read SESSIONS (:data:`~hubbub.broker.redis.wire.WIRE_VERSION`)."""
        self.malformed = 0
        """Publications (and member entries) dropped because they were not ours or
        were malformed."""

    @property
    def ttl_ms(self) -> int:
        """What this node keeps alive (its alive key, its calls' keys) outlives it by
        at most this: refreshed every heartbeat."""
        return int(self.node_timeout * 1000)

    def holds(self, session_id: str) -> bool:
        """``session_id`` (or a call id) names this node."""
        return node_of(session_id) == self.id

    def reject(self, where: str, error: WireError) -> None:
        """Drop what could not be read, and count it."""
        self.malformed += 1
        if self.malformed == 1 or self.malformed % MALFORMED_LOG_EVERY == 0:
            log.warning(
                "event=cluster-malformed node=%s where=%s count=%d error=%s",
                self.id,
                where,
                self.malformed,
                error,
            )
