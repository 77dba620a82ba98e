"""Token mode as a browser meets it, in real Chromium: a token shown in
Sec-WebSocket-Protocol (the server must answer "hubbub" or the browser drops the
connection), and the Origin allow-list."""

from __future__ import annotations

import pytest
from aiohttp import web
from playwright.async_api import Browser

from tests.browser.pages import page_server
from tests.process import hubbub_serve
from tests.tokens import SECRET, token

pytestmark = pytest.mark.browser

PAGE = """<!doctype html><html><head><meta charset="utf-8"></head><body><script>
window.result = new Promise((resolve) => {
  const ws = new WebSocket("%(ws)s", ["hubbub", "hubbub.token.%(token)s"]);
  ws.onopen = () => ws.send(JSON.stringify({type: "join-room", room: "team"}));
  ws.onmessage = (event) => resolve({protocol: ws.protocol, message: JSON.parse(event.data)});
  ws.onclose = (event) => resolve({closed: event.code});
});
</script></body></html>"""


async def test_a_browser_shows_its_token_in_the_subprotocol_and_origins_are_checked(
    browser: Browser,
) -> None:
    wanted: dict[str, str] = {}

    def app_page(request: web.Request) -> str:
        return PAGE % wanted

    async with (
        page_server({"/": app_page}) as app_origin,
        page_server({"/": app_page}) as other_origin,
        hubbub_serve(
            "--auth", "token", "--token-secret", SECRET, "--allowed-origin", app_origin
        ) as (url, _process),
    ):
        wanted["ws"] = url.replace("http://", "ws://") + "/"
        wanted["token"] = token("alice", "team", name="Alice")
        page = await browser.new_page()
        await page.goto(app_origin + "/")
        result = await page.evaluate("window.result")
        assert result["protocol"] == "hubbub"
        assert result["message"]["type"] == "room-joined"
        assert result["message"]["userId"] == "alice"
        assert result["message"]["name"] == "Alice"

        # the same page and token from a site that is not on the list
        stranger = await browser.new_page()
        await stranger.goto(other_origin + "/")
        assert await stranger.evaluate("window.result") == {"closed": 1006}

        # and from the right site with an expired token
        wanted["token"] = token("alice", "team", ttl=-60)
        late = await browser.new_page()
        await late.goto(app_origin + "/")
        assert await late.evaluate("window.result") == {"closed": 1006}
