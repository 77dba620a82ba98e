"""What the Redis hop costs a signal between two nodes' members, in-process, with no
socket: the publishing node's side (the batch, the publication, the flush at the end
of the turn) and the receiving node's (the read, the decode, the hand-over to the
delivery), through the broker's own code.

The ``cluster`` scenario of ``python -m bench`` measures whole nodes, which share this
machine's cores with Redis and the load generators; this measures the Python of the
hop alone, with warm caches, per signal, for a turn of the event loop that carries one
signal and for one that carries several::

    python -m bench.hop_cost

The publishing side runs on the event loop the server runs (uvloop): each turn is a
callback that publishes, and the pipeline's flush comes after it, as in a node. The
connection to Redis is a stand-in that keeps what is written; the receiving side is
fed those bytes as Redis pushes them, and each case checks that every signal reached
its session.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import hiredis

from hubbub.broker.redis import RedisBroker, wire
from hubbub.broker.redis.pipeline import SKIP_REPLY
from hubbub.broker.redis.resp import RespConnection

PAYLOAD = b'{"type":"signal","fromUserId":"a","signal":{"candidate":"' + b"x" * 160 + b'"}}'
"""About 200 B: the size of an ICE candidate's signal."""


class _Redis:
    """Where the publisher writes: keeps the bytes."""

    closed = False

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def call_many(self, data: bytes, count: int, answer: Any) -> None:
        self.written.append(data)


class _Delivery:
    """The receiving node's hub: counts what reaches its sessions."""

    def __init__(self) -> None:
        self.delivered = 0

    def deliver_to_session(self, session_id: str, payload: bytes) -> None:
        self.delivered += 1


def _broker() -> RedisBroker:
    # No connection is made: Redis is never reached.
    return RedisBroker("redis://127.0.0.1:1")


def publish(turns: int, per_turn: int) -> tuple[float, list[bytes]]:
    """ns per signal on the publishing node, and the publications it wrote."""
    sender = _broker()
    receiver_id = wire.new_node_id()
    session_id = f"{receiver_id}.abcdefghijklmnop"
    redis = _Redis()
    sender._node.read_batches = frozenset({receiver_id})
    sender._pipeline.open(redis, skip_replies=True)  # type: ignore[arg-type]

    def work() -> None:
        for _ in range(per_turn):
            sender.publish_to_session(session_id, PAYLOAD)

    # The turns themselves (a callback scheduling the next) are the harness's, not
    # the hop's: timed alone and taken off.
    elapsed = _run(_turns(turns, work)) - _run(_turns(turns, lambda: None))
    publications = [data.removeprefix(SKIP_REPLY) for data in redis.written]
    if len(publications) != turns:
        raise RuntimeError(f"{len(publications)} writes to Redis for {turns} turns")
    return elapsed / (turns * per_turn) * 1e9, publications


async def _turns(turns: int, work: Any) -> float:
    """Seconds for ``turns`` turns of the event loop, each a callback that calls
    ``work()`` (and whatever that schedules to run after it)."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    left = turns

    def turn() -> None:
        nonlocal left
        work()
        left -= 1
        if left:
            loop.call_soon(turn)
        else:
            loop.call_soon(done.set_result, None)  # after the last flush

    started = time.perf_counter()
    loop.call_soon(turn)
    await done
    return time.perf_counter() - started


def receive(publications: list[bytes], per_publication: int) -> float:
    """ns per signal on the receiving node, fed ``publications`` as Redis pushes them."""
    receiver = _broker()
    delivery = _Delivery()
    receiver._node.delivery = delivery  # type: ignore[assignment]
    channel = receiver._node.channel.encode()
    pushes = []
    for command in publications:
        reader = hiredis.Reader()
        reader.feed(command)
        _, _, data = reader.gets()
        pushes.append(
            b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
            % (len(channel), channel, len(data), data)
        )
    connection = RespConnection(receiver._subscriptions._on_push, lambda why: None)
    started = time.perf_counter()
    for push in pushes:
        connection.data_received(push)
    elapsed = time.perf_counter() - started
    expected = len(pushes) * per_publication
    if delivery.delivered != expected:
        raise RuntimeError(f"{delivery.delivered} signals delivered of {expected}")
    return elapsed / expected * 1e9


def _run(coroutine: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a dependency of the server
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each case (median)")
    args = parser.parse_args()
    for per_turn, turns in ((1, 100_000), (8, 20_000)):
        sent, received = [], []
        for _ in range(args.repeat):
            ns, publications = publish(turns, per_turn)
            sent.append(ns)
            received.append(receive(publications, per_turn))
        label = "1 signal" if per_turn == 1 else f"{per_turn} signals"
        print(f"{label} a turn, ns per signal (median of {args.repeat}):")
        print(f"  publishing node: {statistics.median(sent):.0f} (min {min(sent):.0f})")
        print(f"  receiving node:  {statistics.median(received):.0f} (min {min(received):.0f})")


if __name__ == "__main__":
    main()
