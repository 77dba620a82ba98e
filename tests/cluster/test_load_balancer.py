"""The HAProxy configuration in docs/deploy.md, in a real HAProxy, in front of three
real nodes: clients spread over the nodes with no stickiness and still meet."""

from __future__ import annotations

import asyncio
import re
from asyncio.subprocess import DEVNULL, PIPE, STDOUT
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.cluster.nodes import cluster
from tests.redis import free_port
from tests.wsclient import Client

DEPLOY = (Path(__file__).parents[2] / "docs" / "deploy.md").read_text()
HAPROXY = "/usr/sbin/haproxy"


def documented_config(port: int, nodes: list[str]) -> str:
    """The documented config, listening on loopback without TLS, to these nodes."""
    config = DEPLOY.split("```haproxy\n", 1)[1].split("```", 1)[0]
    config = config.replace("maxconn 200000", "maxconn 1000")
    config = re.sub(r"    bind :443 .*\n    bind :80\n", f"    bind 127.0.0.1:{port}\n", config)
    config = config.replace("    http-request redirect scheme https unless { ssl_fc }\n", "")
    config = config.replace("maxconn 50000", "maxconn 100")
    servers = "".join(
        f"    server node{i} {url.removeprefix('http://')}\n" for i, url in enumerate(nodes, 1)
    )
    config = re.sub(r"(    server node\d .*\n)+", servers, config)
    assert f"bind 127.0.0.1:{port}" in config
    assert "server node3" in config
    return config


@asynccontextmanager
async def haproxy(
    node_urls: list[str], tmp_path: Path, check_every: str = "2s"
) -> AsyncIterator[str]:
    """HAProxy with the documented configuration in front of the nodes; its URL once
    it listens and has seen the nodes healthy. ``check_every``: the health checks'
    ``inter`` (shorter in tests that restart nodes)."""
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    text = documented_config(port, node_urls).replace("inter 2s", f"inter {check_every}")
    config.write_text(text)
    check = await asyncio.create_subprocess_exec(
        HAPROXY, "-c", "-f", str(config), stdout=PIPE, stderr=STDOUT
    )
    output, _ = await check.communicate()
    assert check.returncode == 0, output
    proxy = await asyncio.create_subprocess_exec(
        HAPROXY, "-db", "-f", str(config), stdout=DEVNULL, stderr=DEVNULL
    )
    try:
        url = f"http://127.0.0.1:{port}"
        async with asyncio.timeout(30):
            while True:  # until HAProxy listens and has seen the nodes healthy
                try:
                    probe = await Client.connect(url)
                except OSError:
                    await asyncio.sleep(0.2)
                    continue
                await probe.close()
                break
        await asyncio.sleep(1.5 * parse_seconds(check_every))  # rise 2 x inter: every node in
        yield url
    finally:
        proxy.terminate()
        await proxy.wait()


def parse_seconds(duration: str) -> float:
    if duration.endswith("ms"):
        return float(duration[:-2]) / 1000
    return float(duration.removesuffix("s"))


async def test_clients_spread_over_the_nodes_meet_in_one_room(
    redis_url: str, tmp_path: Path
) -> None:
    async with (
        cluster(3, redis_url, tmp_path) as nodes,
        haproxy([node.url for node in nodes], tmp_path) as url,
    ):
        clients: list[Client] = []
        try:
            seen_nodes = set()
            for i in range(6):
                client = await Client.connect(url)
                clients.append(client)
                joined = await client.join("lb", f"user{i}")
                assert [p["userId"] for p in joined["participants"]] == [
                    f"user{j}" for j in range(i)
                ]
                seen_nodes.add(joined["sessionId"].split(".")[0])
            assert len(seen_nodes) >= 2, seen_nodes  # leastconn spread them
            await clients[0].send({"type": "chat", "message": "through the balancer"})
            for client in clients[1:]:
                while (message := await client.recv())["type"] != "chat":
                    pass
                assert message["message"] == "through the balancer"
        finally:
            for client in clients:
                await client.close()
