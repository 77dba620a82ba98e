"""Redis goes away for 5 s during a chat storm, and comes back empty."""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path

import aiohttp
import pytest

from hubbub.client import Backoff, Reconnected, ServerError
from hubbub.client import Client as PythonClient
from tests.cluster.nodes import cluster, ready
from tests.cluster.storm import chat_storm
from tests.faults.resuming import wait_for
from tests.integration.test_metrics import scrape
from tests.redis import RedisServer
from tests.sdk.test_resume import Recorder, proxy_for

OUTAGE = 5.0
METRICS_KEY = "outage-metrics-key"


async def test_no_acknowledged_chat_is_lost_or_doubled_when_redis_stops(
    own_redis: RedisServer, postgres_url: str, tmp_path: Path
) -> None:
    async with (
        cluster(
            2, own_redis.url, tmp_path, "--metrics-key", METRICS_KEY, database_url=postgres_url
        ) as (n1, n2),
        aiohttp.ClientSession() as http,
        chat_storm(n1.url, n2.url) as storm,
    ):
        storm.start()
        await asyncio.sleep(2)
        own_redis.stop()
        await asyncio.sleep(1)
        assert not await ready(http, n1.url)
        down = await scrape(n1.url, METRICS_KEY)
        assert down("hubbub_cluster_connected") == 0
        await asyncio.sleep(OUTAGE - 1)
        own_redis.start()
        async with asyncio.timeout(30):
            while not (await ready(http, n1.url) and await ready(http, n2.url)):  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        assert (await scrape(n1.url, METRICS_KEY))("hubbub_cluster_connected") == 1
        await asyncio.sleep(2)
        await storm.stop()
        await storm.check(postgres_url)


async def test_a_python_client_rejoining_while_redis_is_away_keeps_trying(
    own_redis: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # cluster-unavailable refuses a rejoin only until Redis is back
    # (RETRIED_REJOIN_ERRORS): the client keeps trying instead of giving up.
    caplog.set_level(logging.INFO, logger="hubbub.client")
    backoff = Backoff(base=0.2, max_delay=0.5, random=random.Random(5))
    async with (
        cluster(1, own_redis.url, tmp_path, "--resume-grace", "0.3") as (node,),
        aiohttp.ClientSession() as http,
    ):
        proxy, proxy_url = await proxy_for(node.url)
        try:
            async with PythonClient(
                proxy_url, "r", user="alice", events=False, backoff=backoff
            ) as alice:
                seen = Recorder(alice)
                own_redis.stop()
                async with asyncio.timeout(30):
                    while await ready(http, node.url):  # noqa: ASYNC110
                        await asyncio.sleep(0.1)
                proxy.accepting = False
                proxy.cut_all()  # down past the grace period: the resume is refused
                await asyncio.sleep(1.5)
                proxy.accepting = True
                await wait_for(
                    lambda: (
                        "(cluster-unavailable), retrying" in caplog.text
                        or bool(seen.of(ServerError))
                    ),
                    30,
                )
                assert seen.of(ServerError) == []  # (a client that gave up says why)
                await asyncio.sleep(1.0)  # a few more refusals
                assert not seen.of(Reconnected)
                assert seen.of(ServerError) == []
                own_redis.start()
                await wait_for(lambda: bool(seen.of(Reconnected)), 30)
                assert seen.of(Reconnected)[0].resume_refused == "unknown-session"
                assert alice.connected
                assert await alice.chat("back") is not None
        finally:
            await proxy.close()
