// connection-test.js: "Test my connection" on the join screen. The browser itself
// checks what a call from here would have: the STUN server (the public address it
// sees), each TURN server and transport (a relay candidate), and a data channel
// between two local peer connections forced through the relay. The ICE servers are
// those the server hands out: got by joining a probe room for a moment in open mode,
// and in token mode from GET api/ice-servers with the page's token (a join would
// show this person in the room). The same checks as `hubbub doctor`, from where the
// user sits (docs/deploy.md#troubleshooting).

import { join } from "../hubbub.js";
import { tokenFor, tokenMode } from "./access.js";
import { $, serverUrl } from "./helpers.js";

const GATHER_MS = 5000; // a candidate that has not come by then will not
const RELAY_MS = 10000; // the relayed data channel's time to open
const RELAY_BYTES = 1024 * 1024; // sent through the relay to time it

export function setupConnectionTest() {
  $("connection-test-button").addEventListener("click", () => runConnectionTest());
}

/** Runs every check; returns them as `{name, status, detail}` (also shown on the page). */
export async function runConnectionTest() {
  const button = $("connection-test-button");
  const list = $("connection-test-results");
  button.disabled = true;
  list.replaceChildren();
  list.hidden = false;
  const results = [];
  const report = (name, status, detail) => {
    results.push({ name, status, detail });
    const item = document.createElement("li");
    item.className = `check check-${status}`;
    item.dataset.check = name;
    const label = document.createElement("span");
    label.className = "check-status";
    label.textContent = status;
    item.append(label, ` ${name}: ${detail}`);
    list.append(item);
  };
  try {
    let iceServers;
    try {
      iceServers = await probeIceServers();
      report("server", "ok", tokenMode() ? "reached, and it takes your access" : "reached, and joined a test room");
    } catch (error) {
      report("server", "fail", `cannot join: ${error.message}`);
      return results;
    }
    const urls = (server) => [server.urls].flat();
    const stun = iceServers.filter((s) => urls(s).some((u) => u.startsWith("stun:")));
    const turn = iceServers.filter((s) => urls(s).some((u) => u.startsWith("turn")));
    if (!stun.length && !turn.length) {
      report("ice servers", "warn", "none: calls connect only within one network");
    } else if (!turn.length) {
      report("ice servers", "warn", "no TURN server: calls from behind strict firewalls will fail");
    }
    for (const server of stun) {
      const seen = (await gather({ iceServers: [server] })).filter((c) => c.type === "srflx");
      if (seen.length) report("stun", "ok", `your public address is ${seen[0].address}:${seen[0].port}`);
      else report("stun", "fail", `${urls(server)[0]}: no answer (UDP blocked here, or at the server)`);
    }
    let relayed = 0;
    for (const server of turn) {
      for (const url of urls(server)) {
        const kind = url.startsWith("turns:") ? "tls" : url.includes("transport=tcp") ? "tcp" : "udp";
        const one = { urls: [url], username: server.username, credential: server.credential };
        const relay = (await gather({ iceServers: [one], iceTransportPolicy: "relay" })).find(
          (c) => c.type === "relay",
        );
        if (relay) {
          relayed += 1;
          report(`turn ${kind}`, "ok", `relay ${relay.address}:${relay.port}`);
        } else {
          report(`turn ${kind}`, "fail", `${url}: no relay`);
        }
      }
    }
    if (relayed) {
      try {
        const { openMs, mbits } = await relayedChannel(turn);
        report("relay", "ok", `data channel through the relay open in ${openMs} ms, ${mbits} Mbit/s`);
      } catch (error) {
        report("relay", "fail", `no data channel through the relay: ${error.message}`);
      }
    } else if (turn.length) {
      report("relay", "fail", "no TURN server gave a relay: calls that need one will fail");
    }
    const failed = results.some((r) => r.status === "fail" && (r.name === "relay" || r.name === "server"));
    const reached = results.some((r) => (r.name === "stun" || r.name.startsWith("turn")) && r.status === "ok");
    report("verdict", failed || !reached ? "fail" : "ok", failed || !reached ? "calls would fail from here" : "calls can connect from here");
    return results;
  } finally {
    button.disabled = false;
  }
}

async function probeIceServers() {
  if (tokenMode()) return askIceServers();
  const id = Math.random().toString(36).slice(2, 10);
  const room = await join(serverUrl(), { room: `hubbub-connection-test-${id}`, userId: `test-${id}` });
  const servers = room.iceServers ?? [];
  room.leave();
  return servers;
}

/** Token mode: the ICE servers the server gives this page's token (GET api/ice-servers). */
async function askIceServers() {
  const way = tokenFor($("room-input").value.trim());
  const token = typeof way === "function" ? await way() : way; // the site's endpoint, or an invite
  if (!token) throw new Error("this server admits only with an access token: open your invite link");
  const response = await fetch(new URL("api/ice-servers", location.href), {
    cache: "no-store",
    headers: { Authorization: `Bearer ${token}` },
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error(body?.error?.message ?? `the server answered ${response.status}`);
  return body?.iceServers ?? [];
}

/** The candidates one peer connection gathers with `config` (at most GATHER_MS). */
async function gather(config) {
  const pc = new RTCPeerConnection(config);
  const candidates = [];
  try {
    pc.createDataChannel("probe");
    const done = new Promise((resolve) => {
      pc.onicecandidate = ({ candidate }) => {
        if (!candidate || !candidate.candidate) resolve();
        else candidates.push(candidate);
      };
      setTimeout(resolve, GATHER_MS);
    });
    await pc.setLocalDescription();
    await done;
  } finally {
    pc.close();
  }
  return candidates;
}

/**
 * Two local peer connections, relay only, a data channel between them: the time it
 * takes to open, and the rate of what gets through in RELAY_MS (at most RELAY_BYTES;
 * a slow uplink sends less, it does not make the check wait longer).
 */
async function relayedChannel(turn) {
  const config = { iceServers: turn, iceTransportPolicy: "relay" };
  const a = new RTCPeerConnection(config);
  const b = new RTCPeerConnection(config);
  try {
    a.onicecandidate = ({ candidate }) => candidate && b.addIceCandidate(candidate).catch(() => {});
    b.onicecandidate = ({ candidate }) => candidate && a.addIceCandidate(candidate).catch(() => {});
    const started = performance.now();
    const channel = a.createDataChannel("relay-test");
    const opened = new Promise((resolve, reject) => {
      channel.onopen = resolve;
      setTimeout(() => reject(new Error(`not open in ${RELAY_MS / 1000} s`)), RELAY_MS);
    });
    let received = 0;
    let allReceived;
    const all = new Promise((resolve) => (allReceived = resolve));
    b.ondatachannel = ({ channel: incoming }) => {
      incoming.onmessage = ({ data }) => {
        received += data.byteLength ?? data.size ?? 0;
        if (received >= RELAY_BYTES) allReceived();
      };
    };
    await a.setLocalDescription();
    await b.setRemoteDescription(a.localDescription);
    await b.setLocalDescription();
    await a.setRemoteDescription(b.localDescription);
    await opened;
    const openMs = Math.round(performance.now() - started);
    const chunk = new Uint8Array(16 * 1024);
    const sendStarted = performance.now();
    const deadline = sendStarted + RELAY_MS;
    const timeUp = new Promise((resolve) => setTimeout(resolve, RELAY_MS));
    for (let sent = 0; sent < RELAY_BYTES && channel.readyState === "open"; sent += chunk.length) {
      while (channel.bufferedAmount > 512 * 1024 && channel.readyState === "open" && performance.now() < deadline) {
        await new Promise((r) => setTimeout(r, 5));
      }
      if (performance.now() >= deadline || channel.readyState !== "open") break;
      channel.send(chunk);
    }
    await Promise.race([all, timeUp]);
    const seconds = (performance.now() - sendStarted) / 1000;
    return { openMs, mbits: ((received * 8) / seconds / 1e6).toFixed(1) };
  } finally {
    a.close();
    b.close();
  }
}
