// controls.js: the web app's side panel, call controls and connection banner.

import { ERROR_CODES } from "../protocol.js";
import { backToStart, endCall } from "./call.js";
import { autosize, clearUnread, sendChat } from "./chat.js";
import { sendPickedFiles, setupFileDrops } from "./files.js";
import { $, inviteUrl, toast } from "./helpers.js";
import { cameraConstraints, fillPickers, microphoneConstraints, pickDevice, pickersIn, withPicked } from "./devices.js";
import { mediaErrorText } from "./media.js";
import { state } from "./state.js";
import { layoutGrid } from "./tiles.js";

export function panelOpen() {
  return !$("side-panel").classList.contains("collapsed");
}

export function setPanelOpen(open) {
  $("side-panel").classList.toggle("collapsed", !open);
  $("toggle-panel").setAttribute("aria-pressed", String(open));
  $("toggle-panel").title = open ? "Hide chat and people" : "Show chat and people";
  if (open && $("tab-chat").getAttribute("aria-selected") === "true") clearUnread();
  requestAnimationFrame(layoutGrid);
}

export function selectTab(name) {
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
export function showReconnectAttempt(attempt, delayMs) {
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

// How the room came back: the same session with nothing lost, or joined afresh.
const RECONNECTED_TEXT = {
  resumed: "Reconnected. Nothing was missed.",
  rejoined: "Reconnected. Calls are set up again; messages sent meanwhile are shown.",
};

export function showConnection(connection, reason = null) {
  const banner = $("connection-banner");
  if (connection === "closed") {
    // Closed for good (removed, the room ended, replaced, given up): the call is over.
    banner.hidden = true;
    endCall(reason ?? { code: "closed" });
    return;
  }
  $("retry-now").hidden = connection !== "reconnecting";
  if (connection !== "reconnecting") showReconnectAttempt(0, 0);
  if (connection === "reconnecting") {
    const why = reason?.code === "server-restart" ? "The server is restarting." : "Connection to the server lost.";
    $("connection-text").textContent = `${why} Reconnecting… Calls already running carry on.`;
    banner.hidden = false;
  } else {
    if (!banner.hidden && connection === "open") toast(RECONNECTED_TEXT[reason?.code] ?? "Reconnected.");
    banner.hidden = true;
  }
}

// The camera, microphone and speaker, picked in the call: the new device replaces the
// old in every peer connection.
function setupDevicesDialog() {
  const dialog = $("devices-dialog");
  const pickers = pickersIn("call");
  const use = async (kind) => {
    const room = state.room;
    if (!room) return;
    if (kind === "camera") await room.switchCamera(cameraConstraints());
    else await room.switchMicrophone(microphoneConstraints());
  };
  for (const [kind, select] of Object.entries(pickers)) {
    select.addEventListener("change", () => pickDevice(kind, select.value, use));
  }
  $("open-devices").addEventListener("click", async () => {
    await fillPickers(pickers, state.room?.localStream);
    dialog.showModal();
  });
  $("close-devices").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => $("open-devices").focus());
}

export function setupCallScreen() {
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
      await withPicked(() => room.setCamera(!room.media.video, cameraConstraints()));
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
  setupDevicesDialog();
  $("close-panel").addEventListener("click", () => setPanelOpen(false));
  $("leave").addEventListener("click", () => endCall());
  $("rejoin").addEventListener("click", () => backToStart({ rejoin: true }));
  $("back-to-start").addEventListener("click", () => backToStart());
  $("retry-now").addEventListener("click", () => state.room?.reconnectNow());
  $("enable-sound").addEventListener("click", () => {
    for (const audio of state.audio.values()) audio.play().catch(() => {});
    $("sound-banner").hidden = true;
  });
  const copyInvite = async () => {
    const link = inviteUrl(state.room.name);
    try {
      await navigator.clipboard.writeText(link);
      toast("Invite link copied.");
    } catch {
      window.prompt("Copy this invite link:", link);
    }
  };
  $("copy-invite").addEventListener("click", copyInvite);
  $("copy-invite-link").addEventListener("click", copyInvite);
  $("invite-link").addEventListener("focus", (event) => event.target.select());
  $("stop-presenting").addEventListener("click", () => state.room?.stopScreenShare());

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
      if (error.code === ERROR_CODES.UNKNOWN_TYPE) $("status-row").hidden = true; // the server has no presence
      else toast(`Your status could not be changed: ${error.message}`);
    }
  });

  $("file-input").addEventListener("change", (event) => {
    sendPickedFiles(event.target.files);
  });
  setupFileDrops();

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
