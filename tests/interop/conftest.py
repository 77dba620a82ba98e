from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, async_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

PAGE_SCRIPT = (Path(__file__).parent / "peer_page.js").read_text()
PAGE = f"""<!doctype html><html><head><meta charset="utf-8"><title>peer</title></head>
<body><script>{PAGE_SCRIPT}</script></body></html>"""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            # host candidates as addresses, not mDNS names: the Python peer is on
            # this machine and needs no name service to reach the browser
            args=[*CHROMIUM_ARGS, "--disable-features=WebRtcHideLocalIpsWithMdns"],
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def page_url() -> AsyncIterator[str]:
    """The test page, served from its own origin on loopback."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()
