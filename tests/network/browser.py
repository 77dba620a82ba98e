"""Chromium on a lab host: the browser process runs inside the host's namespace
(Playwright drives it over a pipe, from outside), and its page comes from the lab's
hubbub, with hubbub.js imported from there as an app would."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import stat
import tempfile
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.async_api import Page, Playwright, Route

from hubbub.server.app import STATIC_DIR
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.pages import APP_READY, goto_ready, record_what_it_says
from tests.network.lab import HUBBUB_ADDRESS, TOOLS, TURN_ADDRESS, Host

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>lab peer</title></head>
<body><script type="module">
import * as hubbub from "/hubbub.js";
const HUB = location.origin;
window.log = [];
window.replies = [];
// every RTCPeerConnection hubbub.js makes, to read the selected pair of the one in use
window.pcs = [];
const Native = window.RTCPeerConnection;
window.RTCPeerConnection = class extends Native {
  constructor(...args) { super(...args); pcs.push(this); }
};
window.enter = async (room, userId, { relay = false, send = false } = {}) => {
  const video = { width: 320, height: 240 };
  const stream = send ? await navigator.mediaDevices.getUserMedia({ video }) : undefined;
  const joined = await hubbub.join(HUB, { room, userId, stream,
                                           iceTransportPolicy: relay ? "relay" : "all" });
  window.room = joined;
  joined.on("peer-state", ({ participant, state }) => log.push(`${participant.userId}: ${state}`));
  joined.on("ice-restart", ({ participant, attempt }) =>
    log.push(`${participant.userId}: ice-restart ${attempt}`));
  joined.on("stream", ({ participant, stream }) => {
    const video = document.createElement("video");
    video.id = "video-" + participant.userId;
    video.autoplay = video.muted = video.playsInline = true;
    video.srcObject = stream;
    document.body.appendChild(video);
  });
  joined.on("channel", ({ channel }) => watch(channel));
  return joined.userId;
};
window.watch = (channel) => {
  channel.on("message", ({ from, data }) => {
    if (typeof data !== "string") return;
    if (data.startsWith("echo:")) channel.sendTo(from, "echoed:" + data.slice(5));
    else if (data.startsWith("echoed:")) replies.push(data);
  });
  return channel;
};
window.connectedTo = (userId) => log.includes(`${userId}: connected`);
window.echo = (to, text) => new Promise((resolve) => {
  const channel = watch(room.channel("echo"));
  const send = () => channel.sendTo(to, "echo:" + text);
  if (channel.peers.includes(to)) send();
  else channel.on("open", ({ userId }) => { if (userId === to) send(); });
  const check = setInterval(() => {
    const reply = replies.find((r) => r === "echoed:" + text);
    if (reply) { clearInterval(check); resolve(reply); }
  }, 50);
});
// the selected ICE candidate pair of the connected peer connection, named as
// hubbub.peer.ice.IcePair is
window.selectedPair = async () => {
  for (const pc of [...pcs].reverse()) {
    if (pc.connectionState !== "connected") continue;
    const stats = [...(await pc.getStats()).values()];
    const byId = new Map(stats.map((s) => [s.id, s]));
    const transport = stats.find((s) => s.type === "transport" && s.selectedCandidatePairId);
    const pair = transport ? byId.get(transport.selectedCandidatePairId)
      : stats.find((s) => s.type === "candidate-pair" && s.nominated && s.state === "succeeded");
    if (!pair) continue;
    const side = (c) => ({ candidate_type: c.candidateType, address: c.address, port: c.port,
                           protocol: c.protocol, relay_protocol: c.relayProtocol ?? null });
    return { local: side(byId.get(pair.localCandidateId)),
             remote: side(byId.get(pair.remoteCandidateId)) };
  }
  return null;
};
// files, for the benchmark over the shaped link (bench/network_path.py)
window.receiveFiles = () => {
  window.received = [];
  room.on("file-offer", ({ transfer }) => {
    const started = performance.now();
    transfer.accept().then(
      (blob) => received.push({ ok: true, size: blob.size, sha256: transfer.sha256,
                                seconds: (performance.now() - started) / 1000 }),
      (error) => received.push({ ok: false, error: String(error) }));
  });
};
window.sendFile = async (to, size) => {
  const data = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) {
    crypto.getRandomValues(data.subarray(at, Math.min(size, at + 65536)));
  }
  const transfer = room.sendFile(to, new Blob([data]), { name: "bench.bin" });
  let began = null;
  transfer.on("state", ({ state }) => {
    if (state === "transferring" && began === null) began = performance.now();
  });
  await transfer.done;
  return { ok: true, bytes: size, sha256: transfer.sha256,
           seconds: (performance.now() - began) / 1000 };
};
// a call set up from scratch: milliseconds from join to the first frame of `to`'s
// video, and to a data channel open with `to`
window.setupTimes = async (roomName, userId, to) => {
  const times = {};
  const video = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 } });
  const started = performance.now();
  const joined = await hubbub.join(HUB, { room: roomName, userId, stream: video });
  window.room = joined;
  const channel = joined.channel("setup");
  const opened = new Promise((resolve) => channel.on("open", ({ userId: peer }) => {
    if (peer === to) resolve(performance.now() - started);
  }));
  const framed = new Promise((resolve) => joined.on("stream", ({ participant, stream }) => {
    if (participant.userId !== to) return;
    const element = document.createElement("video");
    element.muted = element.autoplay = element.playsInline = true;
    element.srcObject = stream;
    document.body.appendChild(element);
    element.requestVideoFrameCallback(() => resolve(performance.now() - started));
  }));
  times.channel_open = await opened;
  times.first_frame = await framed;
  return times;
};
window.ready = true;
</script></body></html>
"""


_SAID: weakref.WeakKeyDictionary[Page, list[str]] = weakref.WeakKeyDictionary()


def said_on(page: Page) -> list[str]:
    """What a page of :func:`lab_page` logged, threw, or failed to load."""
    return _SAID.get(page, [])


@contextlib.asynccontextmanager
async def lab_page(
    playwright: Playwright,
    host: Host,
    hub_url: str,
    trust: Path | None = None,
    *,
    web_app: bool = False,
    app_files_from_disk: bool = False,
) -> AsyncIterator[Page]:
    """A page on ``host`` at ``hub_url``/lab, ready to ``enter`` a room (or, with
    ``web_app``, the server's web app at ``hub_url``/), trusting the certificate in
    the PEM file ``trust``. ``app_files_from_disk``: the web app's own files (the page
    and ``/static/``, static files the server only serves) come to the page from the
    package, not through the site's link: a link too slow to load the app in time
    then carries only what the app sends and receives."""
    with tempfile.TemporaryDirectory(prefix="hubbub-lab-chromium-") as workdir:
        wrapper = Path(workdir) / "chromium"
        wrapper.write_text(
            f'#!/bin/sh\nexec {TOOLS["ip"]} netns exec {host.name} {CHROMIUM} "$@"\n'
        )
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
        browser = await playwright.chromium.launch(
            executable_path=str(wrapper),
            args=[
                *(arg for arg in CHROMIUM_ARGS if not arg.startswith("--host-resolver-rules")),
                # no name resolves; the lab's servers are reached by their addresses
                # (TURN over TCP goes through the resolver too)
                f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {HUBBUB_ADDRESS}, "
                f"EXCLUDE {TURN_ADDRESS}",
                # host candidates as addresses: the lab has no mDNS
                "--disable-features=WebRtcHideLocalIpsWithMdns",
                # the camera for a page of plain http on the lab's address
                f"--unsafely-treat-insecure-origin-as-secure={hub_url}",
                # coturn's TLS certificate (its key only) is trusted, as the Python
                # peers trust the lab's CA
                *([f"--ignore-certificate-errors-spki-list={spki_hash(trust)}"] if trust else []),
            ],
        )
        try:
            page = await browser.new_page()
            # From the start: a file of the page that fails to load says so too.
            said = _SAID[page] = record_what_it_says(page)
            if web_app:
                if app_files_from_disk:
                    await page.route(f"{hub_url}/", _from_disk)
                    await page.route(f"{hub_url}/static/**", _from_disk)
                await goto_ready(page, f"{hub_url}/", said, ready=APP_READY)
                yield page
                return
            await page.route(f"{hub_url}/lab", lambda route: route.fulfill(
                body=PAGE, content_type="text/html"))  # fmt: skip
            # (the lab's links are made around Chromium's start: it can drop a first
            # load as the network changes under it)
            await goto_ready(page, f"{hub_url}/lab", said)
            yield page
        finally:
            await browser.close()


def spki_hash(certificate: Path) -> str:
    """The base64 SHA-256 of a certificate's public key, as Chromium pins one."""
    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


async def _from_disk(route: Route) -> None:
    path = urlsplit(route.request.url).path
    name = "index.html" if path == "/" else path.removeprefix("/static/")
    root = STATIC_DIR.resolve()
    file = (root / name).resolve()
    if not file.is_relative_to(root) or not file.is_file():
        await route.fulfill(status=404)
        return
    await route.fulfill(path=file)
