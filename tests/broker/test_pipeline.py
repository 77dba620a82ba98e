"""The publisher's queue (hubbub.broker.redis.pipeline): what one turn of the event loop
sends, as the connection to Redis is given it. The connection here records what it is
given and answers nothing; what Redis does with it is in test_redis.py."""

from __future__ import annotations

import asyncio
from typing import Any

import hiredis

from hubbub.broker.redis.pipeline import MAX_BATCH, Op, Pipeline, pack_publish, publish
from hubbub.broker.redis.resp import pack_command


class Written:
    """Stands for the publisher connection: records each write, as commands."""

    closed = False

    def __init__(self) -> None:
        self.writes: list[list[Any]] = []

    def call_many(self, data: bytes, count: int, on_reply: Any) -> None:
        """Records the commands, each one asked to have no reply as ``[b"NO REPLY",
        command]``; ``count`` must be the replies that Redis would send."""
        reader = hiredis.Reader()
        reader.feed(data)
        commands: list[Any] = []
        skip = False
        while (command := reader.gets()) is not False:
            if command == [b"CLIENT", b"REPLY", b"SKIP"]:
                skip = True
                continue
            commands.append([b"NO REPLY", command] if skip else command)
            skip = False
        assert len([c for c in commands if c[0] != b"NO REPLY"]) == count
        self.writes.append(commands)


def joined(items: list[Any]) -> bytes:
    return b"|".join(items)


async def a_turn() -> None:
    """Until what this turn queued is written (the flush is called soon)."""
    await asyncio.sleep(0)


async def test_what_a_turn_batches_for_a_channel_is_one_publish_in_order() -> None:
    pipeline, written = Pipeline(max_pending=100), Written()
    pipeline.open(written)  # type: ignore[arg-type]
    for n in range(5):
        pipeline.send_batched("a", str(n).encode(), joined)
        pipeline.send_batched("b", str(n).encode(), joined)
    await a_turn()
    assert written.writes == [[[b"PUBLISH", b"a", b"0|1|2|3|4"], [b"PUBLISH", b"b", b"0|1|2|3|4"]]]
    assert pipeline.pending == 2  # two replies awaited, not ten
    pipeline.send_batched("a", b"5", joined)
    await a_turn()
    assert written.writes[1] == [[b"PUBLISH", b"a", b"5"]]  # a new turn, a new batch


async def test_an_operation_of_another_kind_closes_the_batches_before_it() -> None:
    """Whatever a subscriber hears of it, it hears after what was batched before."""
    pipeline, written = Pipeline(max_pending=100), Written()
    pipeline.open(written)  # type: ignore[arg-type]
    pipeline.send_batched("a", b"1", joined)
    pipeline.send(publish("room", b"r"))
    pipeline.send_batched("a", b"2", joined)
    pipeline.send_batched("a", b"3", joined)
    await a_turn()
    assert written.writes == [
        [[b"PUBLISH", b"a", b"1"], [b"PUBLISH", b"room", b"r"], [b"PUBLISH", b"a", b"2|3"]]
    ]


async def test_a_full_batch_is_closed_and_the_next_item_starts_one() -> None:
    pipeline, written = Pipeline(max_pending=100), Written()
    pipeline.open(written)  # type: ignore[arg-type]
    for _ in range(MAX_BATCH + 1):
        pipeline.send_batched("a", b"x", joined)
    await a_turn()
    [commands] = written.writes
    assert [command[2].count(b"x") for command in commands] == [MAX_BATCH, 1]


async def test_what_is_held_is_not_batched_with_what_came_before() -> None:
    """While held (a hand-over sends its own first), a batched item waits with the
    rest, after the holder's; the batch queued before the hold takes no more."""
    pipeline, written = Pipeline(max_pending=100), Written()
    pipeline.open(written)  # type: ignore[arg-type]
    pipeline.send_batched("a", b"1", joined)
    pipeline.hold()
    pipeline.send_batched("a", b"2", joined)
    held = pipeline.unhold()
    pipeline.send(Op("SET", "k", "v"))
    for op in held:
        pipeline.send(op)
    await a_turn()
    assert written.writes == [
        [[b"PUBLISH", b"a", b"1"], [b"SET", b"k", b"v"], [b"PUBLISH", b"a", b"2"]]
    ]


async def test_batched_items_are_dropped_and_counted_without_a_connection_or_room() -> None:
    pipeline = Pipeline(max_pending=1)
    pipeline.send_batched("a", b"1", joined)  # no connection
    assert pipeline.dropped == 1
    written = Written()
    pipeline.open(written)  # type: ignore[arg-type]
    pipeline.send(publish("room", b"r"))
    pipeline.send_batched("a", b"2", joined)  # the queue is full
    assert pipeline.dropped == 2
    await a_turn()
    assert written.writes == [[[b"PUBLISH", b"room", b"r"]]]


async def test_what_nothing_waits_for_is_sent_asking_for_no_reply() -> None:
    """Where the connection may skip replies: publications with no callback go with
    ``CLIENT REPLY SKIP`` and are done once written; the rest wait for their reply."""
    pipeline, written = Pipeline(max_pending=100), Written()
    pipeline.open(written, skip_replies=True)  # type: ignore[arg-type]
    replies: list[Any] = []
    pipeline.send_batched("a", b"1", joined)
    pipeline.send_batched("a", b"2", joined)
    pipeline.send(publish("room", b"r"))
    pipeline.send(Op("INCR", "k", on_reply=replies.append))
    await a_turn()
    assert written.writes == [
        [
            [b"NO REPLY", [b"PUBLISH", b"a", b"1|2"]],
            [b"NO REPLY", [b"PUBLISH", b"room", b"r"]],
            [b"INCR", b"k"],
        ]
    ]
    assert pipeline.pending == 1  # the INCR's reply
    assert pipeline.sent == 3


async def test_an_operation_alone_in_its_turn_is_written_as_in_company() -> None:
    """A turn that sends one operation (most turns, at a moderate rate) writes
    it as a turn of several would: without a reply if nothing waits for it."""
    for skip_replies in (True, False):
        pipeline, written = Pipeline(max_pending=100), Written()
        pipeline.open(written, skip_replies=skip_replies)  # type: ignore[arg-type]
        replies: list[Any] = []
        pipeline.send(publish("room", b"r"))
        await a_turn()
        pipeline.send(Op("INCR", "k", on_reply=replies.append))
        await a_turn()
        pipeline.send_batched("a", b"1", joined)
        await a_turn()
        skipped = (lambda command: [b"NO REPLY", command]) if skip_replies else (lambda c: c)
        assert written.writes == [
            [skipped([b"PUBLISH", b"room", b"r"])],
            [[b"INCR", b"k"]],
            [skipped([b"PUBLISH", b"a", b"1"])],
        ]
        assert pipeline.pending == (1 if skip_replies else 3)
        assert pipeline.sent == 3


def test_a_publication_is_packed_as_redis_reads_any_command() -> None:
    for channel, message in (
        ("hubbub:n:abc", b"x" * 300),
        ("salle-\u00e9t\u00e9", b""),
        ("a", b"\r\n"),
    ):
        packed = pack_command(("PUBLISH", channel, message))
        assert pack_publish(channel, message) == packed
        assert pack_publish(channel, message) == packed  # the channel's part kept from the first
