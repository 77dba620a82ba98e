"""Takes the screenshots in docs/screenshots/, at desktop and phone size: the join
screen, a call alone, with two and with three people, a shared screen on the stage,
the chat with a link and a file, the page after leaving, and the admin dashboard.

Run from the repository root with the test environment: ``.venv/bin/python
scripts/screenshots.py``. It starts ``hubbub serve`` on an ephemeral port and drives
Chromium with fake cameras and microphones, as the browser tests do.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.async_api import Browser, Page, async_playwright  # noqa: E402
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.process import hubbub_serve  # noqa: E402
from tests.wsclient import Client  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 760}
PHONE = {"width": 390, "height": 780}
API_KEY = "screenshots"
PLAYING = (
    "(count) => [...document.querySelectorAll('.tile video')].filter("
    "(v) => v.videoWidth > 0 && !v.paused).length >= count"
)


async def new_page(browser: Browser, phone: bool = False) -> Page:
    if phone:
        return await browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    return await browser.new_page(viewport=DESKTOP)


async def join(page: Page, url: str, room: str, name: str) -> None:
    await page.goto(f"{url}/?room={room}")
    await page.fill("#name-input", name)
    await page.click("#join-button")
    await page.wait_for_selector("#call-screen:not([hidden])")


async def shot(page: Page, name: str, settle: float = 1.2) -> None:
    await page.mouse.move(1, 1)  # no hover on a tile
    await asyncio.sleep(settle)
    await page.screenshot(path=OUT / f"{name}.png")
    print(f"docs/screenshots/{name}.png")


async def join_screens(browser: Browser, url: str) -> None:
    for phone, name in ((False, "join"), (True, "join-phone")):
        page = await new_page(browser, phone)
        await page.goto(f"{url}/?room=design-review")
        await page.fill("#name-input", "Ada")
        await page.wait_for_function("document.getElementById('preview-video').videoWidth > 0")
        await shot(page, name)
        await page.close()


async def calls(browser: Browser, url: str) -> None:
    ada = await new_page(browser)
    await join(ada, url, "design-review", "Ada")
    await shot(ada, "call-alone")
    grace_phone = await new_page(browser, phone=True)
    await join(grace_phone, url, "design-review", "Grace")
    await ada.wait_for_function(PLAYING, arg=2, timeout=30_000)
    await grace_phone.wait_for_function(PLAYING, arg=2, timeout=30_000)
    await shot(ada, "call-two")
    await shot(grace_phone, "call-phone")

    linus = await new_page(browser)
    await join(linus, url, "design-review", "Linus")
    await ada.wait_for_function(PLAYING, arg=3, timeout=30_000)
    await grace_phone.click("#toggle-panel")
    await grace_phone.fill("#chat-input", "Morning! Slides: https://example.org/slides/q3")
    await grace_phone.press("#chat-input", "Enter")
    await grace_phone.click("#close-panel")
    await linus.fill("#chat-input", "Sharing my screen in a minute")
    await linus.press("#chat-input", "Enter")
    await ada.fill("#chat-input", "Great, let's start")
    await ada.press("#chat-input", "Enter")
    await ada.evaluate(
        """() => {
          const data = new DataTransfer();
          data.items.add(new File(["agenda"], "agenda.pdf", { type: "application/pdf" }));
          document.getElementById("grid").dispatchEvent(
            new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
        }"""
    )
    await ada.click("#draft-send")
    await linus.wait_for_selector('.file-card[data-state="offered"] .accept-file')
    await linus.click('.file-card[data-state="offered"] .accept-file')
    await grace_phone.click('#offers .offer[data-state="offered"] .accept-file')
    await grace_phone.wait_for_selector('#offers .offer[data-state="done"]', timeout=30_000)
    await grace_phone.click("#offers .offer-close")
    await ada.wait_for_selector('.file-card-group[data-state="done"]', timeout=30_000)
    await shot(ada, "call")

    await linus.click("#toggle-screen")
    await ada.wait_for_selector('#grid[data-layout="stage"]', timeout=30_000)
    await ada.wait_for_function(PLAYING, arg=4, timeout=30_000)
    await shot(ada, "presenting")
    await grace_phone.wait_for_selector('#grid[data-layout="stage"]', timeout=30_000)
    await shot(grace_phone, "presenting-phone")
    await shot(linus, "presenter")
    await linus.click("#stop-presenting")

    await ada.click("#open-devices")
    await shot(ada, "devices")
    await ada.click("#close-devices")

    await grace_phone.click("#leave")
    await grace_phone.wait_for_selector("#left-screen:not([hidden])")
    await shot(grace_phone, "left-phone")
    await ada.click("#leave")
    await ada.wait_for_selector("#left-screen:not([hidden])")
    await shot(ada, "left")
    for page in (ada, grace_phone, linus):
        await page.close()


async def admin(browser: Browser, url: str) -> None:
    clients = [await Client.connect(url) for _ in range(6)]
    rooms = ["standup", "design-review", "support"]
    names = ["ada", "grace", "linus", "margaret", "ken", "barbara"]
    try:
        for index, client in enumerate(clients):
            await client.join(rooms[index % 3], names[index])
        pages = []
        for phone in (False, True):
            page = await new_page(browser, phone)
            await page.goto(f"{url}/admin")
            await page.fill("#api-key", API_KEY)
            await page.click("#key-form button[type=submit]")
            await page.wait_for_selector('tr[data-room="standup"]')
            pages.append(page)
        for second in range(24):
            for client in clients[: 1 + second % 4]:
                await client.send({"type": "chat", "message": "tick"})
            await asyncio.sleep(0.5)
        await shot(pages[0], "admin")
        await shot(pages[1], "admin-phone")
    finally:
        for client in clients:
            await client.close()


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    async with (
        hubbub_serve("--api-key", API_KEY) as (url, _process),
        async_playwright() as playwright,
    ):
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            await join_screens(browser, url)
            await calls(browser, url)
            await admin(browser, url)
        finally:
            await browser.close()


if __name__ == "__main__":
    asyncio.run(main())
