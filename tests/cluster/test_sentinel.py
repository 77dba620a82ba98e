"""A cluster on Redis run by Sentinel: the master is killed during a chat storm, the
sentinels promote its replica, and the nodes follow them to it (docs/deploy.md,
"Redis with Sentinel")."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.cluster.nodes import cluster, ready
from tests.cluster.storm import chat_storm
from tests.integration.test_metrics import scrape
from tests.redis import RedisSentinels

METRICS_KEY = "sentinel-metrics-key"


async def test_the_nodes_follow_a_failover_and_lose_no_acknowledged_chat(
    sentinels: RedisSentinels, postgres_url: str, tmp_path: Path
) -> None:
    assert sentinels.replica is not None
    async with (
        cluster(
            2, sentinels.url, tmp_path, "--metrics-key", METRICS_KEY, database_url=postgres_url
        ) as (n1, n2),
        aiohttp.ClientSession() as http,
        chat_storm(n1.url, n2.url) as storm,
    ):
        first = sentinels.master.port
        assert any(f"redis=127.0.0.1:{first}".encode() in line for line in n1.log)
        storm.start()
        await asyncio.sleep(2)
        sentinels.master.stop(kill=True)
        # The nodes see the outage (/readyz, /metrics) ...
        async with asyncio.timeout(10):
            while await ready(http, n1.url):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        assert (await scrape(n1.url, METRICS_KEY))("hubbub_cluster_connected") == 0
        # ... until the sentinels have promoted the replica, and the nodes are on it.
        async with asyncio.timeout(30):
            while not (await ready(http, n1.url) and await ready(http, n2.url)):  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        assert sentinels.master_port() == sentinels.replica.port
        promoted = f"redis=127.0.0.1:{sentinels.replica.port}".encode()
        for node in (n1, n2):
            assert any(promoted in line for line in node.log)
            assert (await scrape(node.url, METRICS_KEY))("hubbub_cluster_connected") == 1
        await asyncio.sleep(2)
        await storm.stop()
        await storm.check(postgres_url)
