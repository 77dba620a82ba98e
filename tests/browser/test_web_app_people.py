"""The web app's list of people as members come, go and come back."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser

from tests.browser.web_app import WAIT, chat, join_app, page_errors, shown, tile

pytestmark = pytest.mark.browser


async def test_a_member_who_comes_back_is_listed_as_here_again(start_hub, browser: Browser) -> None:
    url = await start_hub()
    kim = await browser.new_page()
    errors = page_errors(kim)
    await join_app(kim, url, "weekly", "kim")
    lou = await browser.new_page()
    await join_app(lou, url, "weekly", "lou")
    await chat(lou, "back in a minute")
    await kim.wait_for_function(shown("lou", "back in a minute"), timeout=WAIT)
    await lou.close()

    # Lou chatted here, so he is listed as gone...
    await kim.click("#tab-people")
    await kim.wait_for_selector('#offline-people .person[data-user="lou"]', timeout=WAIT)
    assert await kim.inner_text("#people-count") == "just you"

    # ...and when he is back, he is here again, not gone.
    lou = await browser.new_page()
    await join_app(lou, url, "weekly", "lou")
    await kim.wait_for_selector(
        '#people .person[data-user="lou"] .presence[data-status="online"]', timeout=WAIT
    )
    await kim.wait_for_selector(
        '#offline-people .person[data-user="lou"]', state="detached", timeout=WAIT
    )
    assert await kim.inner_text("#people-count") == "2 people"
    assert await kim.inner_text("#people-badge") == "2"
    await kim.wait_for_selector(tile("lou"), timeout=WAIT)
    assert errors == []
    await lou.close()
    await kim.close()
