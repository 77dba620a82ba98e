"""Unmodified PeerJS, y-webrtc and trystero clients, from npm, in Chromium, against
hubbub's front-ends: pages on an origin of their own, hubbub on another."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from hubbub.server import ServerSettings
from tests.browser import compat_bundles
from tests.browser.pages import page_server
from tests.conftest import ServerFactory
from tests.tokens import SECRET, token

FRONTENDS = ["peerjs", "y-webrtc", "tracker"]


def _page(bundle: str) -> str:
    return (
        "<!doctype html><html><head><meta charset=utf-8></head><body><script>"
        + compat_bundles.bundle(bundle)
        + "</script></body></html>"
    )


@pytest.fixture(scope="module")
def bundles() -> dict[str, str]:
    return {name: _page(name) for name in compat_bundles.ENTRIES}


async def _open(browser: Browser, origin: str, path: str) -> Page:
    """A page in a browser context of its own (no BroadcastChannel between them)."""
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(origin + path)
    return page


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


# -- PeerJS --------------------------------------------------------------------------

PEER_JS = """
window.makePeer = (id, options) => new Promise((resolve) => {
  const peer = id ? new PeerJS.Peer(id, options) : new PeerJS.Peer(options);
  window.peer = peer;
  window.received = [];
  window.errors = [];
  peer.on('connection', (conn) => {
    conn.on('data', (data) => { window.received.push(data); conn.send('echo:' + data); });
  });
  peer.on('error', (err) => { window.errors.push(err.type); resolve({error: err.type}); });
  peer.on('open', (openId) => resolve({id: openId}));
});
true;  // not the function: page.evaluate would call it
"""


async def _peer(page: Page, peer_id: str | None, options: dict[str, Any]) -> dict[str, Any]:
    await page.evaluate(PEER_JS)
    return await page.evaluate("([id, options]) => makePeer(id, options)", [peer_id, options])


async def test_peerjs_peers_connect_exchange_data_and_are_told_what_the_server_refuses(
    browser: Browser, start_hub: ServerFactory, bundles: dict[str, str]
) -> None:
    url = await start_hub(ServerSettings(frontend=FRONTENDS))
    host, port = _host_port(url)
    options = {"host": host, "port": port, "path": "/peerjs", "key": "peerjs", "debug": 1}
    async with page_server({"/": lambda _: bundles["PeerJS"]}) as origin:
        alice, bob = await _open(browser, origin, "/"), await _open(browser, origin, "/")
        # A server-assigned id: GET /peerjs/peerjs/id from the page's origin (CORS).
        opened = await _peer(alice, None, options)
        assert len(opened["id"]) == 36, opened
        assert await _peer(bob, "bob-1", options) == {"id": "bob-1"}

        # Data both ways over a data channel set up through the server.
        got = await alice.evaluate(
            """() => new Promise((resolve, reject) => {
                const conn = peer.connect('bob-1');
                conn.on('open', () => conn.send('hello'));
                conn.on('data', (data) => resolve(data));
                conn.on('error', reject);
                setTimeout(() => reject(new Error('no data')), 15000);
            })"""
        )
        assert got == "echo:hello"
        assert await bob.evaluate("window.received") == ["hello"]

        # The same id again, from another page: refused, the holder keeps it.
        thief = await _open(browser, origin, "/")
        assert await _peer(thief, "bob-1", options) == {"error": "unavailable-id"}
        assert await bob.evaluate("peer.disconnected") is False

        # A peer nobody holds: what was sent to it expires, and the sender is told.
        missing = await alice.evaluate(
            """() => new Promise((resolve) => {
                peer.on('error', (err) => resolve(err.type));
                peer.connect('nobody-here');
                setTimeout(() => resolve('nothing'), 15000);
            })"""
        )
        assert missing == "peer-unavailable"

        # An unknown key: the reference server's words.
        stranger = await _open(browser, origin, "/")
        refused = await _peer(stranger, "carol", {**options, "key": "other"})
        assert refused == {"error": "server-error"}


async def test_peerjs_with_a_hubbub_token_takes_its_id_back_after_a_reload(
    browser: Browser, start_hub: ServerFactory, bundles: dict[str, str]
) -> None:
    settings = ServerSettings(auth="token", token_secret=SECRET, frontend=["peerjs"])
    url = await start_hub(settings)
    host, port = _host_port(url)
    options = {"host": host, "port": port, "path": "/peerjs", "key": "peerjs"}
    alice_token = token("alice", "peerjs:*")
    async with page_server({"/": lambda _: bundles["PeerJS"]}) as origin:
        first = await _open(browser, origin, "/")
        assert await _peer(first, "alice", {**options, "token": alice_token}) == {"id": "alice"}
        # A second tab while the first still holds the id (a reload whose old
        # connection the server has not seen close yet): it takes the id.
        second = await _open(browser, origin, "/")
        assert await _peer(second, "alice", {**options, "token": alice_token}) == {"id": "alice"}
        await first.wait_for_function("peer.disconnected === true", timeout=10_000)
        # A reload of the page that holds it.
        await second.reload()
        assert await _peer(second, "alice", {**options, "token": alice_token}) == {"id": "alice"}
        # Without a token, or with another user's, the id is not to be had.
        other = await _open(browser, origin, "/")
        assert await _peer(other, "alice", options) == {"error": "server-error"}
        bob_token = token("bob", "peerjs:*")
        assert await _peer(other, "alice", {**options, "token": bob_token}) == {
            "error": "server-error"
        }
        # Peers with tokens still reach each other.
        bob = await _open(browser, origin, "/")
        assert await _peer(bob, "bob", {**options, "token": bob_token}) == {"id": "bob"}
        got = await bob.evaluate(
            """() => new Promise((resolve, reject) => {
                const conn = peer.connect('alice');
                conn.on('open', () => conn.send('hi'));
                conn.on('data', resolve);
                setTimeout(() => reject(new Error('no data')), 15000);
            })"""
        )
        assert got == "echo:hi"


# -- y-webrtc --------------------------------------------------------------------------

Y_JS = """
// Every frame of the page's signaling connection, in and out (type, topic, size), for
// the message of a failure.
window.signalingFrames = [];
const NativeWebSocket = window.WebSocket;
const trace = (way, data) => {
  try {
    const m = JSON.parse(data);
    signalingFrames.push(`${way} ${m.type}${m.topic ? ' ' + m.topic : ''} ${String(data).length}`);
  } catch {
    signalingFrames.push(`${way} ? ${String(data).length}`);
  }
};
window.WebSocket = class extends NativeWebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener('message', (event) => trace('in', event.data));
  }
  send(data) {
    trace('out', data);
    super.send(data);
  }
};
window.openDoc = (room, signaling, password) => {
  const doc = new YjsWebrtc.Y.Doc();
  const options = {signaling: [signaling]};
  if (password) options.password = password;
  window.provider = new YjsWebrtc.WebrtcProvider(room, doc, options);
  window.doc = doc;
};
window.waitFor = (key) => new Promise((resolve) => {
  const map = window.doc.getMap('m');
  const check = () => { if (map.has(key)) resolve(map.get(key)); };
  map.observe(check); check();
});
true;
"""


# What a page's provider knows, said when the documents do not converge.
Y_STATE = """(() => {
  const room = window.provider.room;
  const conns = [...room.webrtcConns.entries()].map(([id, conn]) => ({
    id, connected: conn.connected, synced: conn.synced, state: conn.peer._pc?.connectionState,
  }));
  const signaling = window.provider.signalingConns.map((c) => ({ connected: c.connected }));
  return { peerId: room.peerId, conns, signaling, frames: signalingFrames };
})()"""


@pytest.mark.parametrize("password", [None, "secret words"])
async def test_y_webrtc_documents_converge_between_two_browsers(
    browser: Browser, start_hub: ServerFactory, bundles: dict[str, str], password: str | None
) -> None:
    url = await start_hub(ServerSettings(frontend=FRONTENDS))
    signaling = url.replace("http://", "ws://") + "/y-webrtc"
    async with page_server({"/": lambda _: bundles["YjsWebrtc"]}) as origin:
        one, two = await _open(browser, origin, "/"), await _open(browser, origin, "/")
        for page in (one, two):
            await page.evaluate(Y_JS)
            await page.evaluate(
                "([room, signaling, password]) => openDoc(room, signaling, password)",
                ["notes", signaling, password],
            )
            # The second document opens once the first has announced itself, as people
            # open a shared document one after the other (with a password, the key's
            # derivation otherwise makes both announce at about the same time).
            await page.wait_for_function(
                "signalingFrames.some((f) => f.startsWith('out publish'))", timeout=30_000
            )
        await one.evaluate("window.doc.getMap('m').set('from-one', 'hello')")
        await two.evaluate("window.doc.getMap('m').set('from-two', 'world')")
        for page, key, value in ((two, "from-one", "hello"), (one, "from-two", "world")):
            try:
                assert await asyncio.wait_for(page.evaluate(f"waitFor('{key}')"), 30) == value
            except TimeoutError:
                states = [await p.evaluate(Y_STATE) for p in (one, two)]
                raise AssertionError(f"no {key} in 30 s; the pages: {states}") from None
        # Through WebRTC, found through hubbub (separate contexts share no BroadcastChannel).
        assert await one.evaluate("provider.room.webrtcConns.size") == 1


# -- trystero (WebTorrent tracker) -----------------------------------------------------------

TRYSTERO_JS = """
window.join = (tracker) => {
  const room = Trystero.joinRoom({appId: 'hubbub-test', relayConfig: {urls: [tracker]}}, 'lobby');
  const chat = room.makeAction('chat');
  window.received = new Promise((resolve) => { chat.onMessage = (data) => resolve(data); });
  room.onPeerJoin = (peer) => chat.send('hello from ' + Trystero.selfId, {target: peer});
};
true;
"""


async def test_trystero_peers_find_each_other_through_the_tracker(
    browser: Browser, start_hub: ServerFactory, bundles: dict[str, str]
) -> None:
    url = await start_hub(ServerSettings(frontend=FRONTENDS))
    tracker = url.replace("http://", "ws://") + "/announce"
    async with page_server({"/": lambda _: bundles["Trystero"]}) as origin:
        one, two = await _open(browser, origin, "/"), await _open(browser, origin, "/")
        for page in (one, two):
            await page.evaluate(TRYSTERO_JS)
            await page.evaluate("(tracker) => join(tracker)", tracker)
        one_id = await one.evaluate("Trystero.selfId")
        two_id = await two.evaluate("Trystero.selfId")
        assert await asyncio.wait_for(one.evaluate("window.received"), 30) == f"hello from {two_id}"
        assert await asyncio.wait_for(two.evaluate("window.received"), 30) == f"hello from {one_id}"
