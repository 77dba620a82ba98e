"""The web app's "Test my connection", run by Chromium from inside the lab: behind a
home NAT every check passes; behind a firewall that drops UDP, STUN and TURN over UDP
fail while TURN over TCP and TLS carry a relayed data channel."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from tests.network.browser import lab_page, said_on
from tests.network.lab import Lab, Shape
from tests.network.services import coturn, hubbub

pytestmark = [pytest.mark.network, pytest.mark.browser]


async def _test_connection(page: Page, server_log: Path, within_s: float = 90) -> dict[str, str]:
    await page.click("#connection-test-button")
    try:
        await page.wait_for_selector("li[data-check=verdict]", timeout=within_s * 1000)
    except PlaywrightTimeoutError:
        shown = await page.eval_on_selector_all(
            "#connection-test-results li", "items => items.map(li => li.textContent)"
        )
        text = await asyncio.to_thread(server_log.read_text, errors="replace")
        log = text.splitlines()[-40:]
        raise AssertionError(
            f"no verdict in {within_s} s; the checks so far: {shown}; the page said: "
            f"{said_on(page)}; the server's last lines: {log}"
        ) from None
    checks = await page.eval_on_selector_all(
        "#connection-test-results li",
        "items => items.map(li => [li.dataset.check, li.className.replace('check check-', '')])",
    )
    return dict(checks)


async def test_test_my_connection(lab: Lab, tmp_path: Path) -> None:
    home = lab.add_site("a", "masquerade").hosts[0]
    office = lab.add_site("b", "udp-blocked").hosts[0]
    with coturn(lab) as certificate, hubbub(lab, tmp_path) as url:
        async with (
            async_playwright() as playwright,
            lab_page(playwright, home, url, certificate.cert, web_app=True) as at_home,
            lab_page(playwright, office, url, certificate.cert, web_app=True) as at_office,
        ):
            log = tmp_path / "hubbub.log"  # hubbub(lab, tmp_path)'s
            home_checks, office_checks = await asyncio.gather(
                _test_connection(at_home, log), _test_connection(at_office, log)
            )
            address = await at_home.text_content("li[data-check=stun]")
    assert home_checks == {
        "server": "ok", "stun": "ok", "turn udp": "ok", "turn tcp": "ok", "turn tls": "ok",
        "relay": "ok", "verdict": "ok",
    }  # fmt: skip
    assert address is not None
    assert "your public address is 203.0.113.21:" in address  # the home router's
    assert office_checks == {
        "server": "ok", "stun": "fail", "turn udp": "fail", "turn tcp": "ok", "turn tls": "ok",
        "relay": "ok", "verdict": "ok",
    }  # fmt: skip


async def test_the_check_ends_in_its_own_time_on_a_slow_uplink(lab: Lab, tmp_path: Path) -> None:
    """At 0.1 Mbit/s the megabyte the relay check sends would take 80 s: the check
    times what gets through in its own time (``RELAY_MS``) and ends."""
    slow = lab.add_site(
        "a", "masquerade", uplink=Shape(delay=0.01, loss=0.0, rate_mbit=0.1, queue_bytes=25_000)
    )
    with coturn(lab) as certificate, hubbub(lab, tmp_path) as url:
        async with (
            async_playwright() as playwright,
            lab_page(
                playwright,
                slow.hosts[0],
                url,
                certificate.cert,
                web_app=True,
                app_files_from_disk=True,
            ) as page,
        ):
            checks = await _test_connection(page, tmp_path / "hubbub.log", within_s=60)
            relay = await page.text_content("li[data-check=relay]")
    assert checks["relay"] == "ok", relay
    assert checks["verdict"] == "ok"
    assert relay is not None
    assert "Mbit/s" in relay
