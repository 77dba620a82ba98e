"""Clusters of real ``hubbub serve`` processes on one real Redis (and PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from tests.process import hubbub_serve
from tests.tokens import SECRET

HEARTBEAT = 0.25
NODE_TIMEOUT = 1.5
GONE_WITHIN = NODE_TIMEOUT + HEARTBEAT
"""The documented bound: a dead node's members are announced gone this long after
its last heartbeat (docs/protocol.md, "In a cluster")."""


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
