"""A rolling restart of three nodes behind HAProxy (docs/deploy.md), under a chat
storm with signaling going on: each node stopped (SIGTERM) and started again in
turn. Nothing acknowledged is lost or stored twice, every client sees every chat of
its room once and in seq order and every signal sent to it once, and no client has
to join afresh: each resumes its session on another node."""

from __future__ import annotations

import asyncio
import itertools
import random
from pathlib import Path

import aiohttp
import asyncpg

from tests.cluster.nodes import restartable_cluster
from tests.cluster.test_load_balancer import haproxy
from tests.faults.resuming import ResumingClient, running, wait_for

ROOMS = 3
PER_ROOM = 4
CHAT_EVERY = 0.05
"""Seconds between two chats of one client (with 12 clients: 240 chats a second)."""


async def ready(http: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with http.get(url + "/readyz") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def test_a_rolling_restart_loses_nothing_and_makes_nobody_join_afresh(
    redis_url: str, postgres_url: str, tmp_path: Path
) -> None:
    async with (
        restartable_cluster(
            3,
            redis_url,
            postgres_url,
            "--resume-grace",
            "60",
            "--reconnect-spread",
            "1",
            "--resume-buffer-messages",
            "5000",
            "--resume-buffer-bytes",
            "4000000",
        ) as nodes,
        haproxy([node.url for node in nodes], tmp_path, check_every="300ms") as url,
        aiohttp.ClientSession() as http,
    ):
        clients = [
            ResumingClient(http, url, f"room{i % ROOMS}", f"user{i}")
            for i in range(ROOMS * PER_ROOM)
        ]
        peers = {
            client: [
                other.user_id
                for other in clients
                if other.room == client.room and other is not client
            ]
            for client in clients
        }
        storming = True
        rng = random.Random(7)

        async def storm(client: ResumingClient) -> None:
            for i in itertools.count():
                if not storming:
                    return
                await client.send_chat(f"{client.user_id} {i}")
                if i % 4 == 0:
                    await client.send_signal(rng.choice(peers[client]))
                    await client.confirm()
                await asyncio.sleep(CHAT_EVERY * (0.5 + rng.random()))

        async with running(clients):
            await wait_for(lambda: all(c.ready.is_set() for c in clients), 30)
            # Everyone is in before the storm: every chat of a room reaches all of it.
            await asyncio.sleep(1.0)
            storms = [asyncio.create_task(storm(client)) for client in clients]
            await asyncio.sleep(2.0)
            for node in nodes:
                resumes = sum(c.resumes for c in clients)
                assert await node.stop() == 0
                await node.start()
                async with asyncio.timeout(30):
                    while not await ready(http, node.url):  # noqa: ASYNC110 - HTTP, polled
                        await asyncio.sleep(0.1)
                try:
                    await wait_for(lambda: all(c.ready.is_set() for c in clients), 30)
                except TimeoutError:
                    waiting = [
                        (c.user_id, c.resumes, c.refused_resumes, c.close_codes)
                        for c in clients
                        if not c.ready.is_set()
                    ]
                    raise AssertionError(
                        f"not back after {node.url} restarted: {waiting}"
                    ) from None
                assert sum(c.resumes for c in clients) > resumes
                await asyncio.sleep(1.5)  # HAProxy takes it back in; the storm goes on
            storming = False
            await asyncio.gather(*storms)
            await wait_for(lambda: all(not c.unacked for c in clients), 30)
            await asyncio.sleep(1.0)  # the last chats reach everyone
            for client in clients:
                await client.confirm()
            await asyncio.sleep(0.5)

        # Nobody joined afresh: every client resumed through the restarts.
        for client in clients:
            assert client.violations == [], (client.user_id, client.violations[:5])
            assert client.fresh_joins == 1, (client.user_id, client.refused_resumes)
            assert client.refused_resumes == []
            assert client.closed_for_good is None
            assert [e for e in client.errors if e["code"] != "rate-limited"] == []
        assert sum(c.resumes for c in clients) >= len(clients)

        # Every acknowledged chat is stored once, every room's seq gapless.
        db = await asyncpg.connect(postgres_url)
        try:
            rows = await db.fetch("SELECT room, user_id, client_id, seq FROM messages")
        finally:
            await db.close()
        stored: dict[str, list[int]] = {}
        by_key = {}
        for row in rows:
            stored.setdefault(row["room"], []).append(row["seq"])
            key = (row["room"], row["user_id"], row["client_id"])
            assert key not in by_key, key
            by_key[key] = row["seq"]
        for room, seqs in stored.items():
            assert sorted(seqs) == list(range(1, len(seqs) + 1)), room
        for client in clients:
            assert client.acked
            for client_id, seq in client.acked.items():
                assert by_key[(client.room, client.user_id, client_id)] == seq

        # Every client saw every chat of its room once, in seq order, live (the acks
        # of its own in their place): nothing to fetch from the history.
        for client in clients:
            own = set(client.acked.values())
            everything = sorted(stored[client.room])
            assert client.live_seqs == [s for s in everything if s not in own], client.user_id

        # Every signal the server took was delivered once.
        received: dict[tuple[str, str], list[int]] = {}
        for client in clients:
            for signal in client.signals:
                received.setdefault((signal["fromUserId"], client.user_id), []).append(
                    signal["signal"]["k"]
                )
        for sender in clients:
            for target, confirmed in sender.signals_confirmed.items():
                got = received.get((sender.user_id, target), [])
                assert len(got) == len(set(got)), (sender.user_id, target)
                assert confirmed <= set(got), (sender.user_id, target, sorted(confirmed - set(got)))
                assert got == sorted(got), (sender.user_id, target)
