"""A rolling restart of a three-node cluster under load, measured.

Three ``hubbub serve`` nodes on one Redis and one PostgreSQL, behind HAProxy with the
configuration of docs/deploy.md; clients spread over rooms send chat at a steady rate
and signals to each other (the fault tests' resuming client: it resumes after every
cut and checks every ``n``, ``seq`` and ack). Each node in turn is stopped with SIGTERM
(it hands its sessions to the other nodes and tells its clients to resume there) and
started again. Printed: per restart, how long until every client was back, how many
were away and for how long at most; over the run, the sessions resumed and the
messages replayed to them (from the nodes' logs), the chat acknowledged, stored,
lost, stored twice, and missed or seen twice by a client.

    python -m bench.rolling_restart [--clients 30] [--rooms 5] [--chat-every 0.05]
        [--reconnect-spread 1] [--check-every 2s]

Needs redis-server, PostgreSQL and HAProxy (scripts/system-deps.sh).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import re
import tempfile
import time
from pathlib import Path

import aiohttp
import asyncpg
from tests.cluster.nodes import RestartableNode, restartable_cluster
from tests.cluster.test_load_balancer import haproxy
from tests.faults.resuming import ResumingClient, running, wait_for
from tests.postgres import PostgresServer
from tests.redis import RedisServer

RESUME = re.compile(rb"event=resume session=\S+ from=(\S+) replayed=(\d+)")


class Watch:
    """Samples every client's state every 10 ms: when each was away, and came back."""

    def __init__(self, clients: list[ResumingClient]) -> None:
        self.clients = clients
        self.down_since: dict[str, float] = {}
        self.outages: list[tuple[float, float]] = []
        """(left at, back at) of every time a client was away."""

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            for client in self.clients:
                if not client.ready.is_set():
                    self.down_since.setdefault(client.user_id, now)
                elif client.user_id in self.down_since:
                    self.outages.append((self.down_since.pop(client.user_id), now))
            await asyncio.sleep(0.01)


async def ready(http: aiohttp.ClientSession, node: RestartableNode) -> bool:
    try:
        async with http.get(node.url + "/readyz") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def measure(args: argparse.Namespace, redis_url: str, database_url: str) -> None:
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory(prefix="hubbub-rolling-") as tmp:
        async with (
            restartable_cluster(
                3,
                redis_url,
                database_url,
                "--resume-grace",
                "60",
                "--reconnect-spread",
                str(args.reconnect_spread),
                "--resume-buffer-messages",
                "5000",
                "--resume-buffer-bytes",
                "4000000",
            ) as nodes,
            haproxy([node.url for node in nodes], Path(tmp), args.check_every) as url,
            aiohttp.ClientSession() as http,
        ):
            clients = [
                ResumingClient(http, url, f"room{i % args.rooms}", f"user{i}")
                for i in range(args.clients)
            ]
            peers = {
                c.user_id: [o.user_id for o in clients if o.room == c.room and o is not c]
                for c in clients
            }
            storming = True
            rng = random.Random(7)

            async def storm(client: ResumingClient) -> None:
                for i in itertools.count():
                    if not storming:
                        return
                    await client.send_chat(f"{client.user_id} {i}")
                    if i % 4 == 0 and peers[client.user_id]:
                        await client.send_signal(rng.choice(peers[client.user_id]))
                        await client.confirm()
                    await asyncio.sleep(args.chat_every * (0.5 + rng.random()))

            watch = Watch(clients)
            restarts: list[tuple[float, float, float]] = []
            """(SIGTERM at, exited at, every client back at) of each restart."""
            async with running(clients):
                await wait_for(lambda: all(c.ready.is_set() for c in clients), 60)
                await asyncio.sleep(1.0)
                watcher = asyncio.create_task(watch.run())
                storms = [asyncio.create_task(storm(c)) for c in clients]
                started = loop.time()
                await asyncio.sleep(3.0)
                for node in nodes:
                    stopped_at = loop.time()
                    await node.stop()
                    exited_at = loop.time()
                    await node.start()
                    async with asyncio.timeout(30):
                        while not await ready(http, node):  # noqa: ASYNC110 - HTTP, polled
                            await asyncio.sleep(0.1)
                    await wait_for(lambda: all(c.ready.is_set() for c in clients), 60)
                    await asyncio.sleep(0.05)  # the watch's last sample
                    back = [end for begin, end in watch.outages if begin >= stopped_at]
                    restarts.append((stopped_at, exited_at, max(back, default=stopped_at)))
                    await asyncio.sleep(3.0)  # HAProxy takes it back in; the storm goes on
                storming = False
                await asyncio.gather(*storms)
                storm_seconds = loop.time() - started
                await wait_for(lambda: all(not c.unacked for c in clients), 60)
                await asyncio.sleep(1.0)
                watcher.cancel()
            logs = [line for node in nodes for line in node.log]

    db = await asyncpg.connect(database_url)
    try:
        rows = await db.fetch("SELECT room, user_id, client_id, seq FROM messages")
    finally:
        await db.close()
    stored: dict[str, list[int]] = {}
    keys: dict[tuple[str, str, str], int] = {}
    twice = 0
    for row in rows:
        stored.setdefault(row["room"], []).append(row["seq"])
        key = (row["room"], row["user_id"], row["client_id"])
        twice += key in keys
        keys[key] = row["seq"]
    gaps = sum(len(set(range(1, max(seqs) + 1)) - set(seqs)) for seqs in stored.values() if seqs)
    acked = sum(len(c.acked) for c in clients)
    lost = sum(
        1 for c in clients for client_id in c.acked if (c.room, c.user_id, client_id) not in keys
    )
    missed = seen_twice = 0
    for client in clients:
        own = set(client.acked.values())
        expected = [s for s in sorted(stored.get(client.room, [])) if s not in own]
        live = client.live_seqs
        seen_twice += len(live) - len(set(live))
        missed += len(set(expected) - set(live))
    resumes = [(kind, int(n)) for kind, n in (m.groups() for m in map(RESUME.search, logs) if m)]
    violations = sum(len(c.violations) for c in clients)

    print(f"clients: {len(clients)} in {args.rooms} rooms, a chat every ~{args.chat_every} s each")
    print(f"reconnect spread {args.reconnect_spread} s, HAProxy checks every {args.check_every}")
    print(
        f"storm: {storm_seconds:.1f} s, {acked} chats acknowledged ({acked / storm_seconds:.0f}/s)"
    )
    for i, (stopped_at, exited_at, back_at) in enumerate(restarts, 1):
        away = [end - begin for begin, end in watch.outages if stopped_at <= begin <= back_at]
        print(
            f"restart {i}: node exited {exited_at - stopped_at:.2f} s after SIGTERM; "
            f"every client back {back_at - stopped_at:.2f} s after SIGTERM; "
            f"{len(away)} client outages, longest {max(away, default=0):.2f} s"
        )
    print(
        f"resumes: {len(resumes)} ({sum(1 for k, _ in resumes if k == b'handover')} of "
        f"sessions handed over), messages replayed: {sum(n for _, n in resumes)}"
    )
    print(f"fresh joins after the first: {sum(c.fresh_joins - 1 for c in clients)}")
    print(f"acknowledged chat lost: {lost}; stored twice: {twice}; seq gaps: {gaps}")
    print(f"chat missed by a client: {missed}; seen twice: {seen_twice}")
    print(f"protocol violations seen by clients: {violations}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--rooms", type=int, default=5)
    parser.add_argument("--chat-every", type=float, default=0.05)
    parser.add_argument("--reconnect-spread", type=float, default=1.0)
    parser.add_argument(
        "--check-every",
        default="2s",
        help="HAProxy's health checks (inter): 2s as in docs/deploy.md",
    )
    args = parser.parse_args()
    print(f"load average at the start: {os.getloadavg()}")
    redis, postgres = RedisServer(), PostgresServer()
    redis.start()
    postgres.start()
    began = time.monotonic()
    try:
        await measure(args, redis.url, postgres.new_database())
    finally:
        redis.stop()
        postgres.stop()
    print(f"load average at the end: {os.getloadavg()} ({time.monotonic() - began:.0f} s)")


if __name__ == "__main__":
    asyncio.run(main())
