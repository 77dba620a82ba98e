// The hubbub web app: join a room, call, chat and send files. Plain DOM on top of
// hubbub.js; index.html holds the markup, app.css the looks.

import { join } from "./hubbub.js";

const $ = (id) => document.getElementById(id);

const ERROR_TEXT = {
  "user-id-taken": (name) => `Someone called “${name}” is already in this room. Pick another name.`,
  "room-full": () => "This room is full.",
  "too-large": () => "That room name or display name is too long.",
  "bad-message": () => "Room and name cannot be empty or hold control characters.",
  unreachable: () => "Cannot reach the hubbub server. Check that it is running and that you are online, then try again.",
  timeout: () => "The server did not answer in time. Try again.",
  closed: () => "The server closed the connection. Try again.",
};

const MEDIA_ERROR_TEXT = {
  NotAllowedError:
    "Camera and microphone are blocked for this site. You can join without them, or allow them in the browser's site settings and reload.",
  SecurityError:
    "Camera and microphone are blocked for this site. You can join without them, or allow them in the browser's site settings and reload.",
  NotFoundError: "No camera or microphone was found. You can still join, chat and share files.",
  NotReadableError: "The camera or microphone is in use by another app. Close it and turn the camera on again.",
  OverconstrainedError: "The camera cannot give the requested picture; try another camera.",
  insecure:
    "The browser offers the camera only to secure pages: open this page over https:// (or on localhost). You can still join, chat and share files.",
};

// Every member sends its camera to every other (a mesh): 540p keeps that affordable.
const CAMERA = { width: { ideal: 960 }, height: { ideal: 540 }, frameRate: { ideal: 24 } };

const state = {
  room: null,
  stream: null, // camera and microphone, before and during the call
  wantMic: true,
  wantCamera: true,
  tiles: new Map(), // "userId:kind" -> tile element
  audio: new Map(), // userId -> audio element
  typing: new Set(),
  unread: 0,
  lastSender: null,
  cleanup: [],
  meter: null,
};

// -- small helpers ----------------------------------------------------------------

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

function icon(name, extraClass = "") {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", `icon ${extraClass}`.trim());
  svg.setAttribute("aria-hidden", "true");
  const use = document.createElementNS("http://www.w3.org/2000/svg", "use");
  use.setAttribute("href", `#i-${name}`);
  svg.append(use);
  return svg;
}

function initials(name) {
  const words = String(name).trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) return "?";
  const letters = words.length === 1 ? [...words[0]].slice(0, 2) : [[...words[0]][0], [...words.at(-1)][0]];
  return letters.join("").toUpperCase();
}

function colorFor(name) {
  let hash = 0;
  for (const char of String(name)) hash = (hash * 31 + char.codePointAt(0)) | 0;
  return `hsl(${Math.abs(hash) % 360} 45% 42%)`;
}

function avatar(name, extraClass = "") {
  const node = el("span", { class: `avatar ${extraClass}`.trim(), "aria-hidden": "true" }, initials(name));
  node.style.setProperty("--avatar", colorFor(name));
  return node;
}

function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = -1;
  do {
    value /= 1024;
    unit += 1;
  } while (value >= 1024 && unit < units.length - 1);
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

function formatTime(ts) {
  const date = ts ? new Date(ts) : new Date();
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function toast(text, ms = 3200) {
  const node = el("div", { class: "toast" }, text);
  $("toasts").append(node);
  setTimeout(() => node.remove(), ms);
}

function showMessage(id, text) {
  const node = $(id);
  node.textContent = text ?? "";
  node.hidden = !text;
}

function serverUrl() {
  const url = new URL(".", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.search = "";
  url.hash = "";
  return url.href;
}

function inviteUrl(room) {
  const url = new URL(location.pathname, location.href);
  url.searchParams.set("room", room);
  return url.href;
}

function randomRoomName() {
  const words = ["amber", "birch", "cedar", "delta", "ember", "fjord", "harbor", "juniper", "lumen", "maple", "nova", "orbit", "pine", "quartz", "river", "sierra", "tide", "willow"];
  const pick = () => words[crypto.getRandomValues(new Uint32Array(1))[0] % words.length];
  return `${pick()}-${pick()}-${crypto.getRandomValues(new Uint16Array(1))[0] % 100}`;
}

// -- local media ----------------------------------------------------------------

async function openMedia({ audio, video }) {
  if (!navigator.mediaDevices?.getUserMedia) {
    const error = new Error("insecure");
    error.name = "insecure";
    throw error;
  }
  return navigator.mediaDevices.getUserMedia({
    audio: audio ? { echoCancellation: true, noiseSuppression: true } : false,
    video: video ? CAMERA : false,
  });
}

function mediaErrorText(error) {
  return MEDIA_ERROR_TEXT[error?.name] ?? `The camera could not be opened (${error?.name ?? "unknown error"}).`;
}

// Ask for camera and microphone; with the camera refused or missing, try the microphone alone.
async function startPreview() {
  showMessage("media-message", "");
  let stream = null;
  try {
    stream = await openMedia({ audio: state.wantMic, video: state.wantCamera });
  } catch (error) {
    showMessage("media-message", mediaErrorText(error));
    if (state.wantCamera && error.name !== "insecure") {
      try {
        stream = await openMedia({ audio: true, video: false });
      } catch {
        stream = null;
      }
    }
    state.wantCamera = false;
    if (!stream) state.wantMic = false;
  }
  setPreviewStream(stream);
}

function setPreviewStream(stream) {
  state.stream = stream;
  const video = $("preview-video");
  video.srcObject = stream;
  const hasVideo = Boolean(stream?.getVideoTracks().length);
  $("preview-off").hidden = hasVideo;
  for (const track of stream?.getAudioTracks() ?? []) track.enabled = state.wantMic;
  state.wantMic = state.wantMic && Boolean(stream?.getAudioTracks().length);
  state.wantCamera = hasVideo;
  $("preview-mic").setAttribute("aria-pressed", String(state.wantMic));
  $("preview-camera").setAttribute("aria-pressed", String(state.wantCamera));
  startMeter(stream, (level) => {
    $("preview-level").style.height = `${Math.round(level * 100)}%`;
  });
}

// A level meter for the local microphone (remote levels come from hubbub.js).
function startMeter(stream, onLevel) {
  stopMeter();
  const track = stream?.getAudioTracks()[0];
  if (!track || !window.AudioContext) return;
  const context = new AudioContext();
  const source = context.createMediaStreamSource(new MediaStream([track]));
  const analyser = context.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const sample of samples) sum += sample * sample;
    const level = track.enabled ? Math.min(1, Math.sqrt(sum / samples.length) * 4) : 0;
    onLevel(level);
  }, 100);
  state.meter = { context, timer, level: 0 };
}

function stopMeter() {
  if (!state.meter) return;
  clearInterval(state.meter.timer);
  state.meter.context.close().catch(() => {});
  state.meter = null;
}

// -- join screen ---------------------------------------------------------------------

function setupJoinScreen() {
  const params = new URLSearchParams(location.search);
  $("room-input").value = params.get("room") || randomRoomName();
  $("name-input").value = params.get("name") || localStorage.getItem("hubbub.name") || "";
  updatePreviewAvatar();
  $("name-input").addEventListener("input", updatePreviewAvatar);

  $("preview-mic").addEventListener("click", async () => {
    state.wantMic = !state.wantMic;
    if (state.wantMic && !state.stream?.getAudioTracks().length) {
      try {
        const audio = await openMedia({ audio: true, video: false });
        const stream = state.stream ?? new MediaStream();
        stream.addTrack(audio.getAudioTracks()[0]);
        setPreviewStream(stream);
        return;
      } catch (error) {
        state.wantMic = false;
        showMessage("media-message", mediaErrorText(error));
      }
    }
    for (const track of state.stream?.getAudioTracks() ?? []) track.enabled = state.wantMic;
    $("preview-mic").setAttribute("aria-pressed", String(state.wantMic));
  });

  $("preview-camera").addEventListener("click", async () => {
    if (state.wantCamera) {
      for (const track of state.stream?.getVideoTracks() ?? []) {
        track.stop();
        state.stream.removeTrack(track);
      }
      state.wantCamera = false;
      setPreviewStream(state.stream);
      return;
    }
    try {
      const video = await openMedia({ audio: false, video: true });
      const stream = state.stream ?? new MediaStream();
      stream.addTrack(video.getVideoTracks()[0]);
      state.wantCamera = true;
      showMessage("media-message", "");
      // A new MediaStream object, so the <video> picks up the new track at once.
      setPreviewStream(new MediaStream(stream.getTracks()));
    } catch (error) {
      showMessage("media-message", mediaErrorText(error));
    }
  });

  $("join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    enterRoom();
  });
}

function updatePreviewAvatar() {
  const name = $("name-input").value.trim() || "?";
  const node = $("preview-avatar");
  node.textContent = initials(name);
  node.style.setProperty("--avatar", colorFor(name));
}

async function enterRoom() {
  const roomInput = $("room-input");
  const nameInput = $("name-input");
  const roomName = roomInput.value.trim();
  const name = nameInput.value.trim();
  roomInput.setAttribute("aria-invalid", String(!roomName));
  nameInput.setAttribute("aria-invalid", String(!name));
  if (!roomName || !name) {
    showMessage("join-error", !roomName ? "Give the room a name." : "Tell the others your name.");
    (!roomName ? roomInput : nameInput).focus();
    return;
  }
  showMessage("join-error", "");
  const button = $("join-button");
  button.disabled = true;
  button.classList.add("busy");
  button.querySelector(".button-label").textContent = "Joining";
  localStorage.setItem("hubbub.name", name);
  // The camera may still be opening (or its permission prompt still open): give it a
  // moment, so the call starts with it rather than without.
  await Promise.race([state.previewReady, new Promise((resolve) => setTimeout(resolve, 8000))]);
  const stream = state.stream ?? new MediaStream();
  try {
    const room = await join(serverUrl(), { room: roomName, userId: name, stream });
    state.stream = stream;
    startCall(room);
  } catch (error) {
    const text = ERROR_TEXT[error.code]?.(name) ?? `The server refused: ${error.message}`;
    showMessage("join-error", text);
    if (error.code === "user-id-taken") {
      nameInput.setAttribute("aria-invalid", "true");
      nameInput.focus();
      nameInput.select();
    }
  } finally {
    button.disabled = false;
    button.classList.remove("busy");
    button.querySelector(".button-label").textContent = "Join room";
  }
}

// -- the call ----------------------------------------------------------------------

function startCall(room) {
  state.room = room;
  state.unread = 0;
  state.lastSender = null;
  $("join-screen").hidden = true;
  $("call-screen").hidden = false;
  $("room-title").textContent = room.name;
  $("toggle-screen").hidden = !room.can("screen") || !navigator.mediaDevices?.getDisplayMedia;
  document.title = `${room.name} · hubbub`;
  history.replaceState(null, "", inviteUrl(room.name));
  $("messages").replaceChildren();
  $("people").replaceChildren();
  $("grid").replaceChildren();
  setPanelOpen(window.matchMedia("(min-width: 901px)").matches);

  addTile(room.userId, "camera", { local: true });
  const localTile = state.tiles.get(`${room.userId}:camera`);
  localTile.querySelector("video").srcObject = state.stream;
  addPerson(room.userId, { local: true });
  updateLocalMedia();

  const on = (type, handler) => state.cleanup.push(room.on(type, handler));
  on("participant-joined", ({ participant }) => {
    addPerson(participant.userId);
    addTile(participant.userId, "camera");
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
  on("peer-state", ({ participant }) => updateParticipant(participant));
  on("stream", ({ participant, stream, kind }) => showStream(participant, stream, kind));
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
    if (status === "offline") renderOffline(room);
  });
  on("file-offer", ({ transfer }) => fileCard(transfer));
  on("connection-state", ({ state: connection, reason }) => showConnection(connection, reason));
  on("reconnecting", ({ attempt, delayMs }) => showReconnectAttempt(attempt, delayMs));
  on("local-stream", () => updateLocalMedia());

  setupOlderMessages(room);
  for (const entry of room.history ?? []) chatMessage({ ...entry, mine: entry.userId === room.userId }, true);
  for (const participant of room.participants.values()) {
    addPerson(participant.userId);
    addTile(participant.userId, "camera");
    updateParticipant(participant);
  }
  renderOffline(room);
  state.initialized = true;
  showConnection(room.state);
  startSpeakerLoop();
  layoutGrid();
  updateCounts();
}

function leaveCall({ rejoin = false } = {}) {
  const room = state.room;
  if (!room) return;
  for (const off of state.cleanup.splice(0)) off();
  room.leave();
  stopSpeakerLoop();
  showReconnectAttempt(0, 0);
  state.room = null;
  state.initialized = false;
  state.tiles.clear();
  state.typing.clear();
  for (const audio of state.audio.values()) audio.remove();
  state.audio.clear();
  if (room.screenStream) for (const track of room.screenStream.getTracks()) track.stop();
  $("call-screen").hidden = true;
  $("join-screen").hidden = false;
  document.title = "hubbub";
  // The camera stays open for the preview: joining again is one click.
  state.stream = room.localStream ?? state.stream;
  state.wantMic = room.media.audio;
  state.wantCamera = room.media.video;
  setPreviewStream(state.stream);
  if (rejoin) enterRoom();
  else $("join-button").focus();
}

// -- tiles -------------------------------------------------------------------------

function tileKey(userId, kind) {
  return `${userId}:${kind}`;
}

function nameOf(userId) {
  const room = state.room;
  if (room && userId === room.userId) return room.displayName ?? userId;
  return room?.participants.get(userId)?.displayName ?? userId;
}

function addTile(userId, kind, { local = false } = {}) {
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

function removeTile(userId, kind) {
  const key = tileKey(userId, kind);
  const tile = state.tiles.get(key);
  if (!tile) return;
  state.tiles.delete(key);
  tile.remove();
  layoutGrid();
}

function showStream(participant, stream, kind) {
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

function updateParticipant(participant) {
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

function updateLocalMedia() {
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
function layoutGrid() {
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
function startSpeakerLoop() {
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

function stopSpeakerLoop() {
  clearInterval(state.speakerTimer);
  stopMeter();
}

// -- people ------------------------------------------------------------------------

function addPerson(userId, { local = false } = {}) {
  if (document.querySelector(`.person[data-user="${CSS.escape(userId)}"]`)) return;
  const name = nameOf(userId);
  const sendButton = local
    ? null
    : el(
        "button",
        {
          type: "button",
          class: "icon-button send-file",
          "aria-label": `Send a file to ${name}`,
          title: `Send a file to ${name}`,
          onclick: () => pickFileFor(userId),
        },
        icon("clip"),
      );
  const item = el(
    "li",
    { class: "person", dataset: { user: userId } },
    el(
      "span",
      { class: "avatar-wrap" },
      avatar(name),
      el("span", { class: "presence", dataset: { status: local ? "online" : "connecting" }, role: "img", "aria-label": local ? "online" : "connecting" }),
    ),
    el(
      "span",
      { class: "person-text" },
      el("span", { class: "person-name" }, local ? `${name} (you)` : name),
      el("span", { class: "person-state" }),
    ),
    el("span", { class: "person-media" }),
    sendButton,
  );
  const list = $("people");
  if (local) list.prepend(item);
  else list.append(item);
  updateCounts();
}

function removePerson(userId) {
  document.querySelector(`.person[data-user="${CSS.escape(userId)}"]`)?.remove();
  updateCounts();
}

function updatePerson(participant) {
  const item = document.querySelector(`.person[data-user="${CSS.escape(participant.userId)}"]`);
  if (!item) return;
  const connected = participant.local || participant.connectionState === "connected";
  const status = connected ? participant.status || "online" : participant.connectionState === "closed" ? "offline" : "connecting";
  const dot = item.querySelector(".presence");
  dot.dataset.status = status;
  dot.setAttribute("aria-label", status);
  const words = [];
  if (participant.connection === "reconnecting") words.push("reconnecting…");
  else if (!connected) words.push("connecting…");
  else if (status !== "online") words.push(status);
  if (participant.media?.screen) words.push("sharing screen");
  if (state.typing.has(participant.userId)) words.push("typing…");
  item.querySelector(".person-state").textContent = words.join(" · ");
  const media = item.querySelector(".person-media");
  media.replaceChildren(
    icon(participant.media?.audio ? "mic" : "mic-off", participant.media?.audio ? "" : "off"),
    icon(participant.media?.video ? "video" : "video-off", participant.media?.video ? "" : "off"),
  );
  media.setAttribute(
    "aria-label",
    `microphone ${participant.media?.audio ? "on" : "off"}, camera ${participant.media?.video ? "on" : "off"}`,
  );
  media.setAttribute("role", "img");
}

// Who chatted here and is gone, with when they were last seen.
function renderOffline(room) {
  const here = new Set([room.userId, ...room.participants.keys()]);
  const gone = room.offline.filter((entry) => !here.has(entry.userId));
  $("offline-heading").hidden = $("offline-people").hidden = gone.length === 0;
  $("offline-people").replaceChildren(
    ...gone.map(({ userId, lastSeen }) =>
      el(
        "li",
        { class: "person", dataset: { user: userId, offline: "true" } },
        el(
          "span",
          { class: "avatar-wrap" },
          avatar(userId),
          el("span", { class: "presence", dataset: { status: "offline" }, role: "img", "aria-label": "offline" }),
        ),
        el(
          "span",
          { class: "person-text" },
          el("span", { class: "person-name" }, userId),
          el("span", { class: "person-state" }, lastSeen ? `last seen ${formatLastSeen(lastSeen)}` : "offline"),
        ),
      ),
    ),
  );
}

function formatLastSeen(ts) {
  const date = new Date(ts);
  const today = new Date().toDateString() === date.toDateString();
  return today ? `at ${formatTime(ts)}` : date.toLocaleDateString([], { month: "short", day: "numeric" });
}

function updateCounts() {
  const count = $("people").children.length;
  $("people-badge").textContent = String(count);
  $("people-count").textContent = count === 1 ? "just you" : `${count} people`;
}

// -- chat --------------------------------------------------------------------------

const DELIVERY_TEXT = { pending: "Sending…", sent: "Sent", failed: "Not sent" };

function chatMessage(entry, fromHistory = false) {
  const list = $("messages");
  // A stored message is shown once, however it came (live, a page of history, caught up).
  if (typeof entry.seq === "number" && list.querySelector(`.message-item[data-seq="${entry.seq}"]`)) return null;
  const name = entry.mine ? "You" : entry.displayName ?? nameOf(entry.userId);
  const dataset = { from: entry.userId };
  if (typeof entry.seq === "number") dataset.seq = String(entry.seq);
  if (entry.clientId) dataset.clientId = entry.clientId;
  const item = el(
    "li",
    { class: `message-item${entry.mine ? " mine" : ""}`, dataset },
    el(
      "div",
      { class: "message-meta" },
      el("span", { class: "who" }, name),
      el("time", { datetime: new Date(entry.ts ?? Date.now()).toISOString() }, formatTime(entry.ts)),
    ),
    el("div", { class: "bubble" }, entry.message),
  );
  if (entry.mine && entry.status) item.append(el("div", { class: "delivery" }));
  // Stored messages go in `seq` order (older pages, messages missed while away);
  // the rest in the order they come.
  const later =
    typeof entry.seq === "number" &&
    [...list.querySelectorAll(".message-item[data-seq]")].find((node) => Number(node.dataset.seq) > entry.seq);
  if (later) {
    later.before(item);
    later.classList.remove("continued");
  } else {
    if (state.lastSender === entry.userId) item.classList.add("continued");
    state.lastSender = entry.userId;
    appendToLog(item);
  }
  if (entry.mine && entry.status) setDelivery(item, entry);
  if (!entry.mine && !fromHistory) {
    setTyping(entry.userId, false);
    noteUnread();
  }
  return item;
}

function setDelivery(item, entry) {
  item.dataset.status = entry.status;
  item.classList.toggle("pending", entry.status === "pending");
  if (typeof entry.seq === "number") item.dataset.seq = String(entry.seq);
  const text = DELIVERY_TEXT[entry.status] ?? "";
  const detail = entry.status === "failed" && entry.error ? `: ${entry.error.message}` : "";
  item.querySelector(".delivery").textContent = text + detail;
  // "Sent" shows under the last of one's own messages only; "Sending…" under each.
  const mine = [...$("messages").querySelectorAll(".message-item.mine")];
  for (const node of mine) node.classList.toggle("latest-mine", node === mine.at(-1));
}

function onChatStatus(entry) {
  const item = document.querySelector(`.message-item[data-client-id="${CSS.escape(entry.clientId)}"]`);
  if (item) setDelivery(item, entry);
}

// Older messages: a button at the top of the list (for the keyboard), pressed by
// itself when scrolled into view.
function setupOlderMessages(room) {
  const list = $("messages");
  const button = el("button", { type: "button", class: "ghost-button load-older" }, "Load older messages");
  const holder = el("li", { class: "older-item" }, button);
  list.prepend(holder);
  let loading = false;
  const update = () => {
    holder.hidden = !room.storesChat || room.historyComplete;
  };
  const load = async () => {
    if (loading || room.historyComplete || state.room !== room) return;
    loading = true;
    button.textContent = "Loading…";
    const before = list.scrollHeight - list.scrollTop;
    try {
      const older = await room.loadOlderChat();
      for (const entry of older) chatMessage(entry, true);
      list.scrollTop = list.scrollHeight - before; // the message in view stays in view
    } catch {
      toast("Older messages could not be loaded.");
    } finally {
      loading = false;
      button.textContent = "Load older messages";
      update();
    }
  };
  button.addEventListener("click", load);
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting) && list.scrollHeight > list.clientHeight) load();
  }, { root: list });
  observer.observe(button);
  state.cleanup.push(() => observer.disconnect());
  update();
}

function systemMessage(text) {
  state.lastSender = null;
  appendToLog(el("li", { class: "system-item" }, text));
}

function appendToLog(item) {
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  list.append(item);
  if (atBottom || item.classList.contains("mine")) list.scrollTop = list.scrollHeight;
}

function noteUnread() {
  const chatVisible = panelOpen() && $("tab-chat").getAttribute("aria-selected") === "true";
  if (chatVisible && document.visibilityState === "visible") return;
  state.unread += 1;
  $("unread").textContent = String(state.unread);
  $("unread").hidden = false;
  $("unread-dot").hidden = false;
}

function clearUnread() {
  state.unread = 0;
  $("unread").hidden = true;
  $("unread-dot").hidden = true;
}

function setTyping(userId, typing) {
  if (typing) state.typing.add(userId);
  else state.typing.delete(userId);
  const names = [...state.typing].map(nameOf);
  let text = "";
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = `${names.length} people are typing…`;
  $("typing").textContent = text;
  const participant = state.room?.participants.get(userId);
  if (participant) updatePerson(participant);
}

async function sendChat() {
  const input = $("chat-input");
  const text = input.value.trim();
  if (!text || !state.room) return;
  try {
    // Shown at once as "Sending…"; the library sends it until the server has stored it.
    const entry = await state.room.sendChat(text);
    input.value = "";
    autosize(input);
    chatMessage(entry);
  } catch {
    toast("Not connected: the message was not sent.");
  }
}

function autosize(textarea) {
  textarea.style.height = "auto";
  textarea.style.height = `${Math.min(textarea.scrollHeight, 128)}px`;
}

// -- files -------------------------------------------------------------------------

let fileTarget = null;

function pickFileFor(userId) {
  fileTarget = userId;
  const input = $("file-input");
  input.value = "";
  input.click();
}

function sendFiles(userId, files) {
  selectTab("chat"); // where the transfer shows
  for (const file of files) {
    try {
      const transfer = state.room.sendFile(userId, file);
      fileCard(transfer);
    } catch (error) {
      toast(`Could not send ${file.name}: ${error.message}`);
    }
  }
}

function fileCard(transfer) {
  const incoming = transfer.direction === "receive";
  const peerName = nameOf(transfer.userId);
  const progress = el("progress", { max: String(Math.max(1, transfer.size)), value: "0", "aria-label": `${transfer.name}: progress` });
  const status = el("div", { class: "file-status", "aria-live": "polite" });
  const actions = el("div", { class: "file-actions" });
  const detail = el(
    "div",
    { class: "file-detail" },
    `${formatBytes(transfer.size)} · ${incoming ? "from" : "to"} ${nameOf(transfer.userId)}`,
  );
  const card = el(
    "li",
    { class: "file-card", dataset: { transfer: transfer.id, direction: transfer.direction, state: transfer.state } },
    icon("file", "file-icon"),
    el("div", { class: "file-name", title: transfer.name }, transfer.name),
    detail,
    progress,
    status,
    actions,
  );
  const button = (label, onclick, extra = "") =>
    el("button", { type: "button", class: `ghost-button ${extra}`.trim(), onclick }, label);

  let lastBytes = 0;
  let lastAt = performance.now();
  let rate = 0;
  const render = () => {
    card.dataset.state = transfer.state;
    progress.value = transfer.bytes;
    progress.setAttribute("value", String(transfer.bytes));
    const percent = transfer.size ? Math.floor((transfer.bytes / transfer.size) * 100) : 100;
    switch (transfer.state) {
      case "offered":
        status.textContent = incoming ? `${peerName} wants to send you this file.` : `Waiting for ${peerName} to accept…`;
        break;
      case "transferring": {
        const now = performance.now();
        if (now - lastAt > 400) {
          rate = ((transfer.bytes - lastBytes) / (now - lastAt)) * 1000;
          lastBytes = transfer.bytes;
          lastAt = now;
        }
        status.textContent = `${percent}% · ${formatBytes(transfer.bytes)} of ${formatBytes(transfer.size)}${rate > 0 ? ` · ${formatBytes(rate)}/s` : ""}`;
        break;
      }
      case "verifying":
        status.textContent = "Checking the file…";
        break;
      case "done":
        status.textContent = incoming ? "Received and verified (SHA-256)." : `Delivered to ${peerName} and verified.`;
        break;
      case "rejected":
        status.textContent = incoming ? "Declined." : `${peerName} declined the file.`;
        break;
      case "cancelled":
        status.textContent = `Cancelled${transfer.error && transfer.error !== "cancelled" ? `: ${transfer.error}` : "."}`;
        break;
      default:
        status.textContent = `Failed: ${transfer.error ?? "unknown error"}.`;
    }
    const buttons = [];
    if (incoming && transfer.state === "offered") {
      buttons.push(
        button("Accept", () => transfer.accept(), "small-primary accept-file"),
        button("Decline", () => transfer.reject(), "decline-file"),
      );
    } else if (["offered", "transferring"].includes(transfer.state)) {
      buttons.push(button("Cancel", () => transfer.cancel(), "cancel-file"));
    } else if (incoming && transfer.state === "done" && transfer.blob) {
      const link = el(
        "a",
        { class: "ghost-button small-primary save-file", href: URL.createObjectURL(transfer.blob), download: transfer.name },
        icon("download"),
        "Save",
      );
      buttons.push(link);
    }
    const current = [...actions.children].map((node) => node.className).join("|");
    const next = buttons.map((node) => node.className).join("|");
    if (current !== next) actions.replaceChildren(...buttons);
  };
  transfer.on("progress", render);
  transfer.on("state", render);
  render();
  appendToLog(card);
  state.lastSender = null;
  if (incoming) {
    noteUnread();
    toast(`${peerName} wants to send you ${transfer.name}`);
  }
}

// -- panel, controls, connection ----------------------------------------------------------

function panelOpen() {
  return !$("side-panel").classList.contains("collapsed");
}

function setPanelOpen(open) {
  $("side-panel").classList.toggle("collapsed", !open);
  $("toggle-panel").setAttribute("aria-pressed", String(open));
  $("toggle-panel").title = open ? "Hide chat and people" : "Show chat and people";
  if (open && $("tab-chat").getAttribute("aria-selected") === "true") clearUnread();
  requestAnimationFrame(layoutGrid);
}

function selectTab(name) {
  for (const tab of ["chat", "people"]) {
    const selected = tab === name;
    const button = $(`tab-${tab}`);
    button.setAttribute("aria-selected", String(selected));
    button.tabIndex = selected ? 0 : -1;
    $(`${tab}-panel`).hidden = !selected;
  }
  if (name === "chat") clearUnread();
}

// The countdown to the next attempt is for the eye only: a screen reader hears the
// banner's text once, not every second.
function showReconnectAttempt(attempt, delayMs) {
  clearInterval(state.countdownTimer);
  const node = $("retry-countdown");
  node.textContent = "";
  if (!attempt) return;
  const due = Date.now() + delayMs;
  const tick = () => {
    const seconds = Math.ceil((due - Date.now()) / 1000);
    node.textContent = seconds > 0 ? `Attempt ${attempt}, next in ${seconds} s` : `Attempt ${attempt}…`;
    if (seconds <= 0) clearInterval(state.countdownTimer);
  };
  tick();
  state.countdownTimer = setInterval(tick, 500);
}

const CLOSED_TEXT = {
  replaced: "You joined this room from another tab or device, so this one left the call.",
  removed: "An admin removed you from the room.",
  "room-ended": "An admin ended the room.",
  flooded: "The server disconnected this page for sending too much, too fast.",
  "gave-up": "The server could not be reached for several minutes.",
};

// How the room came back: the same session with nothing lost, or joined afresh.
const RECONNECTED_TEXT = {
  resumed: "Reconnected. Nothing was missed.",
  rejoined: "Reconnected. Calls are set up again; messages sent meanwhile are shown.",
};

function showConnection(connection, reason = null) {
  const banner = $("connection-banner");
  banner.classList.toggle("closed", connection === "closed");
  $("rejoin-button").hidden = connection !== "closed";
  $("retry-now").hidden = connection !== "reconnecting";
  if (connection !== "reconnecting") showReconnectAttempt(0, 0);
  if (connection === "reconnecting") {
    const why = reason?.code === "server-restart" ? "The server is restarting." : "Connection to the server lost.";
    $("connection-text").textContent = `${why} Reconnecting… Calls already running carry on.`;
    banner.hidden = false;
  } else if (connection === "closed") {
    $("connection-text").textContent = CLOSED_TEXT[reason?.code] ?? "Disconnected from the server.";
    banner.hidden = false;
  } else {
    if (!banner.hidden && connection === "open") toast(RECONNECTED_TEXT[reason?.code] ?? "Reconnected.");
    banner.hidden = true;
  }
}

function setupCallScreen() {
  $("toggle-mic").addEventListener("click", async () => {
    const room = state.room;
    try {
      await room.setMicrophone(!room.media.audio);
    } catch (error) {
      toast(mediaErrorText(error), 6000);
    }
  });
  $("toggle-camera").addEventListener("click", async () => {
    const room = state.room;
    try {
      await room.setCamera(!room.media.video, CAMERA);
    } catch (error) {
      toast(mediaErrorText(error), 6000);
    }
  });
  $("toggle-screen").addEventListener("click", async () => {
    const room = state.room;
    try {
      if (room.media.screen) await room.stopScreenShare();
      else await room.startScreenShare();
    } catch (error) {
      if (error.name !== "NotAllowedError" && error.name !== "AbortError") toast(`Screen sharing failed: ${error.message}`);
    }
  });
  $("toggle-panel").addEventListener("click", () => setPanelOpen(!panelOpen()));
  $("close-panel").addEventListener("click", () => setPanelOpen(false));
  $("leave").addEventListener("click", () => leaveCall());
  $("rejoin-button").addEventListener("click", () => leaveCall({ rejoin: true }));
  $("retry-now").addEventListener("click", () => state.room?.reconnectNow());
  $("enable-sound").addEventListener("click", () => {
    for (const audio of state.audio.values()) audio.play().catch(() => {});
    $("sound-banner").hidden = true;
  });
  $("copy-invite").addEventListener("click", async () => {
    const link = inviteUrl(state.room.name);
    try {
      await navigator.clipboard.writeText(link);
      toast("Invite link copied.");
    } catch {
      window.prompt("Copy this invite link:", link);
    }
  });

  for (const tab of ["chat", "people"]) $(`tab-${tab}`).addEventListener("click", () => selectTab(tab));
  document.querySelector(".tabs").addEventListener("keydown", (event) => {
    if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
    const next = $("tab-chat").getAttribute("aria-selected") === "true" ? "people" : "chat";
    selectTab(next);
    $(`tab-${next}`).focus();
  });

  const input = $("chat-input");
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendChat();
    }
  });
  input.addEventListener("input", () => {
    autosize(input);
    if (input.value.trim()) state.room?.typing();
  });
  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sendChat();
  });

  $("status-select").addEventListener("change", async (event) => {
    const room = state.room;
    if (!room) return;
    const status = event.target.value;
    try {
      await room.setStatus(status);
    } catch (error) {
      event.target.value = room.status;
      if (error.code === "unknown-type") $("status-row").hidden = true; // the server has no presence
      else toast(`Your status could not be changed: ${error.message}`);
    }
  });

  $("file-input").addEventListener("change", (event) => {
    if (fileTarget && state.room) sendFiles(fileTarget, event.target.files);
    fileTarget = null;
  });

  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && panelOpen() && window.matchMedia("(max-width: 900px)").matches) {
      setPanelOpen(false);
      $("toggle-panel").focus();
    }
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && panelOpen() && $("tab-chat").getAttribute("aria-selected") === "true") {
      clearUnread();
    }
  });
  new ResizeObserver(() => layoutGrid()).observe($("grid"));
  window.addEventListener("pagehide", () => state.room?.leave());
}

setupJoinScreen();
setupCallScreen();
state.previewReady = startPreview();
