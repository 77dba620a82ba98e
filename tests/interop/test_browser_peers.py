"""A Python peer (hubbub.peer on aiortc) and Chromium in one room, through a real
``hubbub serve``: media both ways, data channels both ways, and offers that collide."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlencode

import pytest
from aiortc import RTCDataChannel
from playwright.async_api import Browser, Page

from hubbub.client import Client
from hubbub.peer import MediaSource, Mesh, Peer
from hubbub.peer.negotiation import Move
from tests.process import hubbub_serve
from tests.sdk.test_commands import assert_recording_has_moving_video, hubbub

pytestmark = pytest.mark.browser

WAIT = 60.0


async def open_page(browser: Browser, page_url: str, hub: str, user: str, **options: str) -> Page:
    page = await browser.new_page()
    query = {"ws": hub.replace("http://", "ws://") + "/", "room": "x", "user": user, **options}
    await page.goto(page_url + "?" + urlencode(query))
    await page.wait_for_function("window.peerState && window.peerState.joined", timeout=30_000)
    return page


async def test_a_hidden_bot_records_the_browsers_video(
    browser: Browser, page_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "browser.mkv"
    secret = "s" * 32
    async with hubbub_serve("--token-secret", secret) as (url, _server):
        token = await mint_token(secret, "rec", "x", "join", "signal", "hidden")
        page = await open_page(browser, page_url, url, "web", send="1", audio="1")
        async with hubbub(
            "record", "--url", url, "--room", "x", "--user", "web", "--out", str(out),
            "--duration", "5", "--token", token,
        ) as bot:  # fmt: skip
            stdout, stderr = await asyncio.wait_for(bot.communicate(), WAIT * 2)
        log = await page.evaluate("peerState.log")
        assert bot.returncode == 0, stderr.decode() + str(log)
        assert "recording web (audio, video)" in stdout.decode()
        # hidden: the browser was never told the bot joined or left
        assert not [line for line in log if line.endswith(" rec")], log
    assert_recording_has_moving_video(out, audio=True)


async def mint_token(secret: str, user: str, room: str, *grants: str) -> str:
    args = ["token", "--user", user, "--room", room, "--token-secret", secret]
    for grant in grants:
        args += ["--grant", grant]
    async with hubbub(*args) as minting:
        stdout, stderr = await minting.communicate()
    assert minting.returncode == 0, stderr.decode()
    return stdout.decode().strip()


async def test_browser_plays_python_video_and_channels_go_both_ways(
    browser: Browser, page_url: str
) -> None:
    got: defaultdict[str, asyncio.Queue[str | bytes]] = defaultdict(asyncio.Queue)

    def on_channel(peer: Peer, channel: RTCDataChannel) -> None:
        channel.on("message", got[channel.label].put_nowait)

    media = MediaSource.test_pattern(audio=False)
    async with (
        hubbub_serve() as (url, _server),
        Client(url, "x", user="py", events=False) as client,
        Mesh(client, media=media, on_datachannel=on_channel) as mesh,
    ):
        page = await open_page(browser, page_url, url, "web")
        peer = await mesh.wait_for_peer("web", timeout=WAIT)
        await page.wait_for_function(
            """() => { const v = document.getElementById('video-py');
                   return v && v.videoWidth === 320 && v.currentTime > 1; }""",
            timeout=WAIT * 1000,
        )
        before = await page.evaluate("document.getElementById('video-py').currentTime")
        await asyncio.sleep(1.0)
        assert await page.evaluate("document.getElementById('video-py').currentTime") > before

        # Python opens, the browser answers on the same channel
        channel = await peer.open_channel("talk", timeout=WAIT)
        channel.send("echo:hello browser")
        async with asyncio.timeout(WAIT):
            assert await got_on(channel) == "echoed:hello browser"
        # the browser opens one, Python reads it
        await page.evaluate("openChannel('py', 'from-web')")
        await page.evaluate("peerState.channels['from-web'].send('hello python')")
        async with asyncio.timeout(WAIT):
            assert await got["from-web"].get() == "hello python"
    media.stop()


async def got_on(channel: RTCDataChannel) -> str | bytes:
    reply: asyncio.Future[str | bytes] = asyncio.get_running_loop().create_future()
    channel.on("message", lambda message: reply.done() or reply.set_result(message))
    return await reply


@pytest.mark.parametrize("python_first", [True, False], ids=["python-impolite", "python-polite"])
async def test_offers_that_collide_still_connect(
    browser: Browser, page_url: str, python_first: bool
) -> None:
    """Both sides offer at once: the impolite side ignores the other's offer, the polite
    side gives its own up (a browser rolls back; aiortc, which cannot, starts afresh)."""
    async with hubbub_serve() as (url, _server):
        page = None
        if not python_first:
            page = await open_page(browser, page_url, url, "web", send="1")
        # polite_offer_after=0: a polite Python peer offers at once instead of waiting
        async with (
            Client(url, "x", user="py", events=False) as client,
            Mesh(client, receive_media=True, polite_offer_after=0) as mesh,
        ):
            if page is None:
                # the browser joins as the newcomer and offers at once as well
                page = await open_page(browser, page_url, url, "web", send="1", offerOnJoin="1")
            try:
                peer = await mesh.wait_for_peer("web", timeout=WAIT)
                await page.wait_for_function(
                    "peerState.peers.py && peerState.peers.py.connected", timeout=WAIT * 1000
                )
            except TimeoutError:
                python_side = mesh.peers.get("web")
                raise AssertionError(
                    f"browser: {await page.evaluate('peerState.log')}; python: "
                    f"{python_side and (python_side.moves, python_side.connection_state)}"
                ) from None
            log = await page.evaluate("peerState.log")
            if python_first:
                assert Move.IGNORE in peer.moves
                assert "py: rolled back for their offer" in log
            else:
                assert Move.REPLACE_AND_ACCEPT in peer.moves
                assert "py: ignored colliding offer" in log
            async with asyncio.timeout(WAIT):
                while not peer.tracks:  # noqa: ASYNC110 - aiortc signals tracks by callback
                    await asyncio.sleep(0.1)
