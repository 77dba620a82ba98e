// join.js: the web app's join screen: room and name, camera and microphone, joining.

import { join } from "../hubbub.js";
import { ERROR_CODES } from "../protocol.js";
import { access, canJoin, claimsOf, fetchToken, loadAccess, roomOf, tokenFor, tokenMode } from "./access.js";
import { startCall } from "./call.js";
import { $, colorFor, initials, randomRoomName, serverUrl, showMessage } from "./helpers.js";
import { nextCamera, offersCameraSwitch, pickDevice, pickersIn } from "./devices.js";
import { mediaErrorText, openMedia, reopenPreview, setPreviewStream } from "./media.js";
import { state } from "./state.js";

const ERROR_TEXT = {
  [ERROR_CODES.USER_ID_TAKEN]: (name) => `Someone called “${name}” is already in this room. Pick another name.`,
  [ERROR_CODES.ROOM_FULL]: () => "This room is full.",
  [ERROR_CODES.TOO_LARGE]: () => "That room name or display name is too long.",
  [ERROR_CODES.BAD_MESSAGE]: () => "Room and name cannot be empty or hold control characters.",
  [ERROR_CODES.TOKEN_REQUIRED]: () => "This server admits only people with an invite link. Ask whoever runs it for one.",
  [ERROR_CODES.TOKEN_EXPIRED]: () => "Your invite has expired. Ask for a new one.",
  [ERROR_CODES.TOKEN_NOT_YET_VALID]: () => "Your invite is not valid yet. Try again later.",
  [ERROR_CODES.TOKEN_INVALID]: () => "This invite is not valid on this server.",
  [ERROR_CODES.FORBIDDEN]: () => "Your invite does not let you into this room.",
  "token-endpoint": (name, error) => `${error.message} Try again in a moment.`,
  unreachable: () => "Cannot reach the hubbub server. Check that it is running and that you are online, then try again.",
  timeout: () => "The server did not answer in time. Try again.",
  closed: () => "The server closed the connection. Try again.",
};

export function setupJoinScreen() {
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

  for (const [kind, select] of Object.entries(pickersIn("join"))) {
    select.addEventListener("change", () => pickDevice(kind, select.value, reopenPreview));
  }
  $("preview-flip").addEventListener("click", async () => {
    const next = await nextCamera(state.stream);
    if (next) await pickDevice("camera", next, reopenPreview);
  });
  navigator.mediaDevices?.addEventListener?.("devicechange", async () => {
    $("preview-flip").hidden = !(await offersCameraSwitch());
  });

  $("join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    enterRoom();
  });
}

// Token mode: who the token says this is (the name cannot be picked), or why the page
// cannot join. Resolves once the join screen shows it.
export async function showAccess() {
  await loadAccess();
  if (!tokenMode()) return;
  $("room-hint").textContent = "Only people with an invite can join.";
  if (access.invite) {
    const claims = claimsOf(access.invite);
    if (!new URLSearchParams(location.search).get("room") && roomOf(claims)) $("room-input").value = roomOf(claims);
    if (claims) showIdentity(claims, "your invite");
    if (claims?.exp && claims.exp * 1000 < Date.now()) showMessage("join-error", ERROR_TEXT[ERROR_CODES.TOKEN_EXPIRED]());
  } else if (access.tokenEndpoint) {
    try {
      const claims = claimsOf(await fetchToken($("room-input").value.trim() || randomRoomName()));
      if (claims) showIdentity(claims, "your sign-in");
    } catch (error) {
      showJoinError(error, "");
    }
  }
  if (!canJoin()) {
    showMessage("join-error", ERROR_TEXT[ERROR_CODES.TOKEN_REQUIRED]());
    $("join-button").disabled = true;
  }
}

function showIdentity(claims, source) {
  const input = $("name-input");
  input.value = claims.name;
  input.readOnly = true;
  input.setAttribute("aria-describedby", "access-note");
  showMessage("access-note", `Your name comes from ${source}.`);
  updatePreviewAvatar();
}

function showJoinError(error, name) {
  const text = ERROR_TEXT[error.code]?.(name, error) ?? error.message ?? "The server refused.";
  showMessage("join-error", error.code === "signed-out" ? "Sign in to join this call." : text);
  const signIn = $("sign-in");
  signIn.hidden = error.code !== "signed-out" || !error.login;
  if (!signIn.hidden) {
    const login = new URL(error.login);
    // Where to come back to: the site may follow it (the example in docs/security.md does).
    if (!login.searchParams.has("next")) login.searchParams.set("next", location.href);
    signIn.href = login.href;
  }
}

function updatePreviewAvatar() {
  const name = $("name-input").value.trim() || "?";
  const node = $("preview-avatar");
  node.textContent = initials(name);
  node.style.setProperty("--avatar", colorFor(name));
}

export async function enterRoom() {
  const roomInput = $("room-input");
  const nameInput = $("name-input");
  await state.accessReady;
  const roomName = roomInput.value.trim();
  // With a token, the token says who this is.
  const name = tokenMode() ? nameInput.value.trim() || "you" : nameInput.value.trim();
  roomInput.setAttribute("aria-invalid", String(!roomName));
  nameInput.setAttribute("aria-invalid", String(!name));
  if (!roomName || !name) {
    showMessage("join-error", !roomName ? "Give the room a name." : "Tell the others your name.");
    (!roomName ? roomInput : nameInput).focus();
    return;
  }
  showMessage("join-error", "");
  $("sign-in").hidden = true;
  const button = $("join-button");
  button.disabled = true;
  button.classList.add("busy");
  button.querySelector(".button-label").textContent = "Joining";
  if (!tokenMode()) localStorage.setItem("hubbub.name", name);
  // The camera may still be opening (or its permission prompt still open): give it a
  // moment, so the call starts with it rather than without.
  await Promise.race([state.previewReady, new Promise((resolve) => setTimeout(resolve, 8000))]);
  const stream = state.stream ?? new MediaStream();
  try {
    const options = { room: roomName, stream };
    if (tokenMode()) options.token = tokenFor(roomName);
    else options.userId = name;
    const room = await join(serverUrl(), options);
    state.stream = stream;
    startCall(room);
  } catch (error) {
    if (ERROR_TEXT[error.code] || error.code === "signed-out") showJoinError(error, name);
    else showMessage("join-error", `The server refused: ${error.message}`);
    if (error.code === ERROR_CODES.USER_ID_TAKEN) {
      nameInput.setAttribute("aria-invalid", "true");
      nameInput.focus();
      nameInput.select();
    }
  } finally {
    button.disabled = !canJoin();
    button.classList.remove("busy");
    button.querySelector(".button-label").textContent = "Join room";
  }
}
