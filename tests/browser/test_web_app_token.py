"""The web app on a server in token mode, in real Chromium: an invite link that
carries its token in the fragment, and a site's own sign-in that gives tokens through
a token endpoint (the example backend of docs/security.md, run as it is written)."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser

from tests.browser.web_app import WAIT, chat, page_errors, shown
from tests.process import hubbub_serve
from tests.tokens import SECRET, token
from tests.turn import coturn
from tests.wsclient import Client as WsClient

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
TURN_SECRET = "turn-secret-of-the-connection-test"


async def test_without_an_invite_the_join_screen_says_one_is_needed(browser: Browser) -> None:
    async with hubbub_serve("--auth", "token", "--token-secret", SECRET) as (url, _process):
        page = await browser.new_page()
        await page.goto(f"{url}/?room=team")
        await page.wait_for_selector("#join-error:not([hidden])", timeout=WAIT)
        assert "only people with an invite link" in await page.inner_text("#join-error")
        assert await page.inner_text("#room-hint") == "Only people with an invite can join."
        assert await page.is_disabled("#join-button")


async def test_an_invite_link_joins_with_its_token_and_keeps_it_out_of_the_address_bar(
    browser: Browser,
) -> None:
    async with hubbub_serve("--auth", "token", "--token-secret", SECRET) as (url, _process):
        page = await browser.new_page()
        errors = page_errors(page)
        invite = token("ann", ["team"], name="Ann Lee")
        # what `hubbub token --link` prints
        await page.goto(f"{url}/#token={invite}")
        await page.wait_for_selector("#access-note:not([hidden])", timeout=WAIT)
        assert await page.input_value("#room-input") == "team"
        assert await page.input_value("#name-input") == "Ann Lee"
        assert await page.get_attribute("#name-input", "readonly") is not None
        assert invite not in page.url
        await page.click("#join-button")
        await page.wait_for_selector("#call-screen:not([hidden])", timeout=WAIT)
        assert await page.evaluate("window.location.hash") == ""
        await page.wait_for_selector('.tile[data-user="ann"]', timeout=WAIT)
        assert "Ann Lee (you)" in await page.inner_text('.tile[data-user="ann"] figcaption')
        # each person needs an invite of their own: the room's link is not offered
        assert await page.is_hidden("#copy-invite")
        await chat(page, "in with an invite")
        await page.wait_for_selector('.message-item.mine[data-status="sent"]', timeout=WAIT)

        # a reload in the same tab still joins: the token was kept for the tab
        await page.reload()
        await page.wait_for_selector("#access-note:not([hidden])", timeout=WAIT)
        await page.click("#join-button")
        await page.wait_for_selector("#call-screen:not([hidden])", timeout=WAIT)
        assert errors == []

        # an expired invite says so
        late = await browser.new_page()
        await late.goto(f"{url}/?room=team#token={token('bo', ['team'], ttl=-60)}")
        await late.wait_for_selector("#join-error:not([hidden])", timeout=WAIT)
        assert "expired" in await late.inner_text("#join-error")


async def test_test_my_connection_works_with_an_invite_and_joins_nobody(
    browser: Browser,
) -> None:
    """In token mode the check asks GET /api/ice-servers with the page's token (a probe
    join would be refused, or show the person in the room)."""
    async with (
        coturn(TURN_SECRET) as turn_port,
        hubbub_serve(
            "--auth", "token", "--token-secret", SECRET,
            "--turn-uri", f"turn:127.0.0.1:{turn_port}?transport=udp",
            "--turn-secret", TURN_SECRET,
        ) as (url, _process),
    ):  # fmt: skip
        bob = await WsClient.connect(url)
        await bob.join("team", token=token("bob", ["team"]))
        page = await browser.new_page()
        errors = page_errors(page)
        await page.goto(f"{url}/#token={token('ann', ['team'])}")
        await page.wait_for_selector("#access-note:not([hidden])", timeout=WAIT)
        await page.click("#connection-test-button")
        await page.wait_for_selector("li[data-check=verdict]", timeout=WAIT)
        checks = dict(
            await page.eval_on_selector_all(
                "#connection-test-results li",
                "items => items.map(li => [li.dataset.check, li.className.slice(12)])",
            )
        )
        assert checks["server"] == "ok", await page.inner_text("#connection-test-results")
        assert checks["turn udp"] == "ok"
        assert checks["relay"] == "ok"
        # nobody saw ann come and go: the next thing bob gets is the answer to his ping
        await bob.send({"type": "ping"})
        assert (await bob.recv())["type"] == "pong"
        await bob.close()
        assert errors == []


def example_backend() -> str:
    """The aiohttp backend in docs/security.md, as a reader would copy it."""
    text = (ROOT / "docs" / "security.md").read_text()
    section = text.split("## The web app in token mode", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "docs/security.md has no example backend"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def running_backend(tmp_path: Path, web_app: str, port: int) -> AsyncIterator[str]:
    script = tmp_path / "token_backend.py"
    script.write_text(example_backend())
    env = {**os.environ, "HUBBUB_TOKEN_SECRET": SECRET, "HUBBUB_WEB_APP": web_app}
    env["PORT"] = str(port)
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), env=env, stdout=asyncio.subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session, asyncio.timeout(20):
            while True:
                try:
                    async with session.get(f"{base}/login"):
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
        yield base
    finally:
        process.kill()
        await process.wait()


async def test_a_site_sign_in_gives_the_web_app_its_tokens(
    browser: Browser, tmp_path: Path
) -> None:
    hubbub_port = free_port()
    web_app = f"http://127.0.0.1:{hubbub_port}"
    backend_port = free_port()
    endpoint = f"http://127.0.0.1:{backend_port}/hubbub-token"
    async with (
        hubbub_serve(
            "--port", str(hubbub_port), "--auth", "token", "--token-secret", SECRET,
            "--token-endpoint", endpoint,
        ) as (url, _process),
        running_backend(tmp_path, web_app, backend_port),
    ):  # fmt: skip
        assert url == web_app
        page = await browser.new_page()
        errors = page_errors(page)
        await page.goto(f"{url}/?room=design")
        # not signed in yet: the web app sends the person to the site's sign-in...
        await page.wait_for_selector("#sign-in:not([hidden])", timeout=WAIT)
        await page.click("#sign-in")
        await page.fill("input[name=user]", "alice")
        await page.click("text=Sign in")
        # ...which sends them back to the room, signed in
        await page.wait_for_url(f"{url}/?room=design", timeout=WAIT)
        await page.wait_for_selector("#access-note:not([hidden])", timeout=WAIT)
        assert await page.input_value("#name-input") == "Alice Liddell"
        await page.click("#join-button")
        await page.wait_for_selector("#call-screen:not([hidden])", timeout=WAIT)
        await page.wait_for_selector('.tile[data-user="alice"]', timeout=WAIT)
        # the room's plain link lets others in: they sign in to the site too
        assert await page.is_visible("#copy-invite")

        bob_context = await browser.new_context()
        bob = await bob_context.new_page()
        await bob.goto(f"{url}/?room=design")
        await bob.click("#sign-in", timeout=WAIT)
        await bob.fill("input[name=user]", "bob")
        await bob.click("text=Sign in")
        await bob.wait_for_selector("#access-note:not([hidden])", timeout=WAIT)
        await bob.click("#join-button")
        await bob.wait_for_selector("#call-screen:not([hidden])", timeout=WAIT)
        await chat(bob, "signed in through the site")
        await page.wait_for_function(shown("bob", "signed in through the site"), timeout=WAIT)
        assert "Bob Marley" in await page.inner_text('.tile[data-user="bob"] figcaption')
        assert errors == []
        await bob_context.close()
