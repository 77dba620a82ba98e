"""A call whose NAT mapping goes away mid-call (a router restarts, or times its
mappings out) comes back by itself: the peers restart ICE on new mappings."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from tests.network.browser import lab_page
from tests.network.lab import TURN_ADDRESS, Lab
from tests.network.services import TURN_PORT, TURN_SECRET, coturn, hubbub

pytestmark = [pytest.mark.network, pytest.mark.browser]

WAIT = 60.0


async def test_browsers_restart_ice_when_the_nat_forgets_their_mapping(
    lab: Lab, tmp_path: Path
) -> None:
    """Both routers forget every mapping (symmetric NATs, new random ports): the
    relays, the peer-reflexive paths and the WebSocket to hubbub all break at once.
    The pages see the call drop, resume their sessions and restart ICE. Before, the
    offers each made went into the dead WebSocket, and both sides then waited
    forever in have-local-offer."""
    site = lab.add_site("a", "symmetric")
    other = lab.add_site("b", "symmetric")
    turn = ["--turn-uri", f"turn:{TURN_ADDRESS}:{TURN_PORT}", "--turn-secret", TURN_SECRET]
    with coturn(lab) as certificate, hubbub(lab, tmp_path, *turn, turn=False) as url:
        async with (
            async_playwright() as playwright,
            lab_page(playwright, site.hosts[0], url, certificate.cert) as one,
            lab_page(playwright, other.hosts[0], url, certificate.cert) as two,
        ):
            await one.evaluate("enter('restart', 'w1', {send: true})")
            await two.evaluate("enter('restart', 'w2', {send: true})")
            await one.wait_for_function("connectedTo('w2')", timeout=WAIT * 1000)
            before = await one.evaluate("selectedPair()")
            assert await one.evaluate("echo('w2', 'before')") == "echoed:before"

            lab.flush_nat(site)
            lab.flush_nat(other)
            flushed = time.monotonic()
            await one.wait_for_function(
                "log.some((line) => line.startsWith('w2: ice-restart'))", timeout=WAIT * 1000
            )
            back = "log.lastIndexOf('w2: connected') > log.findIndex((l) => l.includes('restart'))"
            await one.wait_for_function(back, timeout=WAIT * 1000)
            back_after = time.monotonic() - flushed
            after = await one.evaluate("selectedPair()")
            # the same call, on new candidates: data goes, the video plays on
            assert after is not None
            assert after != before
            assert await one.evaluate("echo('w2', 'after')") == "echoed:after"
            played = await one.evaluate("document.getElementById('video-w2').currentTime")
            await one.wait_for_function(
                f"document.getElementById('video-w2').currentTime > {played} + 1",
                timeout=WAIT * 1000,
            )
            assert back_after < WAIT, back_after
