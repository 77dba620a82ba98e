"""hubbub.js follows the reconnect rules of docs/protocol.md ("A client's reconnect
loop"), as /protocol.js gives them: which close codes end the room for good, and
which refusals of a rejoin keep it trying. Real Chromium against ``hubbub serve``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import Browser

from hubbub.protocol.errors import FINAL_CLOSE_CODES, CloseCode
from tests.browser.pages import page_server
from tests.browser.test_hubbub_js import _harness
from tests.browser.test_resume import Member, events_of, open_harness, proxy_to
from tests.faults.resuming import wait_for
from tests.integration.test_metrics import METRICS_KEY, scrape, scrape_until
from tests.process import hubbub_serve

pytestmark = pytest.mark.browser

WAIT_MS = 30_000
FAST_RETRIES = "{reconnectMinMs: 100, reconnectMaxMs: 400}"


class ClosingRelay:
    """A WebSocket relay on loopback between pages and the hub, which closes a page's
    connection with whatever close code a test asks for, as the server would. The
    server sends some codes only when a client breaks the WebSocket protocol itself
    (1002, 1003, 1007), which a browser never does: here every code can be sent."""

    def __init__(self, hub_url: str) -> None:
        self.upstream = hub_url.rstrip("/") + "/ws"
        self.pages: dict[str, web.WebSocketResponse] = {}
        """User id -> that page's connection, from the ``room-joined`` it was sent."""

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        page = web.WebSocketResponse()
        await page.prepare(request)
        async with aiohttp.ClientSession() as http, http.ws_connect(self.upstream) as hub:

            async def downstream() -> None:
                async for message in hub:
                    if message.type is not aiohttp.WSMsgType.TEXT:
                        break
                    parsed = json.loads(message.data)
                    if parsed.get("type") == "room-joined":
                        self.pages[parsed["userId"]] = page
                    await page.send_str(message.data)
                await page.close()

            relaying = asyncio.create_task(downstream())
            try:
                async for message in page:
                    if message.type is aiohttp.WSMsgType.TEXT:
                        await hub.send_str(message.data)
            finally:
                relaying.cancel()
                with suppress(asyncio.CancelledError):
                    await relaying
        return page

    async def close(self, user_id: str, code: int) -> None:
        await self.pages.pop(user_id).close(code=code)


@asynccontextmanager
async def closing_relay(hub_url: str) -> AsyncIterator[tuple[ClosingRelay, str]]:
    relay = ClosingRelay(hub_url)
    app = web.Application()
    app.router.add_get("/", relay.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield relay, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_each_close_code_ends_the_room_or_is_reconnected_after(browser: Browser) -> None:
    """One room per close code the server sends: after a final one the room is closed
    with the code's name and never tries to come back; after any other it reconnects."""
    final = {int(code): name for code, name in FINAL_CLOSE_CODES.items()}
    passing = [int(code) for code in CloseCode if code not in FINAL_CLOSE_CODES]
    assert {1002, 1003, 1007, 1008, 1009, 4003, 4004, 4009, 4010} <= final.keys()
    users = {f"u{code}": code for code in [*final, *passing]}
    async with (
        hubbub_serve() as (url, _process),
        closing_relay(url) as (relay, relay_url),
        page_server({"/": lambda request: _harness(url)}) as page_url,
    ):
        page = await open_harness(browser, page_url)
        for user in users:
            options = f"{{hub: {relay_url!r}, room: {user!r}, limits: {FAST_RETRIES}}}"
            await page.evaluate(f"enter({user!r}, {options})")
        for user, code in users.items():
            await relay.close(user, code)
        for user, code in users.items():
            if code in final:
                await page.wait_for_function(f"rooms.{user}.state === 'closed'", timeout=WAIT_MS)
                assert await page.evaluate(f"rooms.{user}.closeReason") == {
                    "code": final[code],
                    "closeCode": code,
                }, user
            else:
                await page.wait_for_function(
                    f"seen({{user: {user!r}, type: 'rejoined'}}) === 1"
                    f" && rooms.{user}.state === 'open'",
                    timeout=WAIT_MS,
                )
        await asyncio.sleep(1)  # (a reconnection after a final close would have begun)
        for user, code in users.items():
            states = await page.evaluate(events_of(user, "connection-state", "e.state, e.reason"))
            if code in final:
                assert states == [["closed", final[code]]], user
            else:
                assert states == [["reconnecting", "connection-lost"], ["open", "rejoined"]], user
        await page.close()


async def test_a_message_too_big_for_the_server_closes_the_room_for_good(
    browser: Browser,
) -> None:
    """A page that allows itself longer chat than the server does sends a frame over
    the server's limit: the server closes with 1009, and the room does not come back
    to send it again (which would close it again, without end)."""
    async with (
        hubbub_serve("--max-frame-bytes", "8192") as (url, _process),
        page_server({"/": lambda request: _harness(url)}) as page_url,
    ):
        page = await open_harness(browser, page_url)
        await page.evaluate(
            f"enter('big', {{room: 'big', limits: {{maxChatLength: 100000, ...{FAST_RETRIES}}}}})"
        )
        await page.evaluate("rooms.big.sendChat('x'.repeat(20000))")
        await page.wait_for_function("rooms.big.state === 'closed'", timeout=WAIT_MS)
        assert await page.evaluate("rooms.big.closeReason") == {
            "code": "too-big",
            "closeCode": 1009,
        }
        assert await page.evaluate("rooms.big.pendingChats.length") == 0
        await asyncio.sleep(1)
        assert await page.evaluate("seen({user: 'big', type: 'reconnecting'})") == 0
        await page.close()


async def test_a_rejoin_refused_because_the_room_is_full_keeps_trying(browser: Browser) -> None:
    """Alice's network stays down past the grace period and carol takes the last place:
    each rejoin is refused with room-full, and she keeps trying until there is room."""
    args = ("--max-participants", "2", "--resume-grace", "1", "--metrics-key", METRICS_KEY)
    async with (
        hubbub_serve(*args) as (url, _process),
        proxy_to(url) as (proxy, proxy_url),
        page_server({"/": lambda request: _harness(url)}) as page_url,
    ):
        page = await open_harness(browser, page_url)
        await page.evaluate(f"enter('alice', {{hub: {proxy_url!r}, limits: {FAST_RETRIES}}})")
        bob = await Member.join(url, "test", "bob")
        carol = None
        try:
            proxy.refusing = True
            assert proxy.cut_all() == 1
            await page.wait_for_function("rooms.alice.state === 'reconnecting'", timeout=WAIT_MS)
            await wait_for(lambda: bool(bob.seen("user-left", userId="alice")), 30)
            carol = await Member.join(url, "test", "carol")
            proxy.refusing = False
            await scrape_until(url, lambda now: now("hubbub_errors_total", code="room-full") >= 3)
            assert await page.evaluate("rooms.alice.state") == "reconnecting"
            await carol.close()
            carol = None
            await page.wait_for_function("rooms.alice.state === 'open'", timeout=WAIT_MS)
            assert await page.evaluate(events_of("alice", "rejoined", "e.reason")) == [
                ["unknown-session"]
            ]
            assert await page.evaluate("rooms.alice.closeReason") is None
            # It tried to resume once, then joined until there was room.
            now = await scrape(url)
            assert now("hubbub_errors_total", code="resume-failed") == 1
            await wait_for(lambda: bool(bob.seen("user-joined", userId="alice")), 30)
        finally:
            await bob.close()
            if carol is not None:
                await carol.close()
        await page.close()
