"""hubbub.js and the web app come back by themselves after a lost connection or a
server restart, in real Chromium against ``hubbub serve`` (docs/browser.md,
"Connection state"; docs/protocol.md, "Reconnecting and resuming").

The page reaches the server through the fault tests' TCP proxy, which cuts a
connection with no close frame (both sides get a reset, as when a network drops) and
can refuse new connections for as long as a test wants the network to stay down.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Page

from tests.browser.pages import page_server
from tests.browser.test_hubbub_js import CHANNEL_ROUND_TRIP, _free_port, _harness
from tests.browser.test_web_app import MESSAGES_SHOWN, join_app
from tests.faults.resuming import CuttingProxy, wait_for
from tests.integration.test_metrics import METRICS_KEY, scrape
from tests.process import hubbub_serve
from tests.wsclient import Client

pytestmark = pytest.mark.browser

WAIT_MS = 30_000
LOOSE_LIMITS = ("--message-rate", "2000", "--message-burst", "2000")
METRICS = ("--metrics-key", METRICS_KEY)


class Proxy(CuttingProxy):
    """The fault tests' proxy, which can also keep the network down: while
    ``refusing``, every new connection is reset at once."""

    refusing = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        await super()._accept(reader, writer)

    def cut_all(self) -> int:
        rng = random.Random(0)
        cut = 0
        while self.cut_one(rng):
            cut += 1
        return cut


@contextlib.asynccontextmanager
async def proxy_to(url: str) -> AsyncIterator[tuple[Proxy, str]]:
    parts = urlsplit(url)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 0)
    proxy_url = await proxy.start()
    try:
        yield proxy, proxy_url
    finally:
        await proxy.close()


class Member:
    """A member on a plain WebSocket (straight to the server) that talks to the room
    and records everything it is sent, checking that each ``n`` is the next."""

    def __init__(self, client: Client, user_id: str) -> None:
        self.client = client
        self.user_id = user_id
        self.got: list[dict[str, Any]] = []
        self.broken: str | None = None
        """What went wrong while reading (a message out of its ``n`` order)."""
        self._refs = itertools.count(1)
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def join(cls, url: str, room: str, user_id: str) -> Member:
        client = await Client.connect(url, "/ws")
        await client.join(room, user_id)
        return cls(client, user_id)

    async def _read(self) -> None:
        try:
            while True:
                self.got.append(await self.client.recv(timeout=3600))
        except AssertionError as error:
            self.broken = str(error)

    def seen(self, type_: str, **fields: Any) -> list[dict[str, Any]]:
        return [
            m
            for m in self.got
            if m["type"] == type_ and all(m.get(k) == v for k, v in fields.items())
        ]

    async def chat(self, text: str) -> None:
        await self.client.send({"type": "chat", "message": text, "clientId": text})

    async def signal(self, target: str, k: int) -> None:
        await self.client.send(
            {"type": "signal", "targetUserId": target, "signal": {"type": "probe", "k": k}}
        )

    async def confirm(self) -> None:
        """Until the server has handled everything sent before (its pong is back)."""
        ref = f"p{next(self._refs)}"
        await self.client.send({"type": "ping", "ref": ref})
        await wait_for(lambda: bool(self.seen("pong", ref=ref)) or self.broken is not None, 20)
        assert self.broken is None, self.broken

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self.client.close()


async def open_harness(browser: Browser, page_url: str) -> Page:
    page = await browser.new_page()
    await page.goto(page_url + "/")
    await page.wait_for_function("window.ready === true")
    return page


def events_of(user: str, type_: str, fields: str) -> str:
    return (
        f"events.filter((e) => e.user === '{user}' && e.type === '{type_}').map((e) => [{fields}])"
    )


async def test_a_cut_connection_resumes_with_nothing_lost_or_doubled(browser: Browser) -> None:
    """Alice's connection is cut three times while carol chats and signals to her: she
    resumes each time, gets every message once and in order, her peer connection to
    bob goes on, what she wrote meanwhile goes out once, and nobody sees her leave."""
    async with (
        hubbub_serve(*LOOSE_LIMITS) as (url, _process),
        proxy_to(url) as (proxy, proxy_url),
        page_server({"/": lambda request: _harness(url)}) as page_url,
    ):
        page = await open_harness(browser, page_url)
        await page.evaluate(f"enter('alice', {{hub: {proxy_url!r}}})")
        await page.evaluate("enter('bob')")
        carol = await Member.join(url, "test", "carol")
        try:
            await page.wait_for_function("rooms.alice.participants.has('carol')")
            assert await page.evaluate(CHANNEL_ROUND_TRIP, "before") == "before"
            await page.evaluate(
                "window.pcBefore = rooms.alice.participants.get('bob').peerConnection"
            )
            sent = itertools.count()

            async def talk(count: int) -> None:
                for _ in range(count):
                    k = next(sent)
                    await carol.chat(f"c{k}")
                    await carol.signal("alice", k)

            for cut in range(1, 4):
                await talk(10)
                assert proxy.cut_all() >= 1
                proxy.refusing = True
                await page.wait_for_function(
                    "rooms.alice.state === 'reconnecting'", timeout=WAIT_MS
                )
                # While she is away: the room talks to her, she writes, and her peer
                # connection's signaling waits for her.
                await talk(10)
                await page.evaluate(f"rooms.alice.sendChat('away {cut}')")
                await carol.confirm()
                proxy.refusing = False
                await page.evaluate("rooms.alice.reconnectNow()")
                await page.wait_for_function(
                    f"seen({{user: 'alice', type: 'resumed'}}) === {cut}", timeout=WAIT_MS
                )
                await talk(10)

            total = next(sent)
            await page.wait_for_function(
                f"seen({{user: 'alice', type: 'chat', from: 'carol'}}) === {total}"
                f" && seen({{user: 'alice', type: 'server', kind: 'signal', from: 'carol'}})"
                f" === {total} && rooms.alice.pendingChats.length === 0",
                timeout=WAIT_MS,
            )
            await page.wait_for_function(
                "seen({user: 'bob', type: 'chat', from: 'alice'}) === 3", timeout=WAIT_MS
            )
            assert await page.evaluate(CHANNEL_ROUND_TRIP, "after") == "after"
            await carol.confirm()

            chats = await page.evaluate(events_of("alice", "chat", "e.from, e.message, e.missed"))
            assert chats == [["carol", f"c{k}", None] for k in range(total)]
            signals = await page.evaluate(
                "events.filter((e) => e.user === 'alice' && e.type === 'server'"
                " && e.kind === 'signal' && e.from === 'carol').map((e) => e.k)"
            )
            assert signals == list(range(total))
            # One session throughout: its numbering never restarts, skips or repeats.
            numbers = await page.evaluate(
                "events.filter((e) => e.user === 'alice' && e.type === 'server').map((e) => e.n)"
            )
            assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
            resumes = await page.evaluate(events_of("alice", "resumed", "e.replayed"))
            assert len(resumes) == 3
            assert all(replayed >= 20 for [replayed] in resumes), resumes
            states = await page.evaluate(
                events_of("alice", "connection-state", "e.state, e.reason")
            )
            assert states == [["reconnecting", "connection-lost"], ["open", "resumed"]] * 3
            assert await page.evaluate(events_of("alice", "rejoined", "e.reason")) == []
            assert await page.evaluate(
                "rooms.alice.participants.get('bob').peerConnection === window.pcBefore"
            )
            # What alice wrote while away reached the room once each, in order.
            bob_got = await page.evaluate(events_of("bob", "chat", "e.from, e.message"))
            assert [m for who, m in bob_got if who == "alice"] == ["away 1", "away 2", "away 3"]
            assert [m["message"] for m in carol.seen("chat", userId="alice")] == [
                f"away {cut}" for cut in (1, 2, 3)
            ]
            # Nobody saw her leave or join again; the others saw her reconnecting.
            assert carol.seen("user-left") == []
            assert carol.seen("user-joined", userId="alice") == []
            assert len(carol.seen("participant-updated", userId="alice")) == 6
            assert await page.evaluate("seen({user: 'bob', type: 'participant-left'})") == 0
            away = "seen({user: 'bob', type: 'participant-updated', connection: 'reconnecting'})"
            assert await page.evaluate(away) >= 3
            await page.wait_for_function(
                "rooms.bob.participants.get('alice').connection === 'connected'"
            )
            # (bob found alice in room-joined: she never joined again after that)
            bob_saw_join = "seen({user: 'bob', type: 'participant-joined', from: 'alice'})"
            assert await page.evaluate(bob_saw_join) == 0
            assert (
                await page.evaluate(
                    "seen({user: 'alice', type: 'participant-joined', from: 'carol'})"
                )
                == 1
            )
        finally:
            await carol.close()
        await page.close()


async def test_a_refused_resume_rejoins_and_shows_the_missed_chat_once(
    browser: Browser,
) -> None:
    """Ada's network stays down past the server's grace period: the web app rejoins
    as a new member, says so, and its chat list has every message, each once."""
    async with (
        hubbub_serve("--resume-grace", "1", "--history-on-join", "3", *LOOSE_LIMITS, *METRICS) as (
            url,
            _process,
        ),
        proxy_to(url) as (proxy, proxy_url),
    ):
        page = await browser.new_page()
        carol = await Member.join(url, "grace", "carol")
        try:
            await join_app(page, proxy_url, "grace", "ada")
            for k in range(5):
                await carol.chat(f"c{k}")
            await page.wait_for_function(f"({MESSAGES_SHOWN})().length === 5", timeout=WAIT_MS)

            proxy.refusing = True
            proxy.cut_all()
            await page.wait_for_selector("#connection-banner:not([hidden])", timeout=WAIT_MS)
            assert "Reconnecting" in await page.inner_text("#connection-banner")
            await wait_for(lambda: bool(carol.seen("user-left", userId="ada")), 30)
            # More than room-joined's history holds: the rest comes page by page.
            for k in range(5, 12):
                await carol.chat(f"c{k}")
            await carol.confirm()
            proxy.refusing = False

            # (the toast shows for a few seconds, from the moment the banner goes)
            await page.wait_for_function(
                "document.getElementById('connection-banner').hidden"
                " && [...document.querySelectorAll('.toast')].some((t) =>"
                " t.textContent.startsWith('Reconnected. Calls are set up again'))",
                timeout=WAIT_MS,
            )
            await page.wait_for_function(f"({MESSAGES_SHOWN})().length >= 12", timeout=WAIT_MS)
            await asyncio.sleep(0.5)  # anything doubled would be there by now
            assert await page.evaluate(MESSAGES_SHOWN) == [f"c{k}" for k in range(12)]
            # It tried to resume first, and was told plainly it could not.
            now = await scrape(url)
            assert now("hubbub_messages_received_total", type="resume") == 1
            assert now("hubbub_errors_total", code="resume-failed") == 1
            # She is back as a new member: the room saw her go and come.
            await wait_for(lambda: bool(carol.seen("user-joined", userId="ada")), 30)
            await carol.chat("welcome back")
            await page.wait_for_function(
                f"({MESSAGES_SHOWN})().includes('welcome back')", timeout=WAIT_MS
            )
        finally:
            await carol.close()
        await page.close()


async def test_a_server_restart_brings_the_page_back_by_itself(
    browser: Browser, tmp_path: Path
) -> None:
    """SIGTERM: the page waits the delay the server asked for, joins the new process
    afresh (no resume is tried: sessions do not outlive a process), and the web app
    shows the restart and the return."""
    port = _free_port()
    args = ("--port", str(port), "--data-dir", str(tmp_path), "--reconnect-spread", "1", *METRICS)
    hub_url = f"http://127.0.0.1:{port}"
    async with page_server({"/": lambda request: _harness(hub_url)}) as page_url:
        page = await browser.new_page()
        app = await browser.new_page()
        async with hubbub_serve(*args) as (url, process):
            await page.goto(page_url + "/")
            await page.wait_for_function("window.ready === true")
            await page.evaluate("enter('alice', {room: 'restart'})")
            await page.evaluate("enter('bob', {room: 'restart'})")
            await join_app(app, url, "restart", "dan")
            await page.evaluate("rooms.alice.sendChat('before')")
            await page.wait_for_function("seen({user: 'bob', type: 'chat', message: 'before'})")
            process.send_signal(signal.SIGTERM)
            await page.wait_for_function(
                "rooms.alice.state === 'reconnecting' && rooms.bob.state === 'reconnecting'",
                timeout=WAIT_MS,
            )
            await app.wait_for_selector("#connection-banner:not([hidden])", timeout=WAIT_MS)
            assert "The server is restarting" in await app.inner_text("#connection-banner")
            async with asyncio.timeout(10):
                await process.wait()
        async with hubbub_serve(*args) as (url, _process):
            await page.wait_for_function(
                "rooms.alice.state === 'open' && rooms.bob.state === 'open'"
                " && rooms.alice.participants.has('bob') && rooms.alice.participants.has('dan')",
                timeout=WAIT_MS,
            )
            await app.wait_for_selector("#connection-banner", state="hidden", timeout=WAIT_MS)
            for user in ("alice", "bob"):
                advice = await page.evaluate(
                    f"events.filter((e) => e.user === '{user}' && e.type === 'server'"
                    " && e.kind === 'reconnect').map((e) => e.afterMs)"
                )
                assert len(advice) == 1, advice
                assert 0 <= advice[0] <= 1000, advice
                attempts = await page.evaluate(
                    events_of(user, "reconnecting", "e.attempt, e.delayMs, e.reason")
                )
                assert attempts[0] == [1, advice[0], "server-restart"], attempts
                # Joined afresh at once: a resume would have been refused first.
                assert await page.evaluate(events_of(user, "rejoined", "e.reason")) == [
                    ["server-restart"]
                ]
                assert await page.evaluate(events_of(user, "resumed", "e.replayed")) == []
            assert (await scrape(url))("hubbub_messages_received_total", type="resume") == 0
            assert await page.evaluate(CHANNEL_ROUND_TRIP, "after a restart") == "after a restart"
            await page.evaluate("rooms.alice.sendChat('after')")
            await page.wait_for_function("seen({user: 'bob', type: 'chat', message: 'after'})")
            assert await page.evaluate(events_of("bob", "chat", "e.message")) == [
                ["before"],
                ["after"],
            ]
        await app.close()
        await page.close()
