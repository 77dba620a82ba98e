"""A chat storm across two nodes, for the tests of an outage of the cluster's Redis:
one writer on each node sends a chat every 20 ms in room ``storm`` and records each
acknowledgement; once stopped, every acknowledged chat must be in the shared
history exactly once, with the seq it was acknowledged with, and the two writers
must still reach each other."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from tests.wsclient import Client

ROOM = "storm"


class Storm:
    def __init__(self, writers: list[Client]) -> None:
        self.writers = writers
        self.acked: dict[str, list[tuple[str, int]]] = {"w1": [], "w2": []}
        self._storming = True
        self._readers: list[asyncio.Task[None]] = []
        self._sending: list[asyncio.Task[None]] = []

    def start(self) -> None:
        pairs = list(zip(self.acked, self.writers, strict=True))
        self._readers = [asyncio.create_task(self._read(n, c)) for n, c in pairs]
        self._sending = [asyncio.create_task(self._write(n, c)) for n, c in pairs]

    async def _write(self, name: str, client: Client) -> None:
        for i in itertools.count():
            if not self._storming:
                break
            await client.send({"type": "chat", "message": f"{name} {i}", "clientId": f"{i}"})
            await asyncio.sleep(0.02)
        await client.send({"type": "chat", "message": "done", "clientId": "last"})

    async def _read(self, name: str, client: Client) -> None:
        """Every message until the acknowledgement of the writer's last chat."""
        while True:
            message = await client.recv(timeout=30)
            assert message["type"] != "error", message
            if message["type"] == "chat-ack":
                self.acked[name].append((message["clientId"], message["seq"]))
                if message["clientId"] == "last":
                    return

    async def stop(self) -> None:
        """Stop writing; each reader ends with its writer's last acknowledgement, or
        fails the test."""
        self._storming = False
        await asyncio.gather(*self._sending)
        await asyncio.gather(*self._readers)

    async def check(self, database_url: str, at_least: int = 100) -> None:
        """Every acknowledged chat is in the history once, with its seq, the seqs
        gapless; the two writers reach each other, neither told the other left."""
        for acks in self.acked.values():
            assert len(acks) > at_least
        db = await asyncpg.connect(database_url)
        try:
            rows = await db.fetch(
                "SELECT user_id, client_id, seq FROM messages WHERE room = $1", ROOM
            )
        finally:
            await db.close()
        stored = [(r["user_id"], r["client_id"], r["seq"]) for r in rows]
        assert len({(u, c) for u, c, _ in stored}) == len(stored)
        assert sorted(s for _, _, s in stored) == list(range(1, len(stored) + 1))
        by_key = {(u, c): s for u, c, s in stored}
        for name, acks in self.acked.items():
            for client_id, seq in acks:
                assert by_key[(name, client_id)] == seq

        first, second = self.writers
        await first.send({"type": "signal", "targetUserId": "w2", "signal": {"k": 1}})
        async with asyncio.timeout(10):
            while (message := await second.recv())["type"] != "signal":
                assert message["type"] != "user-left", message
        assert message["fromUserId"] == "w1"


@asynccontextmanager
async def chat_storm(first_url: str, second_url: str) -> AsyncIterator[Storm]:
    """Two writers joined (``w1`` through ``first_url``, ``w2`` through
    ``second_url``), storming once :meth:`Storm.start` is called."""
    writers = [await Client.connect(first_url), await Client.connect(second_url)]
    try:
        for name, client in zip(("w1", "w2"), writers, strict=True):
            await client.join(ROOM, name)
        await writers[0].expect("user-joined")
        yield Storm(writers)
    finally:
        for client in writers:
            await client.close()
