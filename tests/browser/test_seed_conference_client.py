"""Acceptance: the seed document's ConferenceClient, unchanged but for its URL, makes a
three-way call through ``hubbub serve`` in three Chromium pages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page

from tests.process import hubbub_serve

pytestmark = pytest.mark.browser

SEED_CLIENT = (Path(__file__).parent / "seed_conference_client.js").read_text()

# The page supplies what the seed's class leaves to its user: where to show a
# remote stream and a chat line. The class itself is loaded as it is.
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>seed client</title></head>
<body><div id="videos"></div><ul id="chat"></ul>
<script>
// The class assigns ws.onopen only after getUserMedia resolves; when the socket
// opens first (on loopback it always does), its join-room is never sent. That race
// is the class's own. The page leaves the class as it is and hands an 'open' that
// already happened to a handler assigned late.
const NativeWebSocket = window.WebSocket;
window.WebSocket = class extends NativeWebSocket {
  get onopen() { return super.onopen; }
  set onopen(handler) {
    super.onopen = handler;
    if (handler && this.readyState === NativeWebSocket.OPEN) {
      queueMicrotask(() => handler.call(this, new Event("open")));
    }
  }
};
const SIGNALING_URL = "%(ws_url)s";
%(seed_client)s
class PageClient extends ConferenceClient {
  displayRemoteStream(peerId, stream) {
    let video = document.getElementById("video-" + peerId);
    if (!video) {
      video = document.createElement("video");
      video.id = "video-" + peerId;
      video.autoplay = true;
      video.muted = true;
      video.playsInline = true;
      document.getElementById("videos").appendChild(video);
    }
    video.srcObject = stream;
  }
  displayChat(userId, message) {
    const item = document.createElement("li");
    item.dataset.from = userId;
    item.textContent = message;
    document.getElementById("chat").appendChild(item);
  }
}
window.client = new PageClient("%(room)s", "%(user)s");
</script></body></html>
"""

VIDEO_PLAYING = """(peers) => peers.every((peer) => {
  const video = document.getElementById("video-" + peer);
  return video && video.videoWidth > 0 && video.currentTime > 0.5 && !video.paused;
})"""


@asynccontextmanager
async def page_server(hub_url: str) -> AsyncIterator[str]:
    """Serve the test page from its own origin on loopback, as an app's site would."""

    async def client_page(request: web.Request) -> web.Response:
        html = PAGE % {
            "ws_url": hub_url.replace("http://", "ws://") + "/",
            "seed_client": SEED_CLIENT,
            "room": request.query["room"],
            "user": request.query["user"],
        }
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", client_page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


CHAT_SHOWN = """([sender, text]) => [...document.querySelectorAll('#chat li')]
  .some((item) => item.dataset.from === sender && item.textContent === text)"""


async def _open_client(browser: Browser, page_url: str, room: str, user: str) -> Page:
    page = await browser.new_page()
    await page.goto(f"{page_url}?room={room}&user={user}")
    return page


async def _current_time(page: Page, peer: str) -> float:
    return await page.evaluate(f"document.getElementById('video-{peer}').currentTime")


async def _advances(page: Page, user: str, peer: str, before: float) -> None:
    """Live video: the time of ``peer``'s stream at ``user`` keeps going past ``before``."""
    current = f"document.getElementById('video-{peer}').currentTime"
    try:
        await page.wait_for_function(f"{current} > {before + 0.3}", timeout=20_000)
    except Exception as error:
        raise AssertionError(f"{peer}'s video at {user} stopped at {before} s") from error


async def test_three_seed_clients_call_chat_and_leave(browser: Browser) -> None:
    async with hubbub_serve() as (url, _process), page_server(url) as page_url:
        users = ["alice", "bob", "carol"]
        pages: dict[str, Page] = {}
        for user in users:
            pages[user] = await _open_client(browser, page_url, "seed-call", user)
            # one at a time, as people arrive: each join finds the others there
            await pages[user].wait_for_function(
                "window.client && window.client.ws.readyState === 1"
            )
            await asyncio.sleep(0.3)

        for user, page in pages.items():
            others = [u for u in users if u != user]
            await page.wait_for_function(VIDEO_PLAYING, arg=others, timeout=30_000)
            # live video: time keeps advancing on every remote stream
            before = {peer: await _current_time(page, peer) for peer in others}
            for peer in others:
                await _advances(page, user, peer, before[peer])

        await pages["bob"].evaluate("window.client.sendChat('hello from bob')")
        for user in ("alice", "carol"):
            await pages[user].wait_for_function(
                CHAT_SHOWN, arg=["bob", "hello from bob"], timeout=10_000
            )
        assert await pages["bob"].evaluate("document.querySelectorAll('#chat li').length") == 0

        await pages["carol"].close()
        for user in ("alice", "bob"):
            await pages[user].wait_for_function(
                "!window.client.peers.has('carol') && window.client.peers.size === 1",
                timeout=10_000,
            )
