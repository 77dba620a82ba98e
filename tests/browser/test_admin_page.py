"""The admin page at ``/admin`` in real Chromium: the key entered once, live rooms and
their participants, rates and charts from the metrics, a search, and its buttons
acting on the server once confirmed."""

from __future__ import annotations

import asyncio
import re

import pytest
from playwright.async_api import Browser, Route, expect

from hubbub.server import ServerSettings
from tests.wsclient import Client

pytestmark = pytest.mark.browser

WAIT = 30_000
API_KEY = "admin-page-test-key"


async def test_the_admin_page_lists_a_live_room_and_its_participants(
    start_hub, browser: Browser
) -> None:
    url = await start_hub(ServerSettings(api_key=API_KEY))
    page = await browser.new_page()
    clients = [await Client.connect(url) for _ in range(3)]
    chatting: asyncio.Task[None] | None = None
    try:
        await clients[0].join("standup", "alice")
        await clients[1].join("standup", "bob")
        await clients[2].join("<b>odd</b>", "carol")

        response = await page.goto(f"{url}/admin")
        assert response is not None
        assert response.ok
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]

        # a wrong key is refused, and the page says why in the API's words, even when
        # the API answers after /metrics (as it may on a busy server)
        async def api_answers_last(route: Route) -> None:
            await asyncio.sleep(0.5)
            await route.continue_()

        await page.route("**/api/**", api_answers_last)
        await page.fill("#api-key", "not-the-key")
        await page.click("#key-form button[type=submit]")
        await page.wait_for_selector("#key-error:has-text('send the API key')", timeout=WAIT)
        assert await page.is_hidden("#dashboard")
        await page.unroute_all(behavior="wait")

        await page.fill("#api-key", API_KEY)
        await page.click("#key-form button[type=submit]")
        row = 'tr[data-room="standup"]'
        await page.wait_for_selector(row, timeout=WAIT)
        # signed in, the key's form is gone
        assert await page.is_hidden("#key-form")
        users = await page.locator(f"{row} li .user-id").all_text_contents()
        assert users == ["alice", "bob"]
        # a room name is shown as text, never run as HTML
        odd = page.locator("td.room-name", has_text="<b>odd</b>")
        await odd.wait_for(timeout=WAIT)
        assert await page.locator("td.room-name b").count() == 0
        await expect(page.locator("#fig-participants")).to_have_text("3", timeout=WAIT)

        # live rates: chat flows, the page shows messages per second from the counters
        async def chat() -> None:
            while True:
                await clients[0].send({"type": "chat", "message": "tick"})
                await asyncio.sleep(0.05)

        chatting = asyncio.create_task(chat())
        await expect(page.locator("#fig-chat-rate")).to_have_text(
            re.compile(r"^[0-9.]*[1-9][0-9.]*$"), timeout=WAIT
        )
        chatting.cancel()

        # live charts: connections and messages per second over the last minutes
        await expect(page.locator("#chart-connections")).to_have_attribute(
            "aria-label", re.compile(r"connections now 3, peak 3; participants now 3"), timeout=WAIT
        )
        await expect(page.locator("#chart-messages")).to_have_attribute(
            "aria-label", re.compile(r"in now [0-9.]+, peak [0-9.]*[1-9]"), timeout=WAIT
        )
        drawn = await page.evaluate(
            """() => {
              const canvas = document.getElementById("chart-messages");
              const pixels = canvas.getContext("2d")
                .getImageData(0, 0, canvas.width, canvas.height).data;
              let lit = 0;
              for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) lit += 1;
              return lit;
            }"""
        )
        assert drawn > 500

        # search: by a room's name or by a person in it
        await page.fill("#room-search", "odd")
        await expect(page.locator("tbody tr")).to_have_count(1)
        await page.fill("#room-search", "BOB")
        await expect(page.locator("tbody tr")).to_have_count(1)
        assert await page.locator(row).count() == 1
        await page.fill("#room-search", "nobody-here")
        await expect(page.locator("#no-match")).to_be_visible()
        await page.fill("#room-search", "")
        await expect(page.locator("tbody tr")).to_have_count(2)

        # the key is kept for the tab: a reload shows the rooms without asking again
        await page.reload()
        await page.wait_for_selector(row, timeout=WAIT)

        # removing a participant asks first; cancelled, nothing happens...
        await page.click(f'{row} li[data-user-id="bob"] button')
        await expect(page.locator("#confirm")).to_be_visible()
        assert await page.inner_text("#confirm-title") == "Remove bob?"
        await page.click("#confirm-cancel")
        await expect(page.locator("#confirm")).to_be_hidden()
        await asyncio.sleep(0.5)
        assert await page.locator(f'{row} li[data-user-id="bob"]').count() == 1
        # ...confirmed, it closes the participant's connection with 4003
        await page.click(f'{row} li[data-user-id="bob"] button')
        await page.click("#confirm-ok")
        assert await clients[1].closed_with(timeout=20) == 4003
        await page.wait_for_selector(
            f'{row} li[data-user-id="bob"]', state="detached", timeout=WAIT
        )
        # ending a room asks too, then closes everyone in it with 4004
        await page.click(f"{row} .end-room")
        assert await page.inner_text("#confirm-title") == "End standup?"
        assert "1 person" in await page.inner_text("#confirm-text")
        await page.click("#confirm-ok")
        assert await clients[0].closed_with(timeout=20) == 4004
        await page.wait_for_selector(row, state="detached", timeout=WAIT)
    finally:
        if chatting is not None:
            chatting.cancel()
        await page.close()
        for client in clients:
            await client.close()
