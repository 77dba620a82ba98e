"""Test pages served from their own loopback origin, as an app's site would serve them.

Chromium refuses to let a page from a non-loopback origin reach loopback (Local
Network Access), so the pages are served on 127.0.0.1 like the hub.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiohttp import web

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
