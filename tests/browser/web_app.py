"""What the tests of the web app share: joining as a person would, finding tiles and
messages, and collecting what a page throws."""

from __future__ import annotations

from playwright.async_api import Page

from tests.browser.pages import APP_READY, goto_ready, record_what_it_says

WAIT = 30_000


def tile(user: str, kind: str = "camera") -> str:
    return f'.tile[data-user="{user}"][data-kind="{kind}"]'


async def join_app(page: Page, url: str, room: str, name: str) -> None:
    await goto_ready(page, f"{url}/?room={room}", record_what_it_says(page), ready=APP_READY)
    await page.fill("#name-input", name)
    await page.click("#join-button")
    await page.wait_for_selector("#call-screen:not([hidden])", timeout=WAIT)


async def chat(page: Page, text: str) -> None:
    await page.fill("#chat-input", text)
    await page.press("#chat-input", "Enter")


def shown(sender: str, text: str) -> str:
    return (
        f"[...document.querySelectorAll('.message-item[data-from=\"{sender}\"] .bubble')]"
        f".some((bubble) => bubble.textContent === {text!r})"
    )


def page_errors(page: Page) -> list[str]:
    """A list that fills with every uncaught error of ``page`` from now on."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors
