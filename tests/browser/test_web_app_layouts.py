"""The call screen's layouts in real Chromium: alone (the invite), two people (the
other large, oneself in a corner), a grid, and the stage (a pinned tile or a shared
screen large, the others in a strip), with full screen and the presenting bar."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Page

from tests.browser.web_app import WAIT, join_app, page_errors, tile

pytestmark = pytest.mark.browser

BOX = """async (selector) => {
  // Tiles move with a transition: measure them where they come to rest (a busy machine
  // may still be in the middle of one when the layout has changed).
  const moving = document.getAnimations().filter((a) => a instanceof CSSTransition);
  await Promise.all(moving.map((a) => a.finished.catch(() => null)));
  const box = document.querySelector(selector).getBoundingClientRect();
  return {x: box.x, y: box.y, w: box.width, h: box.height};
}"""


async def layout_is(page: Page, layout: str) -> None:
    await page.wait_for_selector(f'#grid[data-layout="{layout}"]', timeout=WAIT)


async def role_of(page: Page, selector: str) -> str | None:
    return await page.get_attribute(selector, "data-role")


async def test_alone_the_invite_then_two_people_the_other_large_and_oneself_in_a_corner(
    start_hub, browser: Browser
) -> None:
    url = await start_hub()
    ada = await browser.new_page(viewport={"width": 1280, "height": 800})
    errors = page_errors(ada)
    await join_app(ada, url, "pair", "ada")
    await layout_is(ada, "solo")
    await ada.wait_for_selector("#empty-state:not([hidden])")
    assert "only one here" in await ada.inner_text("#empty-state")
    assert await ada.input_value("#invite-link") == f"{url}/?room=pair"

    bob = await browser.new_page(viewport={"width": 390, "height": 780})
    await join_app(bob, url, "pair", "bob")
    await layout_is(ada, "duo")
    await ada.wait_for_selector("#empty-state", state="hidden")
    assert await role_of(ada, tile("bob")) == "main"
    assert await role_of(ada, tile("ada")) == "pip"
    main = await ada.evaluate(BOX, tile("bob"))
    pip = await ada.evaluate(BOX, tile("ada"))
    assert pip["w"] < main["w"] / 3
    # the small one sits in the big one's lower right corner
    assert main["x"] + main["w"] / 2 < pip["x"] < pip["x"] + pip["w"] <= main["x"] + main["w"]
    assert main["y"] + main["h"] / 2 < pip["y"] < pip["y"] + pip["h"] <= main["y"] + main["h"]
    # on a phone too, in portrait
    await layout_is(bob, "duo")
    assert await role_of(bob, tile("ada")) == "main"
    phone_pip = await bob.evaluate(BOX, tile("bob"))
    assert phone_pip["h"] > phone_pip["w"]

    # full screen for a tile, and back
    await ada.hover(tile("bob"))
    await ada.click(f"{tile('bob')} .full-tile")
    await ada.wait_for_function(
        f"document.fullscreenElement === document.querySelector('{tile('bob')}')"
    )
    await ada.keyboard.press("Escape")
    await ada.evaluate("document.fullscreenElement && document.exitFullscreen()")
    await ada.wait_for_function("document.fullscreenElement === null")

    # the other leaves: alone again, the invite back
    await bob.close()
    await layout_is(ada, "solo")
    await ada.wait_for_selector("#empty-state:not([hidden])", timeout=WAIT)
    assert errors == []


async def test_pinning_and_a_shared_screen_take_the_stage_and_the_presenter_can_stop(
    start_hub, browser: Browser
) -> None:
    url = await start_hub()
    pages = {}
    for name in ("ada", "bob", "cy"):
        pages[name] = await browser.new_page(viewport={"width": 1280, "height": 800})
        await join_app(pages[name], url, "three", name)
    ada = pages["ada"]
    await layout_is(ada, "grid")
    await ada.wait_for_selector(tile("cy"), timeout=WAIT)

    # pin bob: bob on the stage, the others in a strip beside it
    await ada.hover(tile("bob"))
    await ada.click(f"{tile('bob')} .pin-tile")
    await layout_is(ada, "stage")
    assert await role_of(ada, tile("bob")) == "main"
    assert await role_of(ada, tile("cy")) == "strip"
    assert await ada.get_attribute(f"{tile('bob')} .pin-tile", "aria-label") == "Unpin bob"
    stage = await ada.evaluate(BOX, tile("bob"))
    strip = await ada.evaluate(BOX, tile("cy"))
    assert strip["x"] >= stage["x"] + stage["w"]
    assert strip["w"] < stage["w"] / 3
    await ada.click(f"{tile('bob')} .pin-tile")
    await layout_is(ada, "grid")

    # cy shares a screen: it takes everyone's stage; cy is told, and stops from the bar
    cy = pages["cy"]
    await cy.click("#toggle-screen")
    await cy.wait_for_selector("#presenting-bar:not([hidden])", timeout=WAIT)
    assert "You are presenting" in await cy.inner_text("#presenting-bar")
    for name in ("ada", "bob"):
        await pages[name].wait_for_selector(tile("cy", "screen"), timeout=WAIT)
        await layout_is(pages[name], "stage")
        assert await role_of(pages[name], tile("cy", "screen")) == "main"
        assert await role_of(pages[name], tile("cy")) == "strip"
    # a pin wins over the screen, until it is taken off
    await ada.hover(tile("bob"))
    await ada.click(f"{tile('bob')} .pin-tile")
    await ada.wait_for_function(
        f"document.querySelector('{tile('bob')}').dataset.role === 'main'", timeout=WAIT
    )
    assert await role_of(ada, tile("cy", "screen")) == "strip"
    await ada.click(f"{tile('bob')} .pin-tile")

    await cy.click("#stop-presenting")
    await cy.wait_for_selector("#presenting-bar", state="hidden", timeout=WAIT)
    for name in ("ada", "bob"):
        await pages[name].wait_for_selector(tile("cy", "screen"), state="detached", timeout=WAIT)
        await layout_is(pages[name], "grid")
