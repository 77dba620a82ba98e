"""hubbub.js, the browser library, in real Chromium against ``hubbub serve``.

The test page comes from its own loopback origin and imports ``/hubbub.js`` from the
hub, as an app's site would. Several rooms can live in one page: each is a separate
client with its own WebSocket and peer connections, which keeps these tests light.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from tests.browser.pages import page_server
from tests.js_modules import STATIC, graph
from tests.process import hubbub_serve
from tests.sdk.test_resume import proxy_for
from tests.wsclient import Client

pytestmark = pytest.mark.browser

WAIT_MS = 30_000

HARNESS_JS = (Path(__file__).parent / "harness.js").read_text()

HARNESS = """<!doctype html>
<html><head><meta charset="utf-8"><title>hubbub.js test</title></head>
<body><button id="share">share</button>
<script type="module">
import * as hubbub from "%(hub)s/hubbub.js";
window.hubbub = hubbub;
window.HUB = "%(hub)s";
%(harness)s
window.ready = true;
</script></body></html>
"""


def _harness(hub_url: str) -> str:
    return HARNESS % {"hub": hub_url, "harness": HARNESS_JS}


@dataclass
class Hub:
    url: str
    page: Page


@pytest.fixture
async def hub(browser: Browser) -> AsyncIterator[Hub]:
    async with (
        hubbub_serve() as (url, _process),
        page_server({"/": lambda request: _harness(url)}) as page_url,
    ):
        page = await browser.new_page()
        await page.goto(page_url + "/")
        await page.wait_for_function("window.ready === true")
        yield Hub(url, page)
        await page.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_join_resolves_on_room_joined_and_rejects_refusals(hub: Hub) -> None:
    page = hub.page
    assert await page.evaluate("enter('alice')") == "alice"
    assert await page.evaluate("rooms.alice.state") == "open"
    assert await page.evaluate("rooms.alice.sessionId.length") >= 16

    # Refusals come back as HubbubError with the server's code, and nothing is left open.
    taken = await page.evaluate(
        "hubbub.join(HUB, {room: 'test', userId: 'alice'}).then(() => 'joined', (e) => e.code)"
    )
    assert taken == "user-id-taken"
    unreachable = await page.evaluate(
        "(url) => hubbub.join(url, {room: 'test'}).then(() => 'joined', (e) => e.code)",
        f"ws://127.0.0.1:{_free_port()}/",
    )
    assert unreachable == "unreachable"

    # A newcomer knows at once who is there; the others hear of it.
    assert await page.evaluate("enter('bob')") == "bob"
    assert await page.evaluate("[...rooms.bob.participants.keys()]") == ["alice"]
    assert await page.evaluate("rooms.bob.participants.get('alice').polite") is True
    await page.wait_for_function("seen({user: 'alice', type: 'participant-joined', from: 'bob'})")
    assert await page.evaluate("rooms.alice.participants.get('bob').polite") is False

    # Chat reaches the others, not the sender.
    await page.evaluate("rooms.bob.sendChat('hi alice')")
    await page.wait_for_function(
        "seen({user: 'alice', type: 'chat', from: 'bob', message: 'hi alice'})"
    )
    assert await page.evaluate("seen({user: 'bob', type: 'chat'})") == 0

    # A server-assigned name when none is given.
    assigned = await page.evaluate("hubbub.join(HUB, {room: 'test'}).then((r) => r.userId)")
    assert assigned.startswith("user-")

    await page.evaluate("rooms.bob.leave()")
    await page.wait_for_function("seen({user: 'alice', type: 'participant-left', from: 'bob'})")
    assert await page.evaluate("rooms.bob.state") == "closed"


async def test_a_join_waits_for_a_user_id_held_for_a_session_that_may_resume(
    browser: Browser,
) -> None:
    # ann's connection drops without a word: her session may resume for 2 s, and holds
    # her id. A page that joins as ann meanwhile (a reload after a crash) waits for
    # the id (heldForMs) and gets in, unless told not to wait.
    async with (
        hubbub_serve("--resume-grace", "2") as (url, _process),
        page_server({"/": lambda request: _harness(url)}) as page_url,
    ):
        proxy, proxy_url = await proxy_for(url)
        try:
            async with await Client.connect(proxy_url) as old:
                await old.join("test", "ann")
                proxy.cut_all()
                page = await browser.new_page()
                said: list[str] = []
                page.on("console", lambda message: said.append(message.text))
                await page.goto(page_url + "/")
                await page.wait_for_function("window.ready === true")
                refused = await page.evaluate(
                    "hubbub.join(HUB, {room: 'test', userId: 'ann', limits: {heldIdWaitMs: 0}})"
                    ".then(() => 'joined', (e) => [e.code, e.heldForMs])"
                )
                assert refused[0] == "user-id-taken"
                assert 0 < refused[1] <= 2000
                started = asyncio.get_running_loop().time()
                assert await page.evaluate("enter('ann')") == "ann"
                waited = asyncio.get_running_loop().time() - started
                assert 0.5 < waited < 2 + 5
                assert any("user id ann is held for a session" in line for line in said)
                assert await page.evaluate("rooms.ann.state") == "open"
        finally:
            await proxy.close()


IMPORT_EVERY_MODULE = """async ([hub, modules]) => {
  const root = await import(hub + "/hubbub.js");
  const under = await import(hub + "/static/hubbub.js");
  const protocol = await import(hub + "/protocol.js");
  const found = {
    names: [Object.keys(root).sort(), Object.keys(under).sort()],
    // one page, one library: the test page's own import is this one
    pageLibrary: root === hubbub,
    reExported: root.FINAL_CLOSE_CODES === protocol.FINAL_CLOSE_CODES,
    nextToIt: [],
    loaded: [],
  };
  for (const [prefix, library, other] of [["/", root, under], ["/static/", under, root]]) {
    const room = await import(hub + prefix + "hubbub/room.js");
    found.nextToIt.push(room.Room === library.Room && room.Room !== other.Room);
    for (const name of modules) {
      await import(hub + prefix + name);
      found.loaded.push(prefix + name);
    }
  }
  return found;
}"""


async def test_a_page_on_another_origin_imports_the_library_and_its_modules(hub: Hub) -> None:
    """The test page is not on the hub's origin: hubbub.js's relative imports resolve
    next to it, whether it is imported as /hubbub.js or as /static/hubbub.js, and
    every module is allowed to another origin."""
    modules = [path.relative_to(STATIC).as_posix() for path in graph(STATIC / "hubbub.js")]
    found = await hub.page.evaluate(IMPORT_EVERY_MODULE, [hub.url, modules])
    root_names, static_names = found["names"]
    assert root_names == static_names
    assert {"join", "Room", "FINAL_CLOSE_CODES", "Sha256", "reconnectDelay"} <= set(root_names)
    assert found["pageLibrary"] is True
    assert found["reExported"] is True
    assert found["nextToIt"] == [True, True]
    assert len(found["loaded"]) == 2 * len(modules) > 20


CONNECTION_AND_CHAT_ALONE = """async (hub) => {
  const { Connection } = await import(hub + "/hubbub/connection.js");
  const { Chat } = await import(hub + "/hubbub/chat.js");
  const { Emitter } = await import(hub + "/hubbub/emitter.js");
  const { DEFAULTS } = await import(hub + "/hubbub/defaults.js");
  const host = Object.assign(new Emitter(), { userId: "solo", limits: DEFAULTS });
  const seen = [];
  let chat = null;
  const connection = new Connection(hub, {
    joinMessage: () => ({ type: "join-room", room: "alone", userId: "solo" }),
    joined: (message, rejoin) => {
      seen.push(["joined", message.userId, rejoin]);
      chat.joined(message, rejoin);
    },
    opened: (message) => {
      seen.push(["opened", message.type]);
      chat.resend();
    },
    message: (message) => {
      if (chat.onError(message)) return;
      if (message.type === "chat-ack") chat.onAck(message);
      seen.push(["message", message.type]);
    },
    closing: () => seen.push(["closing"]),
  });
  chat = new Chat(host, connection);
  connection.on("connection-state", ({ state }) => seen.push(["state", state]));
  await connection.open();
  const entry = chat.send("hello");
  await within("the status of the chat sent", host.once("chat-status"));
  connection.leave();
  return { seen, status: entry.status, seq: entry.seq, storesChat: chat.storesChat };
}"""


async def test_the_connection_and_chat_modules_work_without_a_room(hub: Hub) -> None:
    """A page (a conformance test, say) drives the connection and the chat alone,
    with a host of its own instead of a Room."""
    found = await hub.page.evaluate(CONNECTION_AND_CHAT_ALONE, hub.url)
    assert found["seen"] == [
        ["joined", "solo", False],
        ["state", "open"],
        ["opened", "room-joined"],
        ["message", "chat-ack"],
        ["closing"],
        ["state", "closed"],
    ]
    assert [found["status"], found["seq"], found["storesChat"]] == ["sent", 1, True]


async def test_reconnect_delays_grow_with_jitter(hub: Hub) -> None:
    samples = await hub.page.evaluate(
        """() => [1, 2, 3, 4, 5, 6, 10].map((attempt) => [attempt,
             Array.from({length: 200}, () => hubbub.reconnectDelay(attempt))])"""
    )
    for attempt, delays in samples:
        ceiling = min(10_000, 500 * 2 ** (attempt - 1))
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays), (attempt, delays)
        assert len(set(delays)) > 20, (attempt, delays)  # spread, not one value


async def test_sha256_matches_webcrypto(hub: Hub) -> None:
    # Every padding case (55, 56, 63, 64, 65 bytes...) and updates split anywhere.
    mismatches = await hub.page.evaluate("sha256Mismatches()")
    assert mismatches == []


FRAMES_ADVANCE = """async ([user, peer]) => {
  const frames = async () => {
    const pc = rooms[user].participants.get(peer).peerConnection;
    let decoded = 0;
    (await pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") decoded += s.framesDecoded ?? 0;
    });
    return decoded;
  };
  const deadline = Date.now() + WAIT_MS;
  const pause = () => new Promise((resolve) => setTimeout(resolve, 250));
  let first;
  while ((first = await frames()) === 0) {
    if (Date.now() > deadline) throw new Error(`no video frame from ${peer} at ${user}`);
    await pause();
  }
  while (await frames() <= first) {
    if (Date.now() > deadline) throw new Error(`the video from ${peer} at ${user} stopped`);
    await pause();
  }
}"""


async def _frames_advance(page: Page, user: str, peer: str) -> None:
    # wait_for_function takes no promise (getStats is one): the page polls, to a deadline.
    await page.evaluate(FRAMES_ADVANCE, [user, peer])


async def test_media_negotiation_channels_and_ice_restart(hub: Hub) -> None:
    page = hub.page
    # Both join with no camera, then turn it on at the same moment: both sides offer
    # at once, and perfect negotiation has to settle the collision.
    await page.evaluate("enter('alice')")
    await page.evaluate("enter('bob')")
    await page.wait_for_function(
        "rooms.alice.participants.get('bob')?.connectionState === 'connected'"
        " && rooms.bob.participants.get('alice')?.connectionState === 'connected'",
        timeout=30_000,
    )
    await page.evaluate(
        "Promise.all([rooms.alice.setCamera(true), rooms.bob.setCamera(true),"
        " rooms.alice.setMicrophone(true), rooms.bob.setMicrophone(true)])"
    )
    await page.wait_for_function(
        "seen({user: 'alice', type: 'stream', from: 'bob', kind: 'camera'})"
        " && seen({user: 'bob', type: 'stream', from: 'alice', kind: 'camera'})",
        timeout=30_000,
    )
    await _frames_advance(page, "alice", "bob")
    await _frames_advance(page, "bob", "alice")
    # Chromium decodes remote audio (and so measures its level) only when it plays.
    await page.evaluate(
        """() => {
          for (const { stream } of rooms.bob.participants.get('alice').streams.values()) {
            const audio = new Audio();
            audio.muted = true;
            audio.srcObject = stream;
            audio.play();
            document.body.append(audio);
          }
        }"""
    )
    await page.wait_for_function(
        "rooms.bob.participants.get('alice').media.video === true"
        " && rooms.bob.participants.get('alice').audioLevel() > 0",
        timeout=20_000,
    )

    # Camera off: the others are told, and the camera track stops.
    await page.evaluate("rooms.alice.setCamera(false)")
    await page.wait_for_function("rooms.bob.participants.get('alice').media.video === false")
    assert await page.evaluate("rooms.alice.localStream.getVideoTracks().length") == 0

    # Screen sharing adds a stream the others see as a screen; stopping removes it.
    await page.evaluate(
        "document.getElementById('share').onclick = () => rooms.alice.startScreenShare()"
    )
    await page.click("#share")  # getDisplayMedia needs a user gesture
    await page.wait_for_function(
        "seen({user: 'bob', type: 'stream', from: 'alice', kind: 'screen'})", timeout=30_000
    )
    assert await page.evaluate("rooms.bob.participants.get('alice').media.screen") is True
    await page.evaluate("rooms.alice.stopScreenShare()")
    await page.wait_for_function(
        "seen({user: 'bob', type: 'stream-removed', from: 'alice', kind: 'screen'})",
        timeout=30_000,
    )

    # Instead of the camera: the camera goes off while the screen is shared, and comes
    # back when sharing stops.
    await page.evaluate("rooms.alice.setCamera(true)")
    await page.wait_for_function("rooms.bob.participants.get('alice').media.video === true")
    await page.evaluate(
        "document.getElementById('share').onclick ="
        " () => rooms.alice.startScreenShare({replaceCamera: true})"
    )
    await page.click("#share")
    await page.wait_for_function(
        "(() => { const m = rooms.bob.participants.get('alice').media;"
        " return m.screen === true && m.video === false; })()",
        timeout=30_000,
    )
    assert await page.evaluate("rooms.alice.localStream.getVideoTracks().length") == 0
    await page.evaluate("rooms.alice.stopScreenShare()")
    await page.wait_for_function(
        "(() => { const m = rooms.bob.participants.get('alice').media;"
        " return m.screen === false && m.video === true; })()",
        timeout=30_000,
    )
    assert await page.evaluate("rooms.alice.media") == {
        "audio": True,
        "video": True,
        "screen": False,
    }
    await _frames_advance(page, "bob", "alice")

    # App channels: reliable and ordered by default; unordered without retransmits.
    received = await page.evaluate("channelExchange()")
    notes = [data for label, sender, data in received["got"] if label == "notes"]
    assert notes == [f"note {i}" for i in range(50)]
    assert ["game", "alice", "move 1"] in received["got"]
    assert received["options"] == {"ordered": False, "maxRetransmits": 0}
    with pytest.raises(Exception, match="hubbub-"):
        await page.evaluate("rooms.alice.channel('hubbub-file:x')")

    # An ICE restart gathers new credentials and the call carries on.
    ufrag = """(user) => rooms[user].participants.get(user === 'alice' ? 'bob' : 'alice')
      .peerConnection.localDescription.sdp.match(/a=ice-ufrag:(\\S+)/)[1]"""
    before = await page.evaluate(ufrag, "alice")
    await page.evaluate("rooms.alice.participants.get('bob')._link.restartIce()")
    await page.wait_for_function(
        f"({ufrag})('alice') !== {before!r}"
        " && rooms.alice.participants.get('bob').peerConnection.iceConnectionState === 'connected'"
        " && rooms.alice.participants.get('bob').peerConnection.signalingState === 'stable'",
        timeout=30_000,
    )
    await _frames_advance(page, "alice", "bob")


async def test_files_offer_accept_reject_cancel(hub: Hub) -> None:
    page = hub.page
    await page.evaluate("enter('alice')")
    await page.evaluate("enter('bob')")
    # bob's join resolves on his room-joined; alice hears of him a little later
    await page.wait_for_function("rooms.alice.participants.has('bob')")
    result = await page.evaluate("fileScenarios()")
    assert result["got"] == result["sent"] == result["announced"]
    assert result["size"] == 3 * 1024 * 1024 + 17
    assert result["states"] == ["done", "done"]
    assert result["decisions"][0] == ["data.bin", 3 * 1024 * 1024 + 17, "alice"]
    assert result["progress"] == sorted(result["progress"])
    assert result["progress"][-1] == 3 * 1024 * 1024 + 17
    assert result["rejection"] == "file-rejected"
    assert result["sender"] == ["file-cancelled", "cancelled"]
    assert result["receiver"] == ["file-cancelled", "cancelled"]


async def test_reconnects_when_the_server_comes_back(browser: Browser, tmp_path: Path) -> None:
    port = _free_port()
    args = ("--port", str(port), "--data-dir", str(tmp_path))
    async with page_server({"/": lambda request: _harness(f"http://127.0.0.1:{port}")}) as page_url:
        page = await browser.new_page()
        async with hubbub_serve(*args) as (_url, process):
            await page.goto(page_url + "/")
            await page.wait_for_function("window.ready === true")
            # Bob retries slowly, so that only "try now" brings him back quickly.
            await page.evaluate("enter('alice', {limits: {reconnectMaxMs: 1000}})")
            await page.evaluate(
                "enter('bob', {limits: {reconnectMinMs: 60000, reconnectMaxMs: 60000}})"
            )
            assert await page.evaluate(CHANNEL_ROUND_TRIP, "before") == "before"
            await page.evaluate("rooms.alice.sendChat('first')")
            await page.wait_for_function("seen({user: 'bob', type: 'chat', message: 'first'})")
            process.kill()
            await process.wait()
            await page.wait_for_function(
                "rooms.alice.state === 'reconnecting' && rooms.bob.state === 'reconnecting'",
                timeout=10_000,
            )
            # Attempts back off, up to the longest delay, with jitter.
            await page.wait_for_function(
                "seen({user: 'alice', type: 'reconnecting', attempt: 3})", timeout=20_000
            )
            delays = await page.evaluate(
                "events.filter((e) => e.user === 'alice' && e.type === 'reconnecting')"
                ".map((e) => [e.attempt, e.delayMs])"
            )
            for attempt, delay in delays:
                ceiling = min(1000, 500 * 2 ** (attempt - 1))
                assert ceiling / 2 <= delay <= ceiling, delays
            # Chat written while away waits in the library, pending.
            await page.evaluate("window.away = rooms.alice.sendChat('while away')")
            assert await page.evaluate("window.away.then((entry) => entry.status)") == "pending"
        async with hubbub_serve(*args):
            await page.wait_for_function("rooms.alice.state === 'open'", timeout=20_000)
            # ...and is sent once alice is back, until the server has stored it.
            await page.wait_for_function("rooms.alice.pendingChats.length === 0", timeout=20_000)
            assert await page.evaluate("window.away.then((e) => [e.status, e.seq])") == [
                "sent",
                2,
            ]
            assert await page.evaluate("rooms.bob.state") == "reconnecting"
            await page.evaluate("rooms.bob.reconnectNow()")
            await page.wait_for_function("rooms.bob.state === 'open'", timeout=20_000)
            # Bob was away when it was sent: he gets it on rejoining, once, marked missed.
            await page.wait_for_function(
                "seen({user: 'bob', type: 'chat', message: 'while away', missed: true})",
                timeout=10_000,
            )
            await page.wait_for_function(
                "rooms.alice.participants.has('bob') && rooms.bob.participants.has('alice')",
                timeout=10_000,
            )
            # The peer connection is made anew, and data flows on it again.
            assert await page.evaluate(CHANNEL_ROUND_TRIP, "after") == "after"
            await page.evaluate("rooms.alice.sendChat('back again')")
            await page.wait_for_function(
                "seen({user: 'bob', type: 'chat', from: 'alice', message: 'back again'})"
            )
            bob_got = await page.evaluate(
                "events.filter((e) => e.user === 'bob' && e.type === 'chat').map((e) => e.message)"
            )
            assert bob_got == ["first", "while away", "back again"]
            assert (
                await page.evaluate(
                    "seen({user: 'alice', type: 'connection-state', state: 'reconnecting'})"
                )
                == 1
            )
        await page.close()


async def test_calls_the_seed_conference_client(browser: Browser) -> None:
    """hubbub.js keeps the seed's signal shapes, so the seed's own client calls it."""
    from tests.browser.test_seed_conference_client import PAGE, SEED_CLIENT, VIDEO_PLAYING

    async with hubbub_serve() as (url, _process):
        pages = {
            "/": lambda request: _harness(url),
            "/seed": lambda request: (
                PAGE
                % {
                    "ws_url": url.replace("http://", "ws://") + "/",
                    "seed_client": SEED_CLIENT,
                    "room": "test",
                    "user": "sam",
                }
            ),
        }
        async with page_server(pages) as page_url:
            page = await browser.new_page()
            await page.goto(page_url + "/")
            await page.wait_for_function("window.ready === true")
            camera = "navigator.mediaDevices.getUserMedia({audio: true, video: true})"
            # One hubbub.js client there before the seed client (it offers), one after
            # (the seed client offers to it).
            await page.evaluate(f"(async () => enter('early', {{stream: await {camera}}}))()")
            seed = await browser.new_page()
            await seed.goto(page_url + "/seed")
            await page.wait_for_function("rooms.early.participants.has('sam')", timeout=20_000)
            await page.evaluate(f"(async () => enter('late', {{stream: await {camera}}}))()")
            for user in ("early", "late"):
                await page.wait_for_function(
                    f"seen({{user: '{user}', type: 'stream', from: 'sam', kind: 'camera'}})",
                    timeout=30_000,
                )
                await _frames_advance(page, user, "sam")
            await seed.wait_for_function(VIDEO_PLAYING, arg=["early", "late"], timeout=30_000)
            await seed.close()
            await page.wait_for_function(
                "!rooms.early.participants.has('sam') && !rooms.late.participants.has('sam')"
            )
            await page.close()


TOKEN_SECRET = "a-test-secret-that-is-long-enough-for-hs256"


async def test_tokens_names_grants_turn_credentials_and_replacement(browser: Browser) -> None:
    from hubbub.auth.tokens import mint_token

    def token(user: str, name: str, grants: list[str] | None = None) -> str:
        return mint_token(
            TOKEN_SECRET, user_id=user, rooms=["test"], ttl=600, name=name, grants=grants
        )[0]

    args = ["--auth", "token", "--token-secret", TOKEN_SECRET]
    args += [
        "--turn-uri",
        "turn:127.0.0.1:9?transport=udp",
        "--turn-secret",
        "t",
        "--turn-ttl",
        "4",
    ]
    async with (
        hubbub_serve(*args) as (url, _process),
        page_server({"/": lambda request: _harness(url)}) as page_url,
    ):
        page = await browser.new_page()
        await page.goto(page_url + "/")
        await page.wait_for_function("window.ready === true")
        ada = token("ada", "Ada Lovelace")
        viewer = token("vic", "Vic", ["join", "chat", "signal"])
        # A function gives a token for each join; the identity comes from it.
        assert await page.evaluate(f"enter('first', {{token: () => {ada!r}}})") == "ada"
        assert await page.evaluate("[rooms.first.displayName, rooms.first.can('screen')]") == [
            "Ada Lovelace",
            True,
        ]
        await page.evaluate(f"enter('vic', {{token: {viewer!r}}})")
        assert await page.evaluate("rooms.vic.participants.get('ada').displayName") == (
            "Ada Lovelace"
        )
        await page.wait_for_function("rooms.first.participants.get('vic')?.displayName === 'Vic'")
        # Without the screen grant, sharing is refused before the browser is asked.
        refused = await page.evaluate(
            "rooms.vic.startScreenShare().then(() => 'shared', (e) => e.code)"
        )
        assert refused == "forbidden"

        # TURN credentials from the server go into the peer connections, and fresh
        # ones replace them before they expire.
        await page.wait_for_function(
            "rooms.vic.participants.get('ada').peerConnection !== null", timeout=WAIT_MS
        )
        servers = await page.evaluate(
            "rooms.vic.participants.get('ada').peerConnection.getConfiguration().iceServers"
        )
        assert servers[0]["urls"] == ["turn:127.0.0.1:9?transport=udp"]
        assert servers[0]["username"].endswith(":vic")
        first_username = servers[0]["username"]
        await page.evaluate("within('fresh ICE servers for vic', rooms.vic.once('ice-servers'))")
        refreshed = await page.evaluate(
            "rooms.vic.participants.get('ada').peerConnection.getConfiguration().iceServers"
        )
        assert refreshed[0]["username"] != first_username

        # The same identity joining again takes the place; the old session is closed
        # for good (4009), with no attempt to reconnect.
        assert await page.evaluate(f"enter('second', {{token: {ada!r}}})") == "ada"
        await page.wait_for_function("rooms.first.state === 'closed'", timeout=WAIT_MS)
        assert await page.evaluate("rooms.first.closeReason") == {
            "code": "replaced",
            "closeCode": 4009,
        }
        assert (
            await page.evaluate(
                "seen({user: 'first', type: 'connection-state', state: 'reconnecting'})"
            )
            == 0
        )
        await page.close()


SELECTED_CANDIDATE_TYPE = """async ([user, peer]) => {
  const stats = await rooms[user].participants.get(peer).peerConnection.getStats();
  let type = null;
  stats.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) {
      const pair = stats.get(s.selectedCandidatePairId);
      type = stats.get(pair.localCandidateId)?.candidateType ?? null;
    }
  });
  return type;
}"""

CHANNEL_ROUND_TRIP = """async (text) => {
  const a = rooms.alice.channel("probe");
  const b = rooms.bob.channel("probe");
  await until("bob on alice's probe channel", () => a.peers.includes("bob"));
  const got = new Promise((resolve) => {
    const off = b.on("message", ({ data }) => { if (data === text) { off(); resolve(data); } });
  });
  a.send(text);
  return within(`"${text}" from alice at bob on the probe channel`, got);
}"""


async def test_a_failed_connection_restarts_ice_and_comes_back(browser: Browser) -> None:
    """The relay the call runs through (relay-only, so there is no other path) goes
    down: the peer connection fails, restarts ICE, and is back once the TURN server is."""
    from contextlib import AsyncExitStack

    from tests.turn import _free_port as free_turn_port
    from tests.turn import coturn

    secret = "ice-restart-test-secret"
    turn_port = free_turn_port()
    turn = AsyncExitStack()
    await turn.enter_async_context(coturn(secret, port=turn_port))
    try:
        async with (
            hubbub_serve(
                "--turn-uri", f"turn:127.0.0.1:{turn_port}?transport=udp",
                "--turn-secret", secret,
            ) as (url, _process),
            page_server({"/": lambda request: _harness(url)}) as page_url,
        ):  # fmt: skip
            page = await browser.new_page()
            await page.goto(page_url + "/")
            await page.wait_for_function("window.ready === true")
            options = "{iceTransportPolicy: 'relay', limits: {iceDisconnectedRestartMs: 1000}}"
            await page.evaluate(f"enter('alice', {options})")
            await page.evaluate(f"enter('bob', {options})")
            await page.wait_for_function(
                "rooms.alice.participants.get('bob')?.connectionState === 'connected'",
                timeout=WAIT_MS,
            )
            assert await page.evaluate(CHANNEL_ROUND_TRIP, "before") == "before"
            assert await page.evaluate(SELECTED_CANDIDATE_TYPE, ["alice", "bob"]) == "relay"

            await turn.aclose()
            await page.wait_for_function(
                "['disconnected', 'failed'].includes("
                "rooms.alice.participants.get('bob').connectionState)",
                timeout=60_000,
            )
            async with coturn(secret, port=turn_port):
                try:
                    # Either side may restart first (the other's restart then finds
                    # the connection back): one restart brings both back.
                    await page.wait_for_function(
                        "(seen({user: 'alice', type: 'ice-restart'})"
                        " || seen({user: 'bob', type: 'ice-restart'}))"
                        " && rooms.alice.participants.get('bob').connectionState === 'connected'"
                        " && rooms.bob.participants.get('alice').connectionState === 'connected'",
                        timeout=90_000,
                    )
                except Exception as error:
                    happened = await page.evaluate(
                        "events.filter((e) => ['ice-restart', 'peer-state'].includes(e.type))"
                        ".map((e) => [e.user, e.type, e.state ?? e.attempt])"
                    )
                    raise AssertionError(f"no recovery: {happened}") from error
                assert await page.evaluate(CHANNEL_ROUND_TRIP, "after") == "after"
                assert await page.evaluate(SELECTED_CANDIDATE_TYPE, ["alice", "bob"]) == "relay"
            await page.close()
    finally:
        await turn.aclose()


async def test_chat_is_stored_acknowledged_and_paged_back(browser: Browser) -> None:
    async with (
        hubbub_serve("--history-on-join", "5", "--max-chat-length", "100") as (url, _process),
        page_server({"/": lambda request: _harness(url)}) as page_url,
    ):
        page = await browser.new_page()
        await page.goto(page_url + "/")
        await page.wait_for_function("window.ready === true")
        await page.evaluate("enter('alice')")
        await page.evaluate("enter('bob')")
        # Each message is pending until the server has stored it, then sent with its seq.
        statuses = await page.evaluate(
            """async () => {
              const entries = [];
              for (let i = 0; i < 12; i++) entries.push(await rooms.alice.sendChat("m" + i));
              const pending = entries.map((e) => e.status);
              await until("every chat sent", () => entries.every((e) => e.status === "sent"));
              return { pending, seqs: entries.map((e) => e.seq),
                       ids: new Set(entries.map((e) => e.id)).size,
                       left: rooms.alice.pendingChats.length };
            }"""
        )
        assert set(statuses["pending"]) <= {"pending", "sent"}
        assert "pending" in statuses["pending"]
        assert statuses["seqs"] == list(range(1, 13))
        assert statuses["ids"] == 12
        assert statuses["left"] == 0
        await page.wait_for_function("seen({user: 'bob', type: 'chat', message: 'm11'})")
        bob_got = await page.evaluate(
            "events.filter((e) => e.user === 'bob' && e.type === 'chat').map((e) => e.message)"
        )
        assert bob_got == [f"m{i}" for i in range(12)]

        # A late joiner gets the last messages with room-joined, and pages back.
        await page.evaluate("enter('carol')")
        history = await page.evaluate("rooms.carol.history.map((e) => [e.seq, e.message])")
        assert history == [[seq, f"m{seq - 1}"] for seq in range(8, 13)]
        assert await page.evaluate("rooms.carol.chatSeq") == 12
        older = await page.evaluate(
            "rooms.carol.loadOlderChat(4).then((page) => page.map((e) => e.seq))"
        )
        assert older == [4, 5, 6, 7]
        rest = await page.evaluate(
            "rooms.carol.loadOlderChat(10).then((page) => page.map((e) => e.seq))"
        )
        assert rest == [1, 2, 3]
        assert await page.evaluate("rooms.carol.historyComplete") is True
        assert await page.evaluate("rooms.carol.loadOlderChat()") == []
        assert await page.evaluate("rooms.carol.history.map((e) => e.seq)") == list(range(1, 13))

        # Longer than the library's limit: refused at once, nothing sent.
        local = await page.evaluate(
            "rooms.bob.sendChat('x'.repeat(16001)).then(() => 'sent', (e) => e.code)"
        )
        assert local == "too-large"
        # A refusal that sending again cannot cure is final, and says why.
        failed = await page.evaluate(
            """async () => {
              const entry = await rooms.alice.sendChat("x".repeat(101));
              await until("the chat refused", () => entry.status !== "pending");
              return [entry.status, entry.error?.code];
            }"""
        )
        assert failed == ["failed", "too-large"]
        await page.close()


async def test_presence_offline_members_and_typing(hub: Hub) -> None:
    page = hub.page
    await page.evaluate("enter('alice', {limits: {typingExpireMs: 1500}})")
    await page.evaluate("enter('bob', {status: 'busy'})")
    await page.wait_for_function("rooms.alice.participants.get('bob')?.status === 'busy'")
    assert await page.evaluate("rooms.bob.participants.get('alice').status") == "online"

    # A status set later reaches the room.
    await page.evaluate("rooms.bob.setStatus('away')")
    assert await page.evaluate("rooms.bob.status") == "away"
    await page.wait_for_function(
        "seen({user: 'alice', type: 'presence', from: 'bob', status: 'away'})"
    )
    assert await page.evaluate("rooms.alice.participants.get('bob').status") == "away"
    refused = await page.evaluate("rooms.bob.setStatus('asleep').then(() => 'set', (e) => e.code)")
    assert refused == "bad-options"

    # Typing shows, and ends with the message it was for.
    await page.evaluate("rooms.bob.typing()")
    await page.wait_for_function("seen({user: 'alice', type: 'typing', from: 'bob', typing: true})")
    assert await page.evaluate("rooms.alice.participants.get('bob').typing") is True
    await page.evaluate("rooms.bob.sendChat('done typing')")
    await page.wait_for_function(
        "seen({user: 'alice', type: 'typing', from: 'bob', typing: false})"
    )
    # Typing nobody renews ends by itself on the other side (the sender here never
    # says it stopped).
    await page.evaluate("enter('carol', {limits: {typingIdleMs: 600000}})")
    await page.evaluate("rooms.carol.typing()")
    await page.wait_for_function(
        "seen({user: 'alice', type: 'typing', from: 'carol', typing: true})"
    )
    await page.wait_for_function(
        "seen({user: 'alice', type: 'typing', from: 'carol', typing: false})", timeout=10_000
    )

    # Bob chatted here: once gone, he is an offline member, with when he was last seen.
    await page.evaluate("rooms.bob.leave()")
    await page.wait_for_function(
        "seen({user: 'alice', type: 'presence', from: 'bob', status: 'offline'})"
    )
    offline = await page.evaluate("rooms.alice.offline")
    assert [entry["userId"] for entry in offline] == ["bob"]
    assert offline[0]["lastSeen"] > 0
    await page.evaluate("enter('dave')")
    assert await page.evaluate("rooms.dave.offline.map((e) => e.userId)") == ["bob"]
