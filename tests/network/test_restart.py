"""A call whose NAT mapping goes away mid-call (a router restarts, or times its
mappings out) comes back by itself: the peers restart ICE on new mappings."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from tests.network.browser import lab_page
from tests.network.lab import TURN_ADDRESS, Lab
from tests.network.services import TURN_PORT, TURN_SECRET, coturn, hubbub, python_peer

pytestmark = pytest.mark.network

WAIT = 60.0


@pytest.mark.browser
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


async def test_python_peers_connect_anew_when_the_nat_forgets_their_mapping(
    lab: Lab, tmp_path: Path
) -> None:
    """aiortc cannot restart ICE: when the connection fails, the impolite peer makes
    a fresh peer connection and offers, the other answers on a fresh one too. Before,
    a failed connection was closed for good while both members stayed in the room."""
    site = lab.add_site("a", "symmetric")
    other = lab.add_site("b", "symmetric")
    turn = ["--turn-uri", f"turn:{TURN_ADDRESS}:{TURN_PORT}", "--turn-secret", TURN_SECRET]
    with coturn(lab) as certificate, hubbub(lab, tmp_path, *turn, turn=False) as url:
        async with (
            python_peer(site.hosts[0], url, "p1", room="restart", ca=certificate.ca) as p1,
            python_peer(other.hosts[0], url, "p2", room="restart", ca=certificate.ca) as p2,
        ):
            await asyncio.gather(
                p1.ask({"cmd": "connect", "to": "p2", "timeout": WAIT}),
                p2.ask({"cmd": "connect", "to": "p1", "timeout": WAIT}),
            )
            before = await p1.ask({"cmd": "pair", "to": "p2"})
            assert (await p1.ask({"cmd": "echo", "to": "p2", "text": "before"}))["reply"]

            lab.flush_nat(site)
            lab.flush_nat(other)
            async with asyncio.timeout(2 * WAIT):
                while True:
                    await asyncio.sleep(1)
                    now = await p1.ask({"cmd": "pair", "to": "p2"})
                    if now["pc"] != before["pc"] and now["connected"]:
                        break
            assert now["pair"]["local"] != before["pair"]["local"]
            echoed = await p1.ask({"cmd": "echo", "to": "p2", "text": "after", "timeout": WAIT})
            assert echoed["reply"] == "echoed:after"


@pytest.mark.browser
async def test_a_browser_and_a_python_peer_come_back_too(lab: Lab, tmp_path: Path) -> None:
    """The page restarts ICE; the Python peer answers that offer (new ICE
    credentials) on a fresh peer connection, and the page takes the new DTLS and
    SCTP that come with it."""
    site = lab.add_site("a", "symmetric")
    other = lab.add_site("b", "symmetric")
    turn = ["--turn-uri", f"turn:{TURN_ADDRESS}:{TURN_PORT}", "--turn-secret", TURN_SECRET]
    with coturn(lab) as certificate, hubbub(lab, tmp_path, *turn, turn=False) as url:
        async with (
            async_playwright() as playwright,
            lab_page(playwright, site.hosts[0], url, certificate.cert) as page,
            python_peer(other.hosts[0], url, "py", room="mixed", ca=certificate.ca) as python,
        ):
            await page.evaluate("enter('mixed', 'web')")
            await python.ask({"cmd": "connect", "to": "web", "timeout": WAIT})
            before = await python.ask({"cmd": "pair", "to": "web"})
            lab.flush_nat(site)
            lab.flush_nat(other)
            async with asyncio.timeout(2 * WAIT):
                while True:
                    await asyncio.sleep(1)
                    now = await python.ask({"cmd": "pair", "to": "web"})
                    if now["pc"] != before["pc"] and now["connected"]:
                        break
            echoed = await python.ask({"cmd": "echo", "to": "web", "text": "back", "timeout": WAIT})
            assert echoed["reply"] == "echoed:back"
            assert await page.evaluate("echo('py', 'back too')") == "echoed:back too"
