"""Test pages served from their own loopback origin, as an app's site would serve them.

Chromium refuses to let a page from a non-loopback origin reach loopback (Local
Network Access), so the pages are served on 127.0.0.1 like the hub.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiohttp import web
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

PageHandler = Callable[[web.Request], str]


@asynccontextmanager
async def page_server(pages: dict[str, PageHandler]) -> AsyncIterator[str]:
    """Serve each path's HTML (made per request) on an ephemeral loopback port."""

    def handler(make: PageHandler) -> Callable[[web.Request], object]:
        async def serve(request: web.Request) -> web.Response:
            return web.Response(text=make(request), content_type="text/html")

        return serve

    app = web.Application()
    for path, make in pages.items():
        app.router.add_get(path, handler(make))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


NETWORK_CHANGED = "ERR_NETWORK_CHANGED"
"""What Chromium says of what it was loading when the machine's network changed."""


def record_what_it_says(page: Page) -> list[str]:
    """What ``page`` logs, throws and fails to load, from now on (the list grows)."""
    said: list[str] = []
    page.on("console", lambda message: said.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: said.append(f"error: {error}"))
    page.on("requestfailed", lambda r: said.append(f"failed: {r.url} {r.failure}"))
    return said


PAGE_READY = "window.ready === true"
"""What a test page's script sets once it has loaded."""

APP_READY = "document.documentElement.dataset.app === 'ready'"
"""What the web app sets once every part of it is set up."""


async def goto_ready(
    page: Page,
    url: str,
    said: list[str],
    *,
    ready: str = PAGE_READY,
    within: float = 30.0,
    tries: int = 3,
) -> None:
    """Load ``url`` until ``ready`` holds (its script loaded). Chromium drops what it is
    loading when the machine's network changes (``net::ERR_NETWORK_CHANGED``: a
    test's network namespace or veth pair made or removed at that moment, by this
    test or the one before): such a load is made again, up to ``tries`` times.
    Anything else that keeps the page from being ready fails, with what the page
    said (``said``: :func:`record_what_it_says`)."""
    loop = asyncio.get_running_loop()
    for attempt in range(1, tries + 1):
        last = attempt == tries
        before = len(said)
        try:
            await page.goto(url)
        except PlaywrightError as error:
            if NETWORK_CHANGED in str(error) and not last:
                continue
            raise
        deadline = loop.time() + within
        while True:
            try:
                await page.wait_for_function(ready, timeout=500)
                return
            except PlaywrightTimeoutError:
                if not last and any(NETWORK_CHANGED in line for line in said[before:]):
                    break  # loaded again
                if loop.time() >= deadline:
                    raise AssertionError(
                        f"the page at {url} is not ready in {within:g} s; it said {said}"
                    ) from None
