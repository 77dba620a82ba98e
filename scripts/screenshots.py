"""Takes the screenshots in docs/screenshots/: the join screen and a three-way call.

Run from the repository root with the test environment: ``.venv/bin/python
scripts/screenshots.py``. It starts ``hubbub serve`` on an ephemeral port and drives
Chromium with fake camera and microphone, as the browser tests do.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.async_api import Page, async_playwright  # noqa: E402
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.process import hubbub_serve  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 760}
PHONE = {"width": 390, "height": 780}


async def _join(page: Page, url: str, room: str, name: str) -> None:
    await page.goto(f"{url}/?room={room}")
    await page.fill("#name-input", name)
    await page.click("#join-button")
    await page.wait_for_selector("#call-screen:not([hidden])")


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    async with hubbub_serve() as (url, _process), async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            first = await browser.new_page(viewport=DESKTOP)
            await first.goto(f"{url}/?room=design-review")
            await first.fill("#name-input", "Ada")
            await first.wait_for_function("document.getElementById('preview-video').videoWidth > 0")
            await asyncio.sleep(0.5)
            await first.screenshot(path=OUT / "join.png")
            await first.click("#join-button")
            await first.wait_for_selector("#call-screen:not([hidden])")
            others = []
            for name in ("Grace", "Linus"):
                page = await browser.new_page(viewport=DESKTOP)
                await _join(page, url, "design-review", name)
                others.append(page)
            await first.wait_for_function(
                "[...document.querySelectorAll('.tile video')].filter("
                "(v) => v.videoWidth > 0 && !v.paused).length === 3",
                timeout=30_000,
            )
            await others[0].fill("#chat-input", "Morning! Slides are in the doc.")
            await others[0].press("#chat-input", "Enter")
            await others[1].fill("#chat-input", "Sharing my screen in a minute")
            await others[1].press("#chat-input", "Enter")
            await first.fill("#chat-input", "Great, let's start")
            await first.press("#chat-input", "Enter")
            await others[1].click("#toggle-camera")
            await asyncio.sleep(1.5)
            await first.screenshot(path=OUT / "call.png")
            phone = await browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True)
            await _join(phone, url, "design-review", "Margaret")
            await phone.wait_for_function(
                "[...document.querySelectorAll('.tile video')].filter("
                "(v) => v.videoWidth > 0).length >= 3",
                timeout=30_000,
            )
            await asyncio.sleep(1.0)
            await phone.screenshot(path=OUT / "call-phone.png")
        finally:
            await browser.close()


if __name__ == "__main__":
    asyncio.run(main())
