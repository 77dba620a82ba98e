"""The web app in a room of twelve whose call goes through Janus: past nine cameras the
grid gives way to the speaker view (who speaks large, a strip of the others, pages for
the rest), and the page takes every other member's video at 10 frames per second or
more. The other eleven are aiortc bots that only send (they decode nothing)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser

from hubbub.client import Client
from hubbub.peer import JOIN_FIELDS, MediaSource, SfuMedia
from tests.browser.web_app import WAIT, join_app, page_errors, tile
from tests.janus import JanusLab, janus_lab, needs_janus
from tests.process import hubbub_serve

pytestmark = [pytest.mark.browser, needs_janus()]

BOTS = 11

# The video frames each shown tile decodes per second, over two seconds.
FRAME_RATES = """async () => {
  const shown = [...document.querySelectorAll('.tile[data-kind="camera"]:not([data-local])')]
    .filter((tile) => tile.dataset.role !== "hidden");
  const count = () => Object.fromEntries(shown.map((tile) => [
    tile.dataset.user, tile.querySelector("video").getVideoPlaybackQuality().totalVideoFrames,
  ]));
  const before = count();
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const after = count();
  const users = Object.keys(after);
  return Object.fromEntries(users.map((user) => [user, (after[user] - before[user]) / 2]));
}"""


@pytest.fixture
async def lab() -> AsyncIterator[JanusLab]:
    async with janus_lab() as running:
        yield running


async def test_twelve_in_sfu_mode_the_speaker_view_and_every_video_at_10_fps(
    lab: JanusLab, browser: Browser
) -> None:
    sources = []
    async with contextlib.AsyncExitStack() as stack:
        # The server runs in a process of its own, as it does for users: the bots'
        # media keeps this one busy.
        janus = [*lab.serve_args(), "--media-mode", "sfu"]
        url, _ = await stack.enter_async_context(hubbub_serve(*janus))
        for n in range(BOTS):
            # One of them talks (a tone); the others are silent.
            media = MediaSource.test_pattern(audio=n == 0, width=320, height=240)
            sources.append(media)
            client = Client(
                url, "twelve", user=f"bot{n:02d}", join_fields=JOIN_FIELDS, events=False
            )
            bot = await stack.enter_async_context(SfuMedia(client, media=media, subscribe=False))
            await stack.enter_async_context(client)
            await bot.wait_published(30)
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        errors = page_errors(page)
        await join_app(page, url, "twelve", "ada")
        await page.wait_for_selector('#grid[data-layout="speaker"]', timeout=WAIT)
        # Who speaks takes the stage; a strip holds a page of the others, and the
        # pager turns the pages.
        await page.wait_for_function(
            f"document.querySelector('{tile('bot00')}')?.dataset.role === 'main'", timeout=WAIT
        )
        roles = await page.eval_on_selector_all(
            ".tile", "(tiles) => tiles.map((t) => t.dataset.role)"
        )
        assert roles.count("main") == 1
        assert roles.count("strip") >= 3
        assert roles.count("hidden") >= 1
        assert await page.is_visible("#strip-pager")
        hidden_before = await page.eval_on_selector_all(
            '.tile[data-role="hidden"]', "(tiles) => tiles.map((t) => t.dataset.user)"
        )
        await page.click("#strip-next")
        shown_now = await page.eval_on_selector_all(
            '.tile[data-role="strip"]', "(tiles) => tiles.map((t) => t.dataset.user)"
        )
        assert set(hidden_before) & set(shown_now)
        # Every other member's video arrives, 10 frames a second or more (bots send
        # 15), page by page of the strip.
        rates: dict[str, float] = {}
        await page.click("#strip-previous")
        while True:
            rates.update(await page.evaluate(FRAME_RATES))
            if await page.is_disabled("#strip-next"):
                break
            await page.click("#strip-next")
        assert sorted(rates) == [f"bot{n:02d}" for n in range(BOTS)]
        slow = {user: rate for user, rate in rates.items() if rate < 10}
        assert slow == {}, rates
        assert errors == []
    for media in sources:
        media.stop()
