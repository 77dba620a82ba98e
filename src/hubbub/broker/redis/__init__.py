"""The Redis broker (``--broker redis://...``): the nodes of a cluster, joined
through one Redis server (not Redis Cluster: the scripts touch keys they compute),
or the master of a Redis Sentinel group (``redis+sentinel://...``).

What travels where (the names: :mod:`.keys`; the publications: :mod:`.wire`)::

    channel hubbub:r:<room>   room messages, once per message whatever the number of
                              receivers; chat a node stored, with its seq;
                              membership events (joined, left); the room's end (an
                              admin's)
    channel hubbub:n:<node>   messages to one session of that node; answers to its
                              claims; close requests; room snapshots after an outage;
                              requests to end a session whose client came back
                              through another node, and their answers; call moves
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

The parts of a node, each over the shared :class:`~.node.Node`:

- :mod:`.wire`: the publications as bytes and as typed values (sans-I/O);
- :mod:`.pipeline`: the publisher connection; nothing in the hot path awaits,
  what a turn of the event loop sends is written at its end in one pipeline, and
  what does not fit or comes while Redis is unreachable is dropped and counted;
- :mod:`.subscriptions`: the subscriber connection and the channels it hears;
- :mod:`.rooms`: a room's messages, this node's own included, delivered in the order
  Redis carries the room's channel;
- :mod:`.membership`: claims, the members on other nodes, snapshots, reaping;
- :mod:`.calls`: where users can be reached, who is in a call, call moves;
- :mod:`.liveness`: heartbeats, dead nodes;
- :mod:`.scripts`: the Lua scripts (``*.lua`` beside them) that change what the
  nodes share atomically;
- :mod:`.target`: where Redis is, the URL's server or the master Redis Sentinel
  names (``redis+sentinel://``), asked again at every connect;
- :mod:`.broker`: :class:`RedisBroker`, which ties them together.

Replies and pub/sub messages are parsed by hiredis as they arrive, many per read, on
the broker's own connections (:mod:`.resp`); redis-py serves the rest (scripts
loading, heartbeats, resync), which is not per message. A node's own members get
its room messages when Redis carries them back, as every other node's members do:
in one order.

A node subscribes to a room's channel before it claims a place there, and the
answer to the claim comes back on the node's channel through the same subscriber
connection: every event published before the claim is in the answer's member
list, every one after it arrives after the answer. A node whose alive key expired
(``node_timeout``) is reaped by the first live node to notice: its members are taken
out of their rooms and announced as gone (``user-left``) to every node.
"""

from __future__ import annotations

from hubbub.broker.redis.broker import RedisBroker
from hubbub.broker.redis.wire import node_of

__all__ = ["RedisBroker", "node_of"]
