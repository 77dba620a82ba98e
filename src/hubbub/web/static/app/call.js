// call.js: the web app's call: what the room tells, on the screen, from joining to leaving.

import { OFFLINE } from "../protocol.js";
import { roomLinkAdmits } from "./access.js";
import { describe, summarize } from "./quality.js";
import { chatMessage, onChatStatus, setTyping, setupOlderMessages, systemMessage } from "./chat.js";
import { setPanelOpen, showConnection, showReconnectAttempt } from "./controls.js";
import { fileCard } from "./files.js";
import { $, inviteUrl, toast } from "./helpers.js";
import { enterRoom } from "./join.js";
import { setPreviewStream, startPreview } from "./media.js";
import { addPerson, removePerson, renderOffline, updateCounts } from "./people.js";
import { state } from "./state.js";
import {
  addTile,
  layoutGrid,
  publishes,
  removeTile,
  showStream,
  startSpeakerLoop,
  stopSpeakerLoop,
  updateLocalMedia,
  updateParticipant,
} from "./tiles.js";

export function startCall(room) {
  state.room = room;
  state.unread = 0;
  state.lastSender = null;
  $("join-screen").hidden = true;
  $("call-screen").hidden = false;
  $("room-title").textContent = room.name;
  $("toggle-screen").hidden = !room.can("screen") || !navigator.mediaDevices?.getDisplayMedia;
  // In token mode without a token endpoint, each person needs an invite of their own.
  $("copy-invite").hidden = !roomLinkAdmits();
  $("empty-invite").hidden = !roomLinkAdmits();
  $("empty-text").textContent = roomLinkAdmits()
    ? "Share this link with the people you want in the call."
    : "Each person joins with an invite link of their own.";
  $("invite-link").value = inviteUrl(room.name);
  state.pinned = null;
  document.title = `${room.name} · hubbub`;
  history.replaceState(null, "", inviteUrl(room.name));
  $("messages").replaceChildren();
  $("people").replaceChildren();
  $("grid").replaceChildren();
  setPanelOpen(window.matchMedia("(min-width: 901px)").matches);

  // A viewer (no `publish` grant) sends nothing: no tile of its own, as it has none
  // for the others.
  if (room.can("publish")) {
    addTile(room.userId, "camera", { local: true });
    state.tiles.get(`${room.userId}:camera`).querySelector("video").srcObject = state.stream;
  }
  addPerson(room.userId, { local: true });
  updateLocalMedia();

  const on = (type, handler) => state.cleanup.push(room.on(type, handler));
  on("participant-joined", ({ participant }) => {
    addPerson(participant.userId);
    if (publishes(participant)) addTile(participant.userId, "camera");
    updateParticipant(participant);
    renderOffline(room);
    if (room.state === "open" && state.initialized) systemMessage(`${participant.displayName} joined`);
  });
  on("participant-left", ({ participant }) => {
    for (const kind of ["camera", "screen"]) removeTile(participant.userId, kind);
    removePerson(participant.userId);
    state.audio.get(participant.userId)?.remove();
    state.audio.delete(participant.userId);
    setTyping(participant.userId, false);
    systemMessage(`${participant.displayName} left`);
  });
  on("participant-updated", ({ participant }) => updateParticipant(participant));
  on("peer-state", ({ participant, state: peerState }) => {
    updateParticipant(participant);
    if (peerState === "failed") noteFailure(room, participant);
    if (peerState === "connected") state.failed.delete(participant.userId);
  });
  on("stream", ({ participant, stream, kind }) => showStream(participant, stream, kind));
  on("media-mode", () => {
    for (const participant of room.participants.values()) updateParticipant(participant);
  });
  on("stream-removed", ({ participant, stream, kind }) => {
    if (kind === "screen") removeTile(participant.userId, "screen");
    else {
      const tile = state.tiles.get(`${participant.userId}:camera`);
      if (tile && tile.querySelector("video").srcObject === stream) tile.querySelector("video").srcObject = null;
    }
  });
  on("chat", (entry) => chatMessage(entry));
  on("chat-status", ({ entry }) => onChatStatus(entry));
  on("typing", ({ userId, typing }) => setTyping(userId, typing));
  on("presence", ({ participant, userId, status }) => {
    if (participant) updateParticipant(participant);
    else if (userId === room.userId) updateLocalMedia();
    if (status === OFFLINE) renderOffline(room);
  });
  on("file-offer", ({ transfer }) => fileCard(transfer));
  on("connection-state", ({ state: connection, reason }) => showConnection(connection, reason));
  on("reconnecting", ({ attempt, delayMs }) => showReconnectAttempt(attempt, delayMs));
  on("local-stream", () => updateLocalMedia());

  setupOlderMessages(room);
  for (const entry of room.history ?? []) chatMessage({ ...entry, mine: entry.userId === room.userId }, true);
  for (const participant of room.participants.values()) {
    addPerson(participant.userId);
    if (publishes(participant)) addTile(participant.userId, "camera");
    updateParticipant(participant);
  }
  renderOffline(room);
  state.initialized = true;
  showConnection(room.state);
  startSpeakerLoop();
  startQualityLoop(room);
  layoutGrid();
  updateCounts();
}

// -- how each connection does --------------------------------------------------------

const QUALITY_EVERY_MS = 2000;

// Every two seconds, each peer connection's stats: bars on its tile, and a word in the
// chat when a call has to go through a relay server.
function startQualityLoop(room) {
  clearInterval(state.qualityTimer);
  state.quality = new Map();
  state.relayed = new Set();
  state.failed = new Set();
  let measuring = false;
  state.qualityTimer = setInterval(async () => {
    if (state.room !== room || measuring) return;
    measuring = true;
    try {
      for (const participant of room.participants.values()) {
        const pc = participant.peerConnection;
        if (!pc || pc.connectionState !== "connected") continue;
        const summary = summarize(await pc.getStats(), state.quality.get(participant.userId));
        state.quality.set(participant.userId, summary);
        showQuality(participant, summary);
      }
    } finally {
      measuring = false;
    }
  }, QUALITY_EVERY_MS);
}

function showQuality(participant, summary) {
  const tile = state.tiles.get(`${participant.userId}:camera`);
  const bars = tile?.querySelector(".quality");
  if (bars && summary.level) {
    bars.hidden = false;
    bars.dataset.level = summary.level;
    bars.setAttribute("aria-label", describe(summary));
    bars.title = describe(summary);
  }
  if (summary.relay && !state.relayed.has(participant.userId)) {
    state.relayed.add(participant.userId);
    const text = `The call with ${participant.displayName} goes through a relay server: a direct connection between you was not possible.`;
    systemMessage(text);
    toast(text, 6000);
  }
}

// A peer connection that failed (ICE found no path): said once, until it connects.
function noteFailure(room, participant) {
  if (state.failed.has(participant.userId)) return;
  state.failed.add(participant.userId);
  const hasRelay = room.iceServers.some((server) =>
    [server.urls].flat().some((url) => String(url).startsWith("turn")),
  );
  const why = hasRelay
    ? "Neither a direct path nor the relay server gets through; retrying."
    : "A firewall or network between you blocks a direct path, and this server offers no relay (TURN) to go around it; retrying.";
  systemMessage(`Could not connect to ${participant.displayName}. ${why}`);
}

// What the page after the call says, by why the call ended; `rejoin` labels the
// button that goes back in (none after an admin removed this side or ended the room).
const END_TEXT = {
  left: { title: "You left the call", detail: (room) => `You were in ${room}.`, rejoin: "Rejoin" },
  removed: { title: "You were removed from the call", detail: (room) => `An admin removed you from ${room}.`, rejoin: null },
  "room-ended": { title: "The call has ended", detail: (room) => `An admin ended ${room} for everyone.`, rejoin: null },
  replaced: {
    title: "You joined from another tab or device",
    detail: () => "This page left the call, so that you are in it once.",
    rejoin: "Use here",
  },
  "gave-up": { title: "You lost the connection", detail: () => "The server could not be reached for several minutes.", rejoin: "Rejoin" },
  flooded: { title: "You were disconnected", detail: () => "The server disconnected this page for sending too much, too fast.", rejoin: "Rejoin" },
};
const END_OTHERWISE = { title: "You were disconnected", detail: () => "The connection to the server closed.", rejoin: "Rejoin" };

/**
 * The call is over: this side left (`reason` null), or the server closed it for good.
 * The camera and microphone are turned off (their lights go out) and the page says
 * what happened, with Rejoin where going back makes sense.
 */
export function endCall(reason = null) {
  const room = state.room;
  if (!room) return;
  for (const off of state.cleanup.splice(0)) off();
  room.leave();
  stopSpeakerLoop();
  clearInterval(state.qualityTimer);
  showReconnectAttempt(0, 0);
  state.room = null;
  state.initialized = false;
  state.tiles.clear();
  state.typing.clear();
  for (const audio of state.audio.values()) audio.remove();
  state.audio.clear();
  const wanted = { mic: room.media.audio, camera: room.media.video };
  for (const stream of [room.localStream, room.screenStream, state.stream]) {
    for (const track of stream?.getTracks() ?? []) track.stop();
  }
  setPreviewStream(null);
  // Coming back turns on what was on.
  state.wantMic = wanted.mic;
  state.wantCamera = wanted.camera;
  $("grid").replaceChildren();
  $("call-screen").hidden = true;
  document.title = "hubbub";
  const text = reason ? END_TEXT[reason.code] ?? END_OTHERWISE : END_TEXT.left;
  $("left-title").textContent = text.title;
  $("left-detail").textContent = text.detail(`“${room.name}”`);
  $("rejoin").hidden = !text.rejoin;
  $("rejoin").textContent = text.rejoin ?? "";
  $("left-screen").hidden = false;
  (text.rejoin ? $("rejoin") : $("back-to-start")).focus();
}

/** From the page after the call: back to the join screen, the camera on again as it was; with `rejoin`, straight in. */
export async function backToStart({ rejoin = false } = {}) {
  $("left-screen").hidden = true;
  $("join-screen").hidden = false;
  state.previewReady = startPreview();
  if (rejoin) enterRoom();
  else $("join-button").focus();
}
