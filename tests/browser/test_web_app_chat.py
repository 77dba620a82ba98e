"""The web app's chat in real Chromium: links made clickable (and nothing else), the
empty state, and files sent from the chat box (paperclip, drop, paste) to one person
or to everyone, with an offer that reaches a phone whose chat is closed."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from tests.browser.web_app import WAIT, chat, join_app, page_errors, shown

pytestmark = pytest.mark.browser


async def test_links_are_clickable_and_nothing_else_is_markup(start_hub, browser: Browser) -> None:
    url = await start_hub()
    ada = await browser.new_page()
    bob = await browser.new_page()
    await join_app(ada, url, "links", "ada")
    await join_app(bob, url, "links", "bob")
    # before anything is said, the chat says how to start
    assert await ada.is_visible(".chat-empty")
    text = (
        "notes at https://example.org/a?b=1&c=2, the spec (https://en.wikipedia.org/wiki/"
        "Cat_(disambiguation)) and javascript:alert(1) <b>bold</b> <img src=x onerror=boom()>"
    )
    await chat(bob, text)
    await ada.wait_for_function(shown("bob", text), timeout=WAIT)
    assert await ada.is_hidden(".chat-empty")
    bubble = '.message-item[data-from="bob"] .bubble'
    links = await ada.eval_on_selector_all(
        f"{bubble} a",
        "(nodes) => nodes.map((a) => [a.getAttribute('href'), a.textContent, a.target, a.rel])",
    )
    assert links == [
        ["https://example.org/a?b=1&c=2", "https://example.org/a?b=1&c=2", "_blank",
         "noopener noreferrer nofollow"],
        ["https://en.wikipedia.org/wiki/Cat_(disambiguation)",
         "https://en.wikipedia.org/wiki/Cat_(disambiguation)", "_blank",
         "noopener noreferrer nofollow"],
    ]  # fmt: skip
    assert await ada.locator(f"{bubble} b, {bubble} img").count() == 0


DROP = """async ({ selector, name, text, paste }) => {
  const data = new DataTransfer();
  data.items.add(new File([text], name, { type: "text/plain" }));
  const target = document.querySelector(selector);
  const how = { bubbles: true, cancelable: true };
  if (paste) {
    target.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, ...how }));
    return;
  }
  for (const type of ["dragenter", "dragover", "drop"]) {
    target.dispatchEvent(new DragEvent(type, { dataTransfer: data, ...how }));
  }
}"""


async def accept(page: Page, name: str) -> None:
    card = f'.file-card[data-direction="receive"]:has(.file-name:text-is("{name}"))'
    await page.wait_for_selector(f'{card}[data-state="offered"]', timeout=WAIT)
    await page.click(f"{card} .accept-file")
    await page.wait_for_selector(f'{card}[data-state="done"]', timeout=WAIT)


async def test_files_from_the_chat_box_to_everyone_or_to_one(
    start_hub, browser: Browser, tmp_path: Path
) -> None:
    url = await start_hub()
    pages = {}
    for name in ("ada", "bob", "cy"):
        pages[name] = await browser.new_page(viewport={"width": 1280, "height": 800})
        await join_app(pages[name], url, "share", name)
    ada, bob, cy = pages["ada"], pages["bob"], pages["cy"]
    errors = page_errors(ada)
    for page in (bob, cy):
        await page.wait_for_selector('.tile[data-user="ada"]', timeout=WAIT)
    await ada.wait_for_function("document.querySelectorAll('.tile').length === 3", timeout=WAIT)

    # the paperclip: pick a file, then whom to send it to (everyone, by default)
    notes = tmp_path / "notes.txt"
    notes.write_text("agenda\n" * 1000)
    async with ada.expect_file_chooser() as chooser:
        await ada.click("#attach")
    await (await chooser.value).set_files(notes)
    await ada.wait_for_selector("#file-draft:not([hidden])")
    assert "notes.txt" in await ada.inner_text("#draft-files")
    assert await ada.input_value("#draft-target") == ""
    assert await ada.inner_text("#draft-target option:checked") == "Everyone (2)"
    await ada.click("#draft-send")
    await ada.wait_for_selector("#file-draft", state="hidden")
    group = ".file-card.file-card-group"
    await ada.wait_for_selector(group, timeout=WAIT)
    assert "to everyone (2)" in await ada.inner_text(group)
    for page in (bob, cy):
        await accept(page, "notes.txt")
    await ada.wait_for_selector(f'{group}[data-state="done"]', timeout=WAIT)
    assert "Delivered to 2 of 2" in await ada.inner_text(f"{group} .file-status")

    # dropped on the call, to bob alone
    await ada.evaluate(
        DROP, {"selector": "#grid", "name": "dropped.txt", "text": "from a drop", "paste": False}
    )
    await ada.wait_for_selector("#file-draft:not([hidden])")
    await ada.select_option("#draft-target", "bob")
    await ada.click("#draft-send")
    await accept(bob, "dropped.txt")
    # pasted into the chat box, to cy alone
    await ada.evaluate(
        DROP, {"selector": "#chat-input", "name": "pasted.txt", "text": "from a paste",
               "paste": True},
    )  # fmt: skip
    await ada.wait_for_selector("#file-draft:not([hidden])")
    await ada.select_option("#draft-target", "cy")
    await ada.click("#draft-send")
    await accept(cy, "pasted.txt")
    # each went to the one it was for
    assert await cy.locator('.file-card:has(.file-name:text-is("dropped.txt"))').count() == 0
    assert await bob.locator('.file-card:has(.file-name:text-is("pasted.txt"))').count() == 0
    assert errors == []


async def test_a_phone_with_the_chat_closed_is_offered_the_file_where_it_is(
    start_hub, browser: Browser, tmp_path: Path
) -> None:
    url = await start_hub()
    ada = await browser.new_page()
    phone = await browser.new_context(
        viewport={"width": 390, "height": 780}, is_mobile=True, has_touch=True
    )
    bob = await phone.new_page()
    await join_app(ada, url, "handoff", "ada")
    await join_app(bob, url, "handoff", "bob")
    assert await bob.get_attribute("#toggle-panel", "aria-pressed") == "false"
    photo = tmp_path / "photo.bin"
    photo.write_bytes(bytes(range(256)) * 400)
    await ada.click("#tab-people")
    async with ada.expect_file_chooser() as chooser:
        await ada.click('.person[data-user="bob"] .send-file')
    await (await chooser.value).set_files(photo)

    offer = "#offers .offer"
    await bob.wait_for_selector(f'{offer}[data-state="offered"]', timeout=WAIT)
    assert "ada wants to send you photo.bin" in await bob.inner_text(offer)
    assert await bob.is_visible(f"{offer} .accept-file")
    await bob.click(f"{offer} .accept-file")
    await bob.wait_for_selector(f'{offer}[data-state="done"]', timeout=WAIT)
    async with bob.expect_download() as download_info:
        await bob.click(f"{offer} .save-file")
    download = await download_info.value
    saved = tmp_path / "saved.bin"
    await download.save_as(saved)
    assert saved.read_bytes() == photo.read_bytes()
    await phone.close()
