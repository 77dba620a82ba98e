"""hubbub.js in rooms whose calls go through Janus, in real Chromium: a room of six in
SFU mode where every page shows every other member's live video, and the live switch
from a mesh to the SFU and back, with each page's frames counted across it; Janus
killed and started again during a call, the pages back by themselves; a large camera
sent in simulcast layers, each subscriber taking the one its tile's size asks for.

Janus is the test's own, in a network namespace (tests/janus.py); the pages reach it
over the veth pair, and nothing leaves the machine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest
from playwright.async_api import Browser, Page

from hubbub.server import ServerSettings
from tests.browser.pages import goto_ready, page_server, record_what_it_says
from tests.browser.sfu_page import sfu_page
from tests.conftest import ServerFactory
from tests.janus import JanusLab, janus_lab, needs_janus

pytestmark = [pytest.mark.browser, needs_janus()]

WAIT_MS = 30_000


@pytest.fixture
async def lab() -> AsyncIterator[JanusLab]:
    async with janus_lab() as running:
        yield running


def settings_for(lab: JanusLab, media_mode: str) -> ServerSettings:
    return ServerSettings(
        janus_url=[lab.url],
        janus_api_secret=lab.api_secret,
        janus_admin_key=lab.admin_key,
        media_mode=media_mode,
    )


@asynccontextmanager
async def open_page(browser: Browser, hub_url: str) -> AsyncIterator[Page]:
    async with page_server({"/": lambda request: sfu_page(hub_url)}) as page_url:
        page = await browser.new_page()
        # (the lab's veth pair, made just before, can make Chromium drop the first load)
        await goto_ready(page, page_url + "/", record_what_it_says(page))
        yield page


async def test_six_members_in_sfu_mode_each_see_every_other(
    lab: JanusLab, start_hub: ServerFactory, browser: Browser
) -> None:
    hub_url = await start_hub(settings_for(lab, "sfu"))
    names = ["ann", "ben", "cat", "dan", "eve", "fay"]
    async with open_page(browser, hub_url) as page:
        for name in names:
            assert await page.evaluate(f"enter('{name}', 'six')") == name
        for name in names:
            others = [other for other in names if other != name]
            await page.wait_for_function(
                f"live('{name}', {others!r})", timeout=WAIT_MS, polling=200
            )
        assert await page.evaluate("Object.values(modes).every((m) => m.includes('sfu'))")
        # No peer connection between the members: the media goes through Janus.
        meshed = await page.evaluate(
            "Object.values(rooms).flatMap((r) => [...r.participants.values()])"
            ".filter((p) => p.peerConnection).length"
        )
        assert meshed == 0
        assert await page.evaluate("errors") == []


async def test_the_live_switch_from_mesh_to_sfu_and_back(
    lab: JanusLab, start_hub: ServerFactory, browser: Browser
) -> None:
    settings = replace(settings_for(lab, "auto"), mesh_max_participants=4)
    hub_url = await start_hub(settings)
    names = ["ann", "ben", "cat", "dan"]
    async with open_page(browser, hub_url) as page:
        for name in names:
            await page.evaluate(f"enter('{name}', 'switch')")

        async def all_live(members: list[str]) -> None:
            for name in members:
                others = [other for other in members if other != name]
                await page.wait_for_function(
                    f"live('{name}', {others!r})", timeout=WAIT_MS, polling=200
                )

        await all_live(names)
        assert await page.evaluate("Object.values(modes).flat()") == []
        await page.evaluate(
            "for (const m of Object.keys(gaps)) for (const o in gaps[m]) gaps[m][o] = 0"
        )
        # The fifth sender moves the call to Janus.
        await page.evaluate("enter('eve', 'switch')")
        names.append("eve")
        await page.wait_for_function(
            "Object.values(modes).every((m) => m.at(-1) === 'sfu')", timeout=WAIT_MS
        )
        await all_live(names)
        await page.wait_for_function(
            "Object.values(rooms).flatMap((r) => [...r.participants.values()])"
            ".every((p) => !p.peerConnection)",
            timeout=WAIT_MS,
        )
        await all_live(names)
        gaps = await page.evaluate("gaps")
        for name in ["ann", "ben", "cat", "dan"]:
            for other in ["ann", "ben", "cat", "dan"]:
                if other != name:
                    assert gaps[name][other] < 2000, (name, other, gaps[name][other])
        # Down to two senders: back to a mesh.
        await page.evaluate(
            "for (const m of Object.keys(gaps)) for (const o in gaps[m]) gaps[m][o] = 0"
        )
        for name in ["eve", "dan", "cat"]:
            await page.evaluate(f"rooms['{name}'].leave()")
        await page.wait_for_function(
            "['ann', 'ben'].every((m) => modes[m].at(-1) === 'mesh')", timeout=WAIT_MS
        )
        await page.wait_for_function(
            "['ann', 'ben'].every((m) => [...rooms[m].participants.values()]"
            ".every((p) => p.peerConnection && p.connectionState === 'connected'))",
            timeout=WAIT_MS,
        )
        await all_live(["ann", "ben"])
        gaps = await page.evaluate("gaps")
        assert gaps["ann"]["ben"] < 2000
        assert gaps["ben"]["ann"] < 2000
        assert await page.evaluate("errors") == []


async def test_candidates_in_flight_when_a_peer_leaves_and_the_room_goes_back_are_no_error(
    lab: JanusLab, start_hub: ServerFactory, browser: Browser
) -> None:
    # On a busy machine a page trickles its candidates only after their peer left (the
    # server refuses them, no-such-peer) or after the room went back to a mesh (the media
    # server's, wrong-media-mode): hubbub.js takes such a refusal as the stale reply it
    # is, not as an error of the room's.
    settings = replace(settings_for(lab, "auto"), mesh_max_participants=2)
    hub_url = await start_hub(settings)
    async with open_page(browser, hub_url) as page:
        await page.evaluate(
            """() => {
            // Candidates are held until the room is a mesh again after the SFU.
            window.heldCandidates = 0;
            const backToMesh = () =>
              ["ann", "ben"].every((m) => modes[m]?.includes("sfu") && modes[m].at(-1) === "mesh");
            const prototype = RTCPeerConnection.prototype;
            const property = Object.getOwnPropertyDescriptor(prototype, "onicecandidate");
            Object.defineProperty(prototype, "onicecandidate", {
              get() { return property.get.call(this); },
              set(handler) {
                property.set.call(this, handler && (async (event) => {
                  if (Object.values(modes).some((m) => m.includes("sfu")) && !backToMesh()) {
                    heldCandidates += 1;
                    while (!backToMesh()) await new Promise((resolve) => setTimeout(resolve, 20));
                  }
                  handler(event);
                }));
              },
            });
          }"""
        )
        for name in ["ann", "ben"]:
            await page.evaluate(f"enter('{name}', 'late')")
        await page.wait_for_function("live('ann', ['ben']) && live('ben', ['ann'])")
        await page.evaluate("enter('cat', 'late')")
        await page.wait_for_function(
            "['ann', 'ben', 'cat'].every((m) => modes[m].at(-1) === 'sfu')", timeout=WAIT_MS
        )
        await page.wait_for_function("heldCandidates > 0", timeout=WAIT_MS)
        await page.evaluate("rooms['cat'].leave()")
        await page.wait_for_function(
            "['ann', 'ben'].every((m) => modes[m].at(-1) === 'mesh')", timeout=WAIT_MS
        )
        await page.wait_for_function(
            "live('ann', ['ben']) && live('ben', ['ann'])", timeout=WAIT_MS, polling=200
        )
        await asyncio.sleep(1.0)  # time for a refusal to come back
        assert await page.evaluate("errors") == []


async def test_janus_killed_and_started_again_the_pages_are_back_within_five_seconds(
    lab: JanusLab, start_hub: ServerFactory, browser: Browser
) -> None:
    hub_url = await start_hub(settings_for(lab, "sfu"))
    names = ["ann", "ben", "cat"]
    async with open_page(browser, hub_url) as page:
        for name in names:
            await page.evaluate(f"enter('{name}', 'crash')")

        async def all_live(timeout: float) -> None:
            for name in names:
                others = [other for other in names if other != name]
                await page.wait_for_function(
                    f"live('{name}', {others!r}, 1000)", timeout=timeout, polling=100
                )

        await all_live(WAIT_MS)
        await page.evaluate(
            "window.before = Object.fromEntries("
            "Object.entries(modes).map(([m, seen]) => [m, seen.length]))"
        )
        lab.kill()
        # Every page is told (media-mode again, the media server lost) and its videos stop.
        await page.wait_for_function(
            "Object.entries(modes).every(([m, seen]) => seen.length > before[m])",
            timeout=WAIT_MS,
        )
        for name in names:
            others = [other for other in names if other != name]
            await page.wait_for_function(
                f"!{others!r}.some((o) => live('{name}', [o], 1000))",
                timeout=WAIT_MS,
                polling=100,
            )
        await lab.start()
        started = asyncio.get_running_loop().time()
        # hubbub.js publishes and subscribes again by itself, on the Janus that is back.
        await all_live(WAIT_MS)
        back_after = asyncio.get_running_loop().time() - started
        assert back_after < 5.0, back_after
        assert await page.evaluate("errors") == []


async def test_a_large_camera_is_sent_in_three_layers_and_each_tile_takes_its_size(
    lab: JanusLab, start_hub: ServerFactory, browser: Browser
) -> None:
    hub_url = await start_hub(settings_for(lab, "sfu"))
    async with open_page(browser, hub_url) as page:
        await page.evaluate("enter('ann', 'layers', true, [960, 540])")
        await page.evaluate("enter('ben', 'layers')")
        await page.wait_for_function("live('ben', ['ann'])", timeout=WAIT_MS, polling=200)
        assert await page.evaluate("rooms.ben._sfu.feeds.get('ann').simulcast") is True
        # ben's own camera is small: one layer.
        assert await page.evaluate("!rooms.ann._sfu.feeds.get('ben').simulcast") is True
        shown = 'document.querySelector(\'video[data-member="ben"][data-of="ann"]\').videoWidth'
        for tile, width in ((200, 240), (1000, 960), (500, 480)):
            await page.evaluate(f"rooms.ben.setReceiveSize('ann', {tile})")
            await page.wait_for_function(f"{shown} === {width}", timeout=WAIT_MS, polling=200)
        assert await page.evaluate("errors") == []
