"""Chromium pages running hubbub.js, served from their own loopback origin and
importing ``/hubbub.js`` from the hub, as an app's site would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

PAGE_SCRIPT = (Path(__file__).parent / "page.js").read_text()

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>hubbub.js peer</title></head>
<body><script type="module">
import * as hubbub from "%(hub)s/hubbub.js";
window.hubbub = hubbub;
window.HUB = "%(hub)s";
%(script)s
window.ready = true;
</script></body></html>
"""


def page_html(hub_url: str) -> str:
    return PAGE % {"hub": hub_url, "script": PAGE_SCRIPT}


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            # host candidates as addresses, not mDNS names: the Python peer is on
            # this machine and needs no name service to reach the browser
            args=[*CHROMIUM_ARGS, "--disable-features=WebRtcHideLocalIpsWithMdns"],
        )
        try:
            yield browser
        finally:
            await browser.close()
