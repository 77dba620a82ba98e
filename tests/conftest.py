from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import pytest
import uvloop

from hubbub.server import ServerSettings, start_server

ServerFactory = Callable[..., Awaitable[str]]


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    # The server runs on uvloop in production; the tests run it on uvloop too.
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture
async def start_hub() -> AsyncIterator[ServerFactory]:
    """Start an in-process server on an ephemeral port; returns its base URL."""
    runners = []

    async def start(settings: ServerSettings | None = None, **limits: object) -> str:
        """Start with ``settings`` (host and port are forced to 127.0.0.1:0), and
        ``limits`` changed from theirs."""
        settings = replace(settings or ServerSettings(), host="127.0.0.1", port=0)
        if limits:
            settings = replace(settings, limits=replace(settings.limits, **limits))
        runner, url = await start_server(settings)
        runners.append(runner)
        return url

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def hub_url(start_hub: ServerFactory) -> str:
    return await start_hub()
