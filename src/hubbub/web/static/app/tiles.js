// tiles.js: the web app's video tiles, one per camera or screen, and who is speaking.

import { applySpeaker, offersCameraSwitch, switchToNextCamera } from "./devices.js";
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
  const pin = el(
    "button",
    { type: "button", class: "tile-button pin-tile", "aria-pressed": "false", onclick: () => togglePin(key) },
    icon("pin"),
  );
  const full = el(
    "button",
    { type: "button", class: "tile-button full-tile", onclick: () => toggleFullScreen(tile) },
    icon("expand"),
  );
  const tile = el(
    "figure",
    { class: "tile", dataset: { user: userId, kind }, "aria-label": label },
    video,
    el("div", { class: "tile-placeholder" }, avatar(displayName)),
    el(
      "figcaption",
      {},
      icon("mic-off", "muted-icon"),
      el("span", { class: "name" }, label),
      el("span", { class: "quality", role: "img", hidden: true }, el("i"), el("i"), el("i")),
    ),
    el("span", { class: "tile-status" }),
    el("div", { class: "tile-tools" }, pin, full),
  );
  if (local && kind === "camera") {
    // Front and back camera, on a phone: from one's own tile.
    const flip = el(
      "button",
      { type: "button", class: "tile-button flip-tile", hidden: true, "aria-label": "Switch camera", title: "Switch between front and back camera", onclick: () => switchToNextCamera() },
      icon("flip"),
    );
    tile.querySelector(".tile-tools").prepend(flip);
    offersCameraSwitch().then((offered) => {
      flip.hidden = !offered;
    });
  }
  labelTileButtons(tile, label);
  if (local) tile.dataset.local = "true";
  if (kind === "camera") tile.classList.add("video-off");
  state.tiles.set(key, tile);
  $("grid").append(tile);
  layoutGrid();
  return tile;
}

function labelTileButtons(tile, label) {
  const pinned = tile.classList.contains("pinned");
  const pin = tile.querySelector(".pin-tile");
  pin.setAttribute("aria-label", pinned ? `Unpin ${label}` : `Pin ${label}`);
  pin.title = pinned ? "Unpin" : "Pin to the stage";
  pin.setAttribute("aria-pressed", String(pinned));
  const full = tile.querySelector(".full-tile");
  full.setAttribute("aria-label", `Full screen: ${label}`);
  full.title = "Full screen";
}

/** Pin a tile to the stage (or unpin it): it stays there, large, whoever speaks or shares. */
export function togglePin(key) {
  state.pinned = state.pinned === key ? null : key;
  for (const [tileKeyOf, tile] of state.tiles) {
    tile.classList.toggle("pinned", tileKeyOf === state.pinned);
    labelTileButtons(tile, tile.getAttribute("aria-label"));
  }
  layoutGrid();
}

function toggleFullScreen(tile) {
  if (document.fullscreenElement === tile) document.exitFullscreen().catch(() => {});
  else tile.requestFullscreen?.().catch(() => {});
}

export function removeTile(userId, kind) {
  const key = tileKey(userId, kind);
  const tile = state.tiles.get(key);
  if (!tile) return;
  state.tiles.delete(key);
  if (state.pinned === key) state.pinned = null;
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
    applySpeaker(audio);
  }
  if (audio.srcObject !== stream) audio.srcObject = stream;
  audio.play().catch(() => {
    $("sound-banner").hidden = false;
  });
}

/** Whether a participant may send a camera: one without the `publish` grant watches only. */
export function publishes(participant) {
  return !participant.grants || participant.grants.includes("publish");
}

/** Whether the call with a participant is up: its peer connection, or the media server. */
export function callUp(participant) {
  return participant.connectionState === "connected" || state.room?.mediaMode === "sfu";
}

export function updateParticipant(participant) {
  const tile = state.tiles.get(tileKey(participant.userId, "camera"));
  if (tile) {
    const video = tile.querySelector("video");
    const hasVideo = Boolean(video.srcObject?.getVideoTracks().length);
    tile.classList.toggle("video-off", !participant.media.video || !hasVideo);
    tile.classList.toggle("audio-off", !participant.media.audio);
    const sfu = state.room?.mediaMode === "sfu";
    const connecting = !sfu && !["connected", "closed"].includes(participant.connectionState);
    const failed = !sfu && participant.connectionState === "failed";
    const lost =
      (!sfu && participant.connectionState === "disconnected") || participant.connection === "reconnecting";
    const status = tile.querySelector(".tile-status");
    status.textContent = failed ? "Can't connect" : lost ? "Reconnecting…" : connecting ? "Connecting…" : "";
    status.classList.toggle("problem", failed);
    if (!callUp(participant)) tile.querySelector(".quality").hidden = true;
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
  $("presenting-bar").hidden = !media.screen;
  updatePerson({ userId: room.userId, media, connectionState: "connected", status: room.status, local: true });
  $("status-select").value = room.status;
}

function setPressed(id, pressed, title) {
  const button = $(id);
  button.setAttribute("aria-pressed", String(pressed));
  button.title = title;
}

// -- the stage's layouts ------------------------------------------------------------
//
// Every tile is placed by its box, so that moving between layouts animates:
// - solo: oneself alone, large, with the invite (the empty state);
// - duo: two people: the other fills the stage, oneself small in a corner;
// - stage: a pinned tile or a shared screen takes the stage, the others in a strip
//   (beside it on a wide screen, under it on a tall one);
// - grid: everyone alike, as large as the stage allows at 16:9;
// - speaker: past GRID_MAX cameras, who spoke last takes the stage and the others
//   follow in a strip, a page of them at a time.

const ASPECT = 16 / 9;
const GRID_MAX = 9; // cameras a grid shows at once; more, and the speaker view takes over

/** The tile on the stage, if any: the pinned one, else a screen (someone else's first). */
function featuredTile(tiles) {
  if (state.pinned && state.tiles.has(state.pinned)) return state.tiles.get(state.pinned);
  const screens = tiles.filter((tile) => tile.dataset.kind === "screen");
  return screens.find((tile) => !tile.dataset.local) ?? screens[0] ?? null;
}

export function layoutGrid() {
  const grid = $("grid");
  const tiles = [...grid.children].filter((node) => node.classList.contains("tile"));
  const width = grid.clientWidth;
  const height = grid.clientHeight;
  if (!tiles.length || !width || !height) return;
  const gap = parseFloat(getComputedStyle(grid).gap) || 8;
  const featured = featuredTile(tiles);
  const local = tiles.find((tile) => tile.dataset.local && tile.dataset.kind === "camera");
  let layout;
  let boxes;
  let pager = null;
  if (featured && tiles.length > 1) {
    layout = "stage";
    boxes = stageBoxes(featured, tiles, width, height, gap);
  } else if (tiles.length > GRID_MAX) {
    layout = "speaker";
    ({ boxes, pager } = speakerBoxes(tiles, local, width, height, gap));
  } else if (tiles.length === 2 && local) {
    layout = "duo";
    boxes = duoBoxes(tiles.find((tile) => tile !== local), local, width, height);
  } else {
    layout = tiles.length === 1 && local ? "solo" : "grid";
    // Others first, oneself last (screens lead: they are what people look at).
    const rank = (tile) => (tile.dataset.kind === "screen" ? 0 : tile === local ? 2 : 1);
    const ordered = tiles.map((tile, index) => [tile, index]).sort((a, b) => rank(a[0]) - rank(b[0]) || a[1] - b[1]);
    boxes = gridBoxes(ordered.map(([tile]) => tile), width, height, gap);
  }
  grid.dataset.layout = layout;
  showPager(pager);
  for (const tile of tiles) {
    const box = boxes.get(tile);
    tile.dataset.role = box.role;
    // Through the media server, each video comes in the simulcast layer its tile needs.
    if (tile.dataset.kind === "camera" && !tile.dataset.local) {
      state.room?.setReceiveSize?.(tile.dataset.user, box.role === "hidden" ? 0 : box.w);
    }
    Object.assign(tile.style, {
      left: `${Math.round(box.x)}px`,
      top: `${Math.round(box.y)}px`,
      width: `${Math.round(box.w)}px`,
      height: `${Math.round(box.h)}px`,
    });
  }
  showEmptyState(layout === "solo");
}

function gridBoxes(tiles, width, height, gap) {
  const count = tiles.length;
  let best = { cols: 1, tileWidth: 0 };
  for (let cols = 1; cols <= count; cols++) {
    const rows = Math.ceil(count / cols);
    const tileWidth = Math.min((width - gap * (cols - 1)) / cols, ((height - gap * (rows - 1)) / rows) * ASPECT);
    if (tileWidth > best.tileWidth) best = { cols, tileWidth };
  }
  const { cols, tileWidth: w } = best;
  const h = w / ASPECT;
  const rows = Math.ceil(count / cols);
  const top = (height - (rows * h + (rows - 1) * gap)) / 2;
  const boxes = new Map();
  tiles.forEach((tile, index) => {
    const row = Math.floor(index / cols);
    const inRow = Math.min(cols, count - row * cols);
    const left = (width - (inRow * w + (inRow - 1) * gap)) / 2;
    boxes.set(tile, { x: left + (index % cols) * (w + gap), y: top + row * (h + gap), w, h, role: "grid" });
  });
  return boxes;
}

// The speaker view: who spoke last large, the others in a strip, a page at a time
// (oneself always in the strip).
function speakerBoxes(tiles, local, width, height, gap) {
  const cameras = tiles.filter((tile) => tile !== local);
  const main =
    cameras.find((tile) => tile.dataset.user === state.speaker && tile.dataset.kind === "camera") ?? cameras[0];
  const rest = cameras.filter((tile) => tile !== main);
  const wide = width >= height * 1.1;
  const perPage = Math.max(1, Math.floor((wide ? height : width) / (wide ? 110 : 170)) - (local ? 1 : 0));
  const pages = Math.max(1, Math.ceil(rest.length / perPage));
  state.stripPage = Math.min(state.stripPage, pages - 1);
  const shown = rest.slice(state.stripPage * perPage, (state.stripPage + 1) * perPage);
  const strip = local ? [...shown, local] : shown;
  const boxes = stageBoxes(main, [main, ...strip], width, height, gap);
  for (const tile of tiles) {
    if (!boxes.has(tile)) boxes.set(tile, { x: 0, y: 0, w: 0, h: 0, role: "hidden" });
  }
  return { boxes, pager: pages > 1 ? { page: state.stripPage, pages } : null };
}

function showPager(pager) {
  const nav = $("strip-pager");
  if (!nav) return;
  nav.hidden = !pager;
  if (!pager) return;
  $("strip-page").textContent = `${pager.page + 1} / ${pager.pages}`;
  $("strip-previous").disabled = pager.page === 0;
  $("strip-next").disabled = pager.page >= pager.pages - 1;
  $("strip-previous").onclick = () => {
    state.stripPage = Math.max(0, state.stripPage - 1);
    layoutGrid();
  };
  $("strip-next").onclick = () => {
    state.stripPage += 1;
    layoutGrid();
  };
}

function duoBoxes(other, local, width, height) {
  const portrait = height > width;
  const w = portrait ? Math.max(96, width * 0.3) : Math.min(280, Math.max(150, width * 0.22));
  const h = portrait ? w * (4 / 3) : w / ASPECT;
  const margin = portrait ? 10 : 14;
  return new Map([
    [other, { x: 0, y: 0, w: width, h: height, role: "main" }],
    [local, { x: width - w - margin, y: height - h - margin, w, h, role: "pip" }],
  ]);
}

function stageBoxes(featured, tiles, width, height, gap) {
  const others = tiles.filter((tile) => tile !== featured);
  const boxes = new Map();
  const n = others.length;
  if (width >= height * 1.1) {
    const stripWidth = Math.min(240, Math.max(130, width * 0.2));
    const h = Math.min(stripWidth / ASPECT, (height - gap * (n - 1)) / n);
    const w = h * ASPECT;
    const top = (height - (n * h + (n - 1) * gap)) / 2;
    boxes.set(featured, { x: 0, y: 0, w: width - stripWidth - gap, h: height, role: "main" });
    others.forEach((tile, i) => {
      boxes.set(tile, { x: width - stripWidth + (stripWidth - w) / 2, y: top + i * (h + gap), w, h, role: "strip" });
    });
  } else {
    const stripHeight = Math.min(130, Math.max(72, height * 0.18));
    const w = Math.min(stripHeight * ASPECT, (width - gap * (n - 1)) / n);
    const h = w / ASPECT;
    const left = (width - (n * w + (n - 1) * gap)) / 2;
    boxes.set(featured, { x: 0, y: 0, w: width, h: height - stripHeight - gap, role: "main" });
    others.forEach((tile, i) => {
      boxes.set(tile, { x: left + i * (w + gap), y: height - stripHeight + (stripHeight - h) / 2, w, h, role: "strip" });
    });
  }
  return boxes;
}

// Alone in the room: who to invite, and how.
function showEmptyState(alone) {
  $("empty-state").hidden = !alone;
}

// Who is speaking: the loudest voice above a threshold gets a ring.
export function startSpeakerLoop() {
  stopSpeakerLoop();
  const room = state.room;
  startMeter(room.localStream, (level) => {
    if (state.meter) state.meter.level = level;
    // The microphone's level, on its button and in the devices dialog.
    const shown = room.media.audio ? level : 0;
    $("toggle-mic").style.setProperty("--level", shown.toFixed(2));
    $("call-level").style.width = `${Math.round(shown * 100)}%`;
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
      let loudest = null;
      for (const [userId, level] of levels) {
        if (level > 0.04) lastLoud.set(userId, now);
        const tile = state.tiles.get(tileKey(userId, "camera"));
        tile?.classList.toggle("speaking", now - (lastLoud.get(userId) ?? -Infinity) < 600);
        if (userId !== room.userId && level > 0.04 && (!loudest || level > loudest[1])) loudest = [userId, level];
      }
      // The speaker view follows who speaks, holding each one a moment (no flicker).
      if (loudest && loudest[0] !== state.speaker && now - (state.speakerSince ?? 0) > 1500) {
        state.speaker = loudest[0];
        state.speakerSince = now;
        if ($("grid").dataset.layout === "speaker") layoutGrid();
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
