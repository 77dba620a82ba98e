// tiles.js: the web app's video tiles, one per camera or screen, and who is speaking.

import { $, avatar, el, icon } from "./helpers.js";
import { startMeter, stopMeter } from "./media.js";
import { updatePerson } from "./people.js";
import { state } from "./state.js";

function tileKey(userId, kind) {
  return `${userId}:${kind}`;
}

export function nameOf(userId) {
  const room = state.room;
  if (room && userId === room.userId) return room.displayName ?? userId;
  return room?.participants.get(userId)?.displayName ?? userId;
}

export function addTile(userId, kind, { local = false } = {}) {
  const key = tileKey(userId, kind);
  if (state.tiles.has(key)) return state.tiles.get(key);
  const displayName = nameOf(userId);
  const name = local ? `${displayName} (you)` : displayName;
  const label = kind === "screen" ? `${local ? "Your" : `${displayName}'s`} screen` : name;
  const video = el("video", { autoplay: true, playsinline: true, "aria-hidden": "true" });
  video.muted = true; // sound plays through one <audio> per participant
  if (local && kind === "camera") video.classList.add("mirror");
  const tile = el(
    "figure",
    { class: "tile", dataset: { user: userId, kind }, "aria-label": label },
    video,
    el("div", { class: "tile-placeholder" }, avatar(displayName)),
    el("figcaption", {}, icon("mic-off", "muted-icon"), el("span", { class: "name" }, label)),
    el("span", { class: "tile-status" }),
  );
  if (local) tile.dataset.local = "true";
  if (kind === "camera") tile.classList.add("video-off");
  state.tiles.set(key, tile);
  const grid = $("grid");
  // Screens first: they are what people look at.
  if (kind === "screen") grid.prepend(tile);
  else grid.append(tile);
  layoutGrid();
  return tile;
}

export function removeTile(userId, kind) {
  const key = tileKey(userId, kind);
  const tile = state.tiles.get(key);
  if (!tile) return;
  state.tiles.delete(key);
  tile.remove();
  layoutGrid();
}

export function showStream(participant, stream, kind) {
  const tile = addTile(participant.userId, kind);
  const video = tile.querySelector("video");
  if (video.srcObject !== stream) video.srcObject = stream;
  if (kind === "screen") {
    tile.classList.remove("video-off");
    // A stream first taken for a camera may turn out to be a screen.
    const camera = state.tiles.get(tileKey(participant.userId, "camera"));
    if (camera?.querySelector("video").srcObject === stream) camera.querySelector("video").srcObject = null;
  }
  if (kind === "camera" && stream.getAudioTracks().length) playAudio(participant.userId, stream);
  stream.addEventListener("addtrack", () => {
    if (kind === "camera" && stream.getAudioTracks().length) playAudio(participant.userId, stream);
  });
  updateParticipant(participant);
}

function playAudio(userId, stream) {
  let audio = state.audio.get(userId);
  if (!audio) {
    audio = el("audio", { autoplay: true });
    $("audio-sinks").append(audio);
    state.audio.set(userId, audio);
  }
  if (audio.srcObject !== stream) audio.srcObject = stream;
  audio.play().catch(() => {
    $("sound-banner").hidden = false;
  });
}

export function updateParticipant(participant) {
  const tile = state.tiles.get(tileKey(participant.userId, "camera"));
  if (tile) {
    const video = tile.querySelector("video");
    const hasVideo = Boolean(video.srcObject?.getVideoTracks().length);
    tile.classList.toggle("video-off", !participant.media.video || !hasVideo);
    tile.classList.toggle("audio-off", !participant.media.audio);
    const connecting = !["connected", "closed"].includes(participant.connectionState);
    const lost =
      ["failed", "disconnected"].includes(participant.connectionState) || participant.connection === "reconnecting";
    tile.querySelector(".tile-status").textContent = lost ? "Reconnecting…" : connecting ? "Connecting…" : "";
  }
  updatePerson(participant);
}

export function updateLocalMedia() {
  const room = state.room;
  if (!room) return;
  const media = room.media;
  const tile = state.tiles.get(tileKey(room.userId, "camera"));
  if (tile) {
    const video = tile.querySelector("video");
    if (video.srcObject !== room.localStream) video.srcObject = room.localStream;
    // Re-assigning the same stream makes the <video> show a track added to it.
    else if (media.video) video.srcObject = new MediaStream(room.localStream.getTracks());
    tile.classList.toggle("video-off", !media.video);
    tile.classList.toggle("audio-off", !media.audio);
  }
  if (room.screenStream) {
    const screen = addTile(room.userId, "screen", { local: true });
    screen.querySelector("video").srcObject = room.screenStream;
    screen.classList.remove("video-off");
  } else {
    removeTile(room.userId, "screen");
  }
  setPressed("toggle-mic", media.audio, media.audio ? "Turn off microphone" : "Turn on microphone");
  setPressed("toggle-camera", media.video, media.video ? "Turn off camera" : "Turn on camera");
  setPressed("toggle-screen", media.screen, media.screen ? "Stop sharing screen" : "Share screen");
  updatePerson({ userId: room.userId, media, connectionState: "connected", status: room.status, local: true });
  $("status-select").value = room.status;
}

function setPressed(id, pressed, title) {
  const button = $(id);
  button.setAttribute("aria-pressed", String(pressed));
  button.title = title;
}

// Tiles as large as the stage allows at 16:9, whatever the number of them.
export function layoutGrid() {
  const grid = $("grid");
  const count = grid.children.length;
  if (!count) return;
  const width = grid.clientWidth;
  const height = grid.clientHeight;
  if (!width || !height) return;
  const gap = parseFloat(getComputedStyle(grid).gap) || 8;
  let best = { cols: 1, tileWidth: 0 };
  for (let cols = 1; cols <= count; cols++) {
    const rows = Math.ceil(count / cols);
    const tileWidth = Math.min((width - gap * (cols - 1)) / cols, ((height - gap * (rows - 1)) / rows) * (16 / 9));
    if (tileWidth > best.tileWidth) best = { cols, tileWidth };
  }
  grid.style.setProperty("--cols", String(best.cols));
  grid.style.setProperty("--tile-width", `${Math.floor(best.tileWidth)}px`);
  grid.style.setProperty("--tile-height", `${Math.floor((best.tileWidth * 9) / 16)}px`);
}

// Who is speaking: the loudest voice above a threshold gets a ring.
export function startSpeakerLoop() {
  stopSpeakerLoop();
  const room = state.room;
  startMeter(room.localStream, (level) => {
    if (state.meter) state.meter.level = level;
  });
  // A voice stays lit a little after its last loud moment, so the ring does not flicker
  // between words.
  const lastLoud = new Map();
  let measuring = false;
  state.speakerTimer = setInterval(async () => {
    if (!state.room || measuring) return;
    measuring = true;
    try {
      const levels = [[room.userId, room.media.audio ? state.meter?.level ?? 0 : 0]];
      for (const participant of room.participants.values()) {
        const level = participant.media.audio ? await participant.audioLevelSinceLastCall() : 0;
        levels.push([participant.userId, level]);
      }
      const now = performance.now();
      for (const [userId, level] of levels) {
        if (level > 0.04) lastLoud.set(userId, now);
        const tile = state.tiles.get(tileKey(userId, "camera"));
        tile?.classList.toggle("speaking", now - (lastLoud.get(userId) ?? -Infinity) < 600);
      }
    } finally {
      measuring = false;
    }
  }, 200);
}

export function stopSpeakerLoop() {
  clearInterval(state.speakerTimer);
  stopMeter();
}
