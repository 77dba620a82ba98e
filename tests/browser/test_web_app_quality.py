"""Each tile's connection quality from getStats() in real Chromium, and what the web
app says when a call goes through a relay (a real coturn on loopback) or cannot
connect at all."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.web_app import WAIT, join_app, page_errors, tile
from tests.process import hubbub_serve
from tests.turn import coturn

pytestmark = pytest.mark.browser

TURN_SECRET = "turn-secret-of-the-relay-test"

SYSTEM_LINES = "[...document.querySelectorAll('.system-item')].map((item) => item.textContent)"


async def test_each_tile_shows_how_its_connection_does(start_hub, browser: Browser) -> None:
    url = await start_hub()
    ada = await browser.new_page()
    errors = page_errors(ada)
    bob = await browser.new_page()
    await join_app(ada, url, "bars", "ada")
    await join_app(bob, url, "bars", "bob")
    bars = f"{tile('bob')} .quality"
    await ada.wait_for_selector(f'{bars}[data-level="good"]', timeout=WAIT)
    # the loss and the bitrate come from the second measurement on
    await ada.wait_for_function(
        f"document.querySelector('{bars}').getAttribute('aria-label').includes('bit/s')",
        timeout=WAIT,
    )
    label = await ada.get_attribute(bars, "aria-label")
    assert label is not None
    assert label.startswith("Connection: good · ")
    assert "ms round trip" in label
    assert "% lost" in label
    assert "bit/s" in label
    assert "relay" not in label
    assert errors == []


SUMMARIZE = """async (cases) => {
  const { summarize } = await import("/static/app/quality.js");
  const report = (entries) => new Map(entries.map((entry) => [entry.id, entry]));
  const pair = (rtt, type = "host") => [
    { id: "T", type: "transport", selectedCandidatePairId: "P" },
    { id: "P", type: "candidate-pair", localCandidateId: "L", remoteCandidateId: "R",
      currentRoundTripTime: rtt },
    { id: "L", type: "local-candidate", candidateType: type },
    { id: "R", type: "remote-candidate", candidateType: "host" },
  ];
  const inbound = (received, lost, bytes) => [
    { id: "V", type: "inbound-rtp", packetsReceived: received, packetsLost: lost,
      bytesReceived: bytes },
  ];
  return cases.map(([rtt, type, before, after]) => {
    const first = summarize(report([...pair(rtt, type), ...inbound(...before)]), null, 0);
    return summarize(report([...pair(rtt, type), ...inbound(...after)]), first, 2000);
  }).map(({ level, relay, lossPercent, kbps }) => ({ level, relay, lossPercent, kbps }));
}"""


async def test_the_quality_levels_from_round_trip_and_loss(start_hub, browser: Browser) -> None:
    url = await start_hub()
    page = await browser.new_page()
    await page.goto(f"{url}/")
    results = await page.evaluate(
        SUMMARIZE,
        [
            [0.02, "host", [1000, 0, 100_000], [1100, 0, 350_000]],
            [0.3, "host", [1000, 0, 0], [1100, 0, 0]],
            [0.02, "relay", [1000, 10, 0], [1100, 13, 0]],
            [0.02, "host", [1000, 10, 0], [1090, 20, 0]],
            [0.9, "host", [1000, 0, 0], [1100, 0, 0]],
        ],
    )
    assert results[0] == {"level": "good", "relay": False, "lossPercent": 0, "kbps": 1000}
    assert results[1]["level"] == "fair"
    assert results[2]["relay"] is True
    assert results[2]["level"] == "fair"  # 3 lost of 103
    assert results[3] == {"level": "poor", "relay": False, "lossPercent": 10, "kbps": 0}
    assert results[4]["level"] == "poor"


@pytest.fixture
async def relay_only_browser() -> AsyncIterator[Browser]:
    """Chromium that sends UDP only through a relay: a network that allows no direct path."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_ARGS, "--webrtc-ip-handling-policy=disable_non_proxied_udp"],
        )
        try:
            yield browser
        finally:
            await browser.close()


async def test_a_call_through_a_relay_says_so(relay_only_browser: Browser) -> None:
    async with (
        coturn(TURN_SECRET) as turn_port,
        hubbub_serve(
            "--turn-uri", f"turn:127.0.0.1:{turn_port}?transport=tcp",
            "--turn-secret", TURN_SECRET,
        ) as (url, _process),
    ):  # fmt: skip
        ada = await relay_only_browser.new_page()
        bob = await relay_only_browser.new_page()
        await join_app(ada, url, "far", "ada")
        await join_app(bob, url, "far", "bob")
        await ada.wait_for_function(
            f"({SYSTEM_LINES}).some((line) => line.includes('goes through a relay server'))",
            timeout=WAIT,
        )
        label = await ada.get_attribute(f"{tile('bob')} .quality", "aria-label")
        assert label is not None
        assert label.endswith("through a relay")


async def test_a_connection_that_fails_is_explained(start_hub, browser: Browser) -> None:
    url = await start_hub()
    ada = await browser.new_page()
    bob = await browser.new_page()
    await join_app(ada, url, "walls", "ada")
    await join_app(bob, url, "walls", "bob")
    await ada.wait_for_selector(f"{tile('bob')} .quality[data-level]", timeout=WAIT)
    # The peer connection as the library reports a failure (ICE found no path).
    await ada.evaluate(
        """async () => {
          const { state } = await import("/static/app/state.js");
          const participant = state.room.participants.get("bob");
          participant.connectionState = "failed";
          state.room.emit("peer-state", { participant, state: "failed" });
        }"""
    )
    await ada.wait_for_selector(f"{tile('bob')} .tile-status.problem", timeout=WAIT)
    assert await ada.inner_text(f"{tile('bob')} .tile-status") == "Can't connect"
    lines = await ada.evaluate(SYSTEM_LINES)
    assert any(
        line.startswith("Could not connect to bob.") and "no relay (TURN)" in line for line in lines
    ), lines
    assert await ada.is_hidden(f"{tile('bob')} .quality")
