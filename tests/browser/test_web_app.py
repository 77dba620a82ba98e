"""The web app at ``/``, driven like a person would: real Chromium pages with fake
camera and microphone, against ``hubbub serve`` on an ephemeral port.

Few pages carry video at a time (each encodes a stream per peer), and every wait is
generous: the machine that runs these may be busy.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.web_app import join_app
from tests.process import hubbub_serve

pytestmark = pytest.mark.browser

WAIT = 30_000


def tile(user: str, kind: str = "camera") -> str:
    return f'.tile[data-user="{user}"][data-kind="{kind}"]'


VIDEO_PLAYING = """(selector) => {
  const video = document.querySelector(selector + " video");
  return Boolean(video) && video.videoWidth > 0 && video.currentTime > 0.3 && !video.paused;
}"""


TILES = """[...document.querySelectorAll(".tile")].map((tile) => {
  const video = tile.querySelector("video");
  return [tile.dataset.user, tile.dataset.kind, tile.className, video.videoWidth,
          video.currentTime, video.paused, Boolean(video.srcObject)];
})"""


async def video_advances(page: Page, selector: str) -> None:
    try:
        await page.wait_for_function(VIDEO_PLAYING, arg=selector, timeout=WAIT)
    except Exception as error:
        raise AssertionError(
            f"{selector} not playing; tiles: {await page.evaluate(TILES)}"
        ) from error
    current = f"document.querySelector('{selector} video').currentTime"
    before = await page.evaluate(current)
    try:
        await page.wait_for_function(f"{current} > {before + 0.3}", timeout=WAIT)
    except Exception as error:
        raise AssertionError(f"{selector} stopped at {before} s") from error


async def chat(page: Page, text: str) -> None:
    await page.fill("#chat-input", text)
    await page.press("#chat-input", "Enter")


def shown(sender: str, text: str) -> str:
    return (
        f"[...document.querySelectorAll('.message-item[data-from=\"{sender}\"] .bubble')]"
        f".some((bubble) => bubble.textContent === {text!r})"
    )


async def test_three_way_call_chat_screen_share_and_leaving(browser: Browser) -> None:
    async with hubbub_serve() as (url, _process):
        names = ["ada", "bob", "cy"]
        pages: dict[str, Page] = {}
        for name in names:
            pages[name] = await browser.new_page()
            await join_app(pages[name], url, "standup", name)

        # Everyone sees the two others' video playing, frames decoded and time advancing.
        for name, page in pages.items():
            for other in names:
                if other != name:
                    await video_advances(page, tile(other))
        assert await pages["ada"].locator(".tile").count() == 3

        # Chat reaches everyone; the sender sees its own message once.
        await chat(pages["bob"], "hello from bob")
        for name in ("ada", "cy"):
            await pages[name].wait_for_function(shown("bob", "hello from bob"), timeout=WAIT)
        assert await pages["bob"].locator(".message-item.mine").count() == 1

        # Presence: the others are online in the people list, with their media state.
        await pages["ada"].click("#tab-people")
        for other in ("bob", "cy"):
            await pages["ada"].wait_for_selector(
                f'.person[data-user="{other}"] .presence[data-status="online"]', timeout=WAIT
            )
        # A status chosen in the people list shows on the others' dots.
        await pages["bob"].click("#tab-people")
        await pages["bob"].select_option("#status-select", "away")
        await pages["ada"].wait_for_selector(
            '.person[data-user="bob"] .presence[data-status="away"]', timeout=WAIT
        )
        await pages["ada"].click("#tab-chat")
        await pages["bob"].click("#tab-chat")

        # Typing shows under the others' chat, and ends with the message.
        await pages["cy"].fill("#chat-input", "on my w")
        await pages["cy"].type("#chat-input", "a")
        await pages["ada"].wait_for_function(
            "document.getElementById('typing').textContent === 'cy is typing…'", timeout=WAIT
        )
        await pages["cy"].type("#chat-input", "y")
        await pages["cy"].press("#chat-input", "Enter")
        await pages["ada"].wait_for_function(shown("cy", "on my way"), timeout=WAIT)
        await pages["ada"].wait_for_function(
            "document.getElementById('typing').textContent === ''", timeout=WAIT
        )

        # Muting shows on the others' tiles.
        await pages["bob"].click("#toggle-mic")
        await pages["bob"].click("#toggle-camera")
        await pages["bob"].wait_for_selector('#toggle-mic[aria-pressed="false"]')
        for name in ("ada", "cy"):
            await pages[name].wait_for_selector(f"{tile('bob')}.audio-off.video-off", timeout=WAIT)
        await pages["bob"].click("#toggle-camera")
        for name in ("ada", "cy"):
            await pages[name].wait_for_selector(f"{tile('bob')}:not(.video-off)", timeout=WAIT)
            await video_advances(pages[name], tile("bob"))

        # Screen sharing: the others get a new tile with the screen, until it stops.
        await pages["cy"].click("#toggle-screen")
        await pages["cy"].wait_for_selector('#toggle-screen[aria-pressed="true"]', timeout=WAIT)
        for name in ("ada", "bob"):
            await video_advances(pages[name], tile("cy", "screen"))
        await pages["cy"].click("#toggle-screen")
        for name in ("ada", "bob"):
            await pages[name].wait_for_selector(
                tile("cy", "screen"), state="detached", timeout=WAIT
            )

        # Closing the page takes cy out of the others' grid and people list.
        await pages["cy"].close()
        for name in ("ada", "bob"):
            await pages[name].wait_for_selector(tile("cy"), state="detached", timeout=WAIT)
            await pages[name].wait_for_selector('#people .person[data-user="cy"]', state="detached")
            # cy chatted here, so cy is listed as gone, with when last seen.
            gone = '#offline-people .person[data-user="cy"] .presence[data-status="offline"]'
            await pages[name].wait_for_selector(gone, state="attached", timeout=WAIT)
            assert await pages[name].locator(".tile").count() == 2
        for page in (pages["ada"], pages["bob"]):
            await page.close()


PROGRESS_RECORDER = """() => {
  window.progressSeen = [];
  new MutationObserver(() => {
    for (const bar of document.querySelectorAll('.file-card progress')) {
      window.progressSeen.push([Number(bar.getAttribute('value')), Number(bar.max)]);
    }
  }).observe(document.getElementById('messages'),
             {subtree: true, attributes: true, attributeFilter: ['value'], childList: true});
}"""


async def test_a_file_goes_peer_to_peer_with_progress_on_both_sides(
    browser: Browser, tmp_path: Path
) -> None:
    size = 20 * 1024 * 1024
    data = os.urandom(size)
    source = tmp_path / "dataset.bin"
    source.write_bytes(data)
    async with hubbub_serve() as (url, _process):
        sender = await browser.new_page()
        receiver = await browser.new_page()
        await join_app(sender, url, "files", "ada")
        await join_app(receiver, url, "files", "bob")
        for page in (sender, receiver):
            await page.evaluate(PROGRESS_RECORDER)
        await sender.click("#tab-people")
        button = sender.locator('.person[data-user="bob"] .send-file')
        await button.wait_for(timeout=WAIT)
        assert await button.get_attribute("aria-label") == "Send a file to bob"
        async with sender.expect_file_chooser() as chooser:
            await button.click()
        await (await chooser.value).set_files(source)

        card = '.file-card[data-direction="receive"]'
        await receiver.wait_for_selector(f'{card}[data-state="offered"]', timeout=WAIT)
        assert "dataset.bin" in await receiver.inner_text(card)
        await receiver.click(f"{card} .accept-file")
        await receiver.wait_for_selector(f'{card}[data-state="done"]', timeout=120_000)
        await sender.wait_for_selector(
            '.file-card[data-direction="send"][data-state="done"]', timeout=WAIT
        )
        async with receiver.expect_download() as download_info:
            await receiver.click(f"{card} .save-file")
        download = await download_info.value
        saved = tmp_path / "saved.bin"
        await download.save_as(saved)
        assert download.suggested_filename == "dataset.bin"
        assert hashlib.sha256(saved.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()

        # Both sides showed the bytes moving, not just the end.
        for page in (sender, receiver):
            seen = await page.evaluate("window.progressSeen")
            assert any(0 < value < size for value, _max in seen), seen[:5]
            assert [size, size] in seen
        await sender.close()
        await receiver.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_clear_messages_and_the_reconnecting_state(browser: Browser) -> None:
    port = _free_port()
    page = await browser.new_page()
    async with hubbub_serve("--port", str(port)) as (url, process):
        await join_app(page, url, "solo", "ada")
        # A name already in the room is refused, and the join screen says why.
        other = await browser.new_page()
        await other.goto(f"{url}/?room=solo")
        await other.fill("#name-input", "ada")
        await other.click("#join-button")
        await other.wait_for_selector("#join-error:not([hidden])", timeout=WAIT)
        assert "already in this room" in await other.inner_text("#join-error")
        assert await other.get_attribute("#name-input", "aria-invalid") == "true"

        # The server goes away: the call shows it is reconnecting...
        process.kill()
        await process.wait()
        await page.wait_for_selector("#connection-banner:not([hidden])", timeout=WAIT)
        assert "Reconnecting" in await page.inner_text("#connection-banner")
        await page.wait_for_selector("#retry-now:not([hidden])")
        await page.wait_for_function(
            "document.getElementById('retry-countdown').textContent.startsWith('Attempt')"
        )
        # ...and a join attempt meanwhile says the server cannot be reached.
        await other.click("#join-button")
        await other.wait_for_function(
            "document.getElementById('join-error').textContent.includes('Cannot reach')",
            timeout=WAIT,
        )
        await other.close()
    async with hubbub_serve("--port", str(port)):
        await page.wait_for_selector("#connection-banner", state="hidden", timeout=WAIT)
        assert await page.locator(tile("ada")).count() == 1
    await page.close()


async def test_a_denied_camera_is_explained_and_the_call_goes_on() -> None:
    # Without --use-fake-ui-for-media-stream, Chromium asks, and headless, the answer is no.
    args = [arg for arg in CHROMIUM_ARGS if arg != "--use-fake-ui-for-media-stream"]
    async with hubbub_serve() as (url, _process), async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            page = await browser.new_page()
            await page.goto(f"{url}/?room=nocam")
            await page.wait_for_selector("#media-message:not([hidden])", timeout=WAIT)
            assert "blocked" in await page.inner_text("#media-message")
            assert await page.get_attribute("#preview-camera", "aria-pressed") == "false"
            await page.fill("#name-input", "ada")
            await page.click("#join-button")
            await page.wait_for_selector("#call-screen:not([hidden])", timeout=WAIT)
            await page.wait_for_selector(f"{tile('ada')}.video-off.audio-off")
            await chat(page, "no camera, still here")
            await page.wait_for_function(shown("ada", "no camera, still here"))
        finally:
            await browser.close()


# Roles a person operates or reads as a thing of its own: each needs a name that a
# screen reader can say.
NAMED_ROLES = {
    "button", "link", "textbox", "searchbox", "checkbox", "radio", "switch", "tab",
    "combobox", "listbox", "slider", "menuitem", "progressbar", "image", "img",
}  # fmt: skip


async def unnamed_controls(page: Page) -> list[str]:
    """What Chromium's accessibility tree holds with a role from NAMED_ROLES and no
    accessible name (hidden and aria-hidden nodes are not in the tree)."""
    cdp = await page.context.new_cdp_session(page)
    try:
        tree = await cdp.send("Accessibility.getFullAXTree")
        unnamed = []
        for node in tree["nodes"]:
            if node.get("ignored"):
                continue
            role = node.get("role", {}).get("value")
            name = str(node.get("name", {}).get("value", "")).strip()
            if role in NAMED_ROLES and not name:
                described = await cdp.send(
                    "DOM.describeNode", {"backendNodeId": node["backendDOMNodeId"]}
                )
                element = described["node"]
                unnamed.append(f"{role}: <{element['localName']} {element.get('attributes')}>")
        return unnamed
    finally:
        await cdp.detach()


async def checked_roles(page: Page) -> set[str]:
    cdp = await page.context.new_cdp_session(page)
    try:
        tree = await cdp.send("Accessibility.getFullAXTree")
        return {
            node.get("role", {}).get("value") for node in tree["nodes"] if not node.get("ignored")
        }
    finally:
        await cdp.detach()


FITS_THE_WIDTH = """() => {
  const width = document.documentElement.clientWidth;
  const outside = [...document.querySelectorAll("button, input, textarea, a, h1")]
    .filter((node) => node.offsetParent !== null)
    .filter((node) => {
      const box = node.getBoundingClientRect();
      return box.width > 0 && (box.left < -1 || box.right > width + 1);
    })
    .map((node) => node.id || node.className);
  return { overflow: document.documentElement.scrollWidth - width, outside };
}"""


async def tab_to(page: Page, element_id: str, limit: int = 60) -> None:
    """Press Tab until the element has the focus, as a keyboard user would."""
    for _ in range(limit):
        if await page.evaluate("document.activeElement?.id") == element_id:
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"#{element_id} is not reachable with Tab")


async def test_keyboard_phone_width_screen_reader_names_invite_link_and_speaking(
    browser: Browser,
) -> None:
    async with hubbub_serve() as (url, _process):
        # Ada on a desktop, with a clipboard; bob on a phone-sized screen.
        desk = await browser.new_context(
            viewport={"width": 1280, "height": 800},
            permissions=["clipboard-read", "clipboard-write"],
        )
        ada = await desk.new_page()
        await ada.goto(f"{url}/?room=a11y")
        assert await unnamed_controls(ada) == []

        # The join screen by keyboard alone: Tab to the name, type it, Enter.
        await tab_to(ada, "name-input")
        await ada.keyboard.type("ada")
        await ada.keyboard.press("Enter")
        await ada.wait_for_selector("#call-screen:not([hidden])", timeout=WAIT)

        phone = await browser.new_context(
            viewport={"width": 375, "height": 720}, is_mobile=True, has_touch=True
        )
        bob = await phone.new_page()
        await bob.goto(f"{url}/?room=a11y")
        fit = await bob.evaluate(FITS_THE_WIDTH)
        assert fit == {"overflow": 0, "outside": []}, fit
        await bob.fill("#name-input", "bob")
        await bob.click("#join-button")
        await bob.wait_for_selector("#call-screen:not([hidden])", timeout=WAIT)
        await video_advances(bob, tile("ada"))
        await video_advances(ada, tile("bob"))

        # Who is speaking: the fake microphone beeps, and bob's tile lights up for ada.
        await ada.wait_for_selector(f"{tile('bob')}.speaking", timeout=WAIT)

        # Every control, in the call too, has a name a screen reader can say.
        assert await unnamed_controls(ada) == []
        await ada.click("#tab-people")
        await ada.wait_for_selector('.person[data-user="bob"] .send-file')
        assert await unnamed_controls(ada) == []
        await ada.click("#tab-chat")
        roles = await checked_roles(ada)
        assert {"tab", "tabpanel", "log"} <= roles, roles

        # The invite link lands on the clipboard and opens the same room.
        await ada.click("#copy-invite")
        # (wait_for_function does not await a promise: the clipboard is polled from here)
        for _ in range(WAIT // 250):
            if await ada.evaluate("navigator.clipboard.readText()") == f"{url}/?room=a11y":
                break
            await asyncio.sleep(0.25)
        assert await ada.evaluate("navigator.clipboard.readText()") == f"{url}/?room=a11y"

        # On the phone the call fits the width, every control in view; the chat opens
        # over the video and Escape closes it.
        fit = await bob.evaluate(FITS_THE_WIDTH)
        assert fit == {"overflow": 0, "outside": []}, fit
        assert await bob.get_attribute("#toggle-panel", "aria-pressed") == "false"
        assert await unnamed_controls(bob) == []

        # The call by keyboard: Tab to the microphone, Space turns it off, and the others see.
        await tab_to(bob, "toggle-mic")
        await bob.keyboard.press("Space")
        await bob.wait_for_selector('#toggle-mic[aria-pressed="false"]')
        await ada.wait_for_selector(f"{tile('bob')}.audio-off", timeout=WAIT)
        await tab_to(bob, "toggle-panel")
        await bob.keyboard.press("Enter")
        await bob.wait_for_selector("#side-panel:not(.collapsed)")
        await tab_to(bob, "chat-input")
        await bob.keyboard.type("typed, not clicked")
        await bob.keyboard.press("Enter")
        await ada.wait_for_function(shown("bob", "typed, not clicked"), timeout=WAIT)
        await bob.keyboard.press("Escape")
        await bob.wait_for_selector("#side-panel.collapsed", state="hidden")
        assert await bob.evaluate("document.activeElement.id") == "toggle-panel"

        await phone.close()
        await desk.close()


MESSAGES_SHOWN = """() => [...document.querySelectorAll('#messages .message-item .bubble')]
  .map((bubble) => bubble.textContent)"""


async def test_chat_history_older_messages_and_delivery_across_a_restart(
    browser: Browser, tmp_path: Path
) -> None:
    port = _free_port()
    args = ("--port", str(port), "--history-on-join", "5", "--data-dir", str(tmp_path))
    ada = await browser.new_page()
    bob = await browser.new_page()
    async with hubbub_serve(*args) as (url, process):
        await join_app(ada, url, "history", "ada")
        for i in range(12):
            await chat(ada, f"note {i}")
        await ada.wait_for_function(
            "document.querySelectorAll('.message-item.mine[data-status=\"sent\"]').length === 12",
            timeout=WAIT,
        )
        # "Sent" shows under the last one only.
        assert await ada.locator(".message-item.mine .delivery:visible").all_inner_texts() == [
            "Sent"
        ]

        # A late joiner sees the last messages at once, and older ones on the way up.
        await join_app(bob, url, "history", "bob")
        await bob.wait_for_function(f"({MESSAGES_SHOWN})().length === 5", timeout=WAIT)
        assert await bob.evaluate(MESSAGES_SHOWN) == [f"note {i}" for i in range(7, 12)]
        older = bob.locator(".load-older")
        for _ in range(12):  # a page at least each time: 12 messages, 5 shown
            if not await older.is_visible():
                break
            await older.click()
            await bob.wait_for_function(
                "!document.querySelector('.load-older').textContent.includes('Loading')",
                timeout=WAIT,
            )
        assert not await older.is_visible(), "'older messages' still offered after 12 pages"
        assert await bob.evaluate(MESSAGES_SHOWN) == [f"note {i}" for i in range(12)]

        # The server goes away: a message written meanwhile waits, marked as sending...
        process.kill()
        await process.wait()
        await ada.wait_for_selector("#connection-banner:not([hidden])", timeout=WAIT)
        await chat(ada, "written while away")
        pending = '.message-item.mine[data-status="pending"]'
        await ada.wait_for_selector(pending, timeout=WAIT)
        assert await ada.inner_text(f"{pending} .delivery") == "Sending…"
    # ...and goes out once the server is back (with its store): stored once, seen once.
    async with hubbub_serve(*args):
        await ada.wait_for_selector(pending, state="detached", timeout=WAIT)
        await ada.wait_for_selector('.message-item.mine[data-status="sent"][data-seq="13"]')
        await bob.wait_for_function(shown("ada", "written while away"), timeout=WAIT)
        await bob.wait_for_selector("#connection-banner", state="hidden", timeout=WAIT)
        assert (await bob.evaluate(MESSAGES_SHOWN)).count("written while away") == 1
    await ada.close()
    await bob.close()
