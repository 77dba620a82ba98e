"""Clusters of real ``hubbub serve`` processes on one real Redis (and PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import aiohttp

from tests.process import hubbub_serve
from tests.redis import free_port
from tests.tokens import SECRET

HEARTBEAT = 0.25
NODE_TIMEOUT = 1.5
GONE_WITHIN = NODE_TIMEOUT + HEARTBEAT
"""The documented bound: a dead node's members are announced gone this long after
its last heartbeat (docs/protocol.md, "In a cluster")."""


async def ready(http: aiohttp.ClientSession, url: str) -> bool:
    """Whether the node at ``url`` says it is ready (``/readyz``: 200, else 503)."""
    async with http.get(url + "/readyz") as response:
        return response.status == 200


class Node:
    def __init__(self, url: str, process: asyncio.subprocess.Process, log: list[bytes]):
        self.url = url
        self.process = process
        self.log = log

    def kill(self) -> None:
        """kill -9: no goodbye, no cleanup."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()


@asynccontextmanager
async def cluster(
    count: int,
    redis_url: str,
    tmp_path: Path,
    *extra: str,
    database_url: str | None = None,
    tokens: bool = False,
) -> AsyncIterator[list[Node]]:
    """Start ``count`` nodes on ``redis_url``; each keeps its own SQLite history unless
    ``database_url`` gives them PostgreSQL to share."""
    async with AsyncExitStack() as stack:
        nodes = []
        for index in range(count):
            args = [
                "--broker",
                redis_url,
                "--cluster-heartbeat",
                str(HEARTBEAT),
                "--cluster-node-timeout",
                str(NODE_TIMEOUT),
                *extra,
            ]
            if database_url is not None:
                args += ["--database-url", database_url]
            else:
                args += ["--data-dir", str(tmp_path / f"node{index}")]
            if tokens:
                args += ["--auth", "token", "--token-secret", SECRET]
            log: list[bytes] = []
            url, process = await stack.enter_async_context(hubbub_serve(*args, log=log))
            nodes.append(Node(url, process, log))
        yield nodes


class RestartableNode:
    """A node on a port of its own, which it keeps across restarts (a load balancer's
    configuration names it): stopped as an operator does (SIGTERM), started again."""

    def __init__(self, port: int, args: list[str]) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.args = args
        self.log: list[bytes] = []
        self.process: asyncio.subprocess.Process | None = None
        self._stack: AsyncExitStack | None = None

    async def start(self) -> None:
        stack = AsyncExitStack()
        url, self.process = await stack.enter_async_context(
            hubbub_serve("--port", str(self.port), *self.args, log=self.log)
        )
        assert url == self.url, url
        self._stack = stack

    async def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, and wait for the process to exit; its exit code."""
        process, stack = self.process, self._stack
        self.process = self._stack = None
        if process is None or stack is None:
            return None
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await process.wait()
        await stack.aclose()
        return process.returncode


@asynccontextmanager
async def restartable_cluster(
    count: int, redis_url: str, database_url: str, *extra: str
) -> AsyncIterator[list[RestartableNode]]:
    """Start ``count`` nodes, each on a port it keeps, sharing Redis and PostgreSQL."""
    nodes = [
        RestartableNode(
            free_port(),
            [
                "--broker",
                redis_url,
                "--database-url",
                database_url,
                "--cluster-heartbeat",
                str(HEARTBEAT),
                "--cluster-node-timeout",
                str(NODE_TIMEOUT),
                *extra,
            ],
        )
        for _ in range(count)
    ]
    try:
        for node in nodes:
            await node.start()
        yield nodes
    finally:
        for node in nodes:
            await node.stop(timeout=5)
