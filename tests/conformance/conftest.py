"""The fixtures of the conformance suite.

Every scenario runs once per SDK: ``sdk`` is parametrized ``[python]`` and
``[browser]``. The browser half shares one Chromium and one page server across the
whole suite (started on first use, so ``-k python`` never starts a browser); each
client gets a page of its own. Each scenario has servers of its own, started in
this process in a few milliseconds, so that it may set their limits and restart
them without touching another scenario.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Playwright, async_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.pages import page_server
from tests.conformance.drivers import PAGE, BrowserDriver, ClientDriver, Options, PythonDriver
from tests.conformance.network import Hub


class Chromium:
    """One browser and one page server for the suite, started when first asked for."""

    def __init__(self) -> None:
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._pages: Any = None
        self.page_url = ""

    async def browser(self) -> Browser:
        if self._browser is None:
            self._pages = page_server({"/": lambda request: PAGE})
            self.page_url = await self._pages.__aenter__()
            self._playwright = await async_playwright().start()
            self._browser = await self._playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS
            )
        return self._browser

    async def stop(self) -> None:
        if self._browser is not None:
            await self._browser.close()
        if self._playwright is not None:
            await self._playwright.stop()
        if self._pages is not None:
            await self._pages.__aexit__(None, None, None)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chromium() -> AsyncIterator[Chromium]:
    chromium = Chromium()
    yield chromium
    await chromium.stop()


class Hubs:
    """The servers of one scenario."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._started: list[Hub] = []

    async def start(self, **changes: Any) -> Hub:
        """A server with the suite's settings, ``changes`` made (settings or limits)."""
        hub = Hub(self._data_dir / f"hub-{len(self._started)}", **changes)
        self._started.append(hub)
        await hub.start()
        return hub

    async def stop(self) -> None:
        for hub in self._started:
            await hub.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def hubs(tmp_path: Path) -> AsyncIterator[Hubs]:
    hubs = Hubs(tmp_path)
    yield hubs
    await hubs.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def hub(hubs: Hubs) -> Hub:
    return await hubs.start()


class Sdk:
    """One SDK, as the scenarios see it: clients that join a room on a hub."""

    def __init__(self, name: str, chromium: Chromium | None) -> None:
        self.name = name
        self._chromium = chromium
        self._clients: list[ClientDriver] = []

    async def join(
        self, hub: Hub, room: str, user: str, *, line: str | None = None, **options: Any
    ) -> ClientDriver:
        """A client of this SDK, joined to ``room`` as ``user`` through a relay line
        of its own (named ``line``, by default after the user)."""
        client = await self.client(hub, user, line=line, **options)
        await client.join(room)
        return client

    async def client(
        self, hub: Hub, user: str, *, line: str | None = None, **options: Any
    ) -> ClientDriver:
        """A client of this SDK, not joined yet."""
        way = hub.relay.line(line or user)
        if self._chromium is None:
            client: ClientDriver = PythonDriver(user, way, Options(**options))
        else:
            browser = await self._chromium.browser()
            client = BrowserDriver(
                user, way, Options(**options), browser, self._chromium.page_url, hub.url
            )
        self._clients.append(client)
        return client

    async def stop(self) -> None:
        for client in self._clients:
            await client.stop()


@pytest_asyncio.fixture(
    loop_scope="session",
    params=["python", pytest.param("browser", marks=pytest.mark.browser)],
)
async def sdk(request: pytest.FixtureRequest, hubs: Hubs, chromium: Chromium) -> AsyncIterator[Sdk]:
    # (after `hubs`: the clients are stopped before their servers)
    sdk = Sdk(request.param, chromium if request.param == "browser" else None)
    yield sdk
    await sdk.stop()
