"""How a call ends in the web app: leaving, or an admin removing this side or ending
the room. Each lands on a page that says so, with the camera and microphone off."""

from __future__ import annotations

import aiohttp
import pytest
from playwright.async_api import Browser, Page

from hubbub.server import ServerSettings
from tests.browser.web_app import WAIT, join_app, page_errors, tile

pytestmark = pytest.mark.browser

API_KEY = "leaving-test-key"

# Every stream the page gets from the camera and microphone, to see whether it is off.
RECORD_CAPTURES = """
const capture = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
window.captured = [];
navigator.mediaDevices.getUserMedia = async (constraints) => {
  const stream = await capture(constraints);
  window.captured.push(stream);
  return stream;
};
"""

LIVE_TRACKS = """() => window.captured.flatMap((stream) => stream.getTracks())
  .filter((track) => track.readyState === "live").map((track) => track.kind)"""


async def capturing_page(browser: Browser) -> Page:
    page = await browser.new_page()
    await page.add_init_script(RECORD_CAPTURES)
    return page


async def test_leaving_lands_on_a_page_with_rejoin_and_the_camera_off(
    start_hub, browser: Browser
) -> None:
    url = await start_hub()
    page = await capturing_page(browser)
    errors = page_errors(page)
    await join_app(page, url, "retro", "ann")
    assert sorted(await page.evaluate(LIVE_TRACKS)) == ["audio", "video"]
    await page.click("#leave")
    await page.wait_for_selector("#left-screen:not([hidden])", timeout=WAIT)
    assert await page.inner_text("#left-title") == "You left the call"
    assert "retro" in await page.inner_text("#left-detail")
    assert await page.is_hidden("#join-screen")
    assert await page.evaluate(LIVE_TRACKS) == []

    await page.click("#rejoin")
    await page.wait_for_selector("#call-screen:not([hidden])", timeout=WAIT)
    await page.wait_for_selector(f"{tile('ann')}:not(.video-off)", timeout=WAIT)
    assert sorted(await page.evaluate(LIVE_TRACKS)) == ["audio", "video"]
    assert errors == []


async def test_removed_by_an_admin_the_camera_goes_off_and_rejoin_is_not_offered(
    start_hub, browser: Browser
) -> None:
    url = await start_hub(ServerSettings(api_key=API_KEY))
    ann = await capturing_page(browser)
    bob = await capturing_page(browser)
    await join_app(ann, url, "board", "ann")
    await join_app(bob, url, "board", "bob")
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.delete(f"{url}/api/rooms/board/participants/ann") as response:
            assert response.status == 200, await response.text()
        await ann.wait_for_selector("#left-screen:not([hidden])", timeout=WAIT)
        assert await ann.inner_text("#left-title") == "You were removed from the call"
        assert await ann.is_hidden("#rejoin")
        assert await ann.evaluate(LIVE_TRACKS) == []
        # ...and when the room ends, everyone in it is told so
        async with http.delete(f"{url}/api/rooms/board") as response:
            assert response.status == 200, await response.text()
        await bob.wait_for_selector("#left-screen:not([hidden])", timeout=WAIT)
        assert await bob.inner_text("#left-title") == "The call has ended"
        assert await bob.is_hidden("#rejoin")
        assert await bob.evaluate(LIVE_TRACKS) == []
    # back to the start: the join screen, the camera on again for the preview
    await ann.click("#back-to-start")
    await ann.wait_for_selector("#join-screen:not([hidden])")
    await ann.wait_for_function("document.getElementById('preview-video').videoWidth > 0")
